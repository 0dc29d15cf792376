"""Embedding quality of every sketch kind at its default size, leverage scores, and minimize."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.sketch import (SKETCHES, RowSampler, leverage_sampler, leverage_scores)

N, D = 50000, 50


def _instance(kind, rng):
    """Seeded n = 50,000, d = 50 instances.

    "coherent": 25 rows scaled by 10 (max leverage about 0.4-0.5, >= 200x the mean d/n);
    "spiky": scaled by 30 (several rows of leverage 0.7-0.95).
    """
    if kind == "dense":
        return rng.standard_normal((N, D)) * np.logspace(0, 3, D)
    A = sp.random_array((N, D), density=10 / D, format="csr", rng=rng,
                        data_sampler=rng.standard_normal)
    s = np.exp(rng.standard_normal(N))  # row scales spread over a few orders of magnitude
    if kind in ("coherent", "spiky"):
        s[rng.choice(N, 25, replace=False)] *= 10.0 if kind == "coherent" else 30.0
    A = sp.csr_array(sp.diags_array(s) @ A)
    A.sort_indices()
    return A


def _make_case(kind):
    rng = np.random.default_rng([int.from_bytes(kind.encode(), "little"), 7])
    A = _instance(kind, rng)
    # Oracle: A = U R with R the Cholesky factor of A^T A (numpy), U = A R^{-1}
    # orthonormal; exact leverage = squared row norms of U.
    G = (A.T @ A).toarray() if sp.issparse(A) else A.T @ A
    R = np.linalg.cholesky(G).T
    U = np.asarray(A @ np.linalg.inv(R))
    np.testing.assert_allclose(U.T @ U, np.eye(D), atol=1e-9)
    lev = np.einsum("ij,ij->i", U, U)
    if kind == "coherent":
        assert lev.max() > 200 * D / N  # highly non-uniform: max >= 200x the mean
    if kind == "spiky":
        assert lev.max() > 0.7
    return kind, A, R, lev


@pytest.fixture(scope="module", params=["sparse", "dense", "coherent"])
def instance(request):
    return _make_case(request.param)


@pytest.fixture(scope="module")
def spiky():
    return _make_case("spiky")


def _singular_values_of_SU(S, A, R):
    """Singular values of S U with U = A R^{-1} (S applied to A itself, its own format)."""
    SA = S.apply(A)
    return np.linalg.svd(np.linalg.solve(R.T, SA.T).T, compute_uv=False)


@pytest.mark.parametrize("name", list(SKETCHES))
def test_subspace_embedding_default_size(name, instance, seed):
    _, A, R, _ = instance
    cls = SKETCHES[name]
    S = cls(cls.default_size(N, D), N, seed=seed)
    sv = _singular_values_of_SU(S, A, R)
    assert 0.5 <= sv.min() and sv.max() <= 1.5, (sv.min(), sv.max())


@pytest.mark.parametrize("name", [k for k in SKETCHES if k != "countsketch"])
def test_subspace_embedding_spiky(name, spiky, seed):
    """Rows of leverage near 1: every kind but CountSketch embeds at its default size.

    CountSketch is left out on purpose: two such rows hashed to one bucket (probability
    about 5-10% at m = 8 d here) make S U nearly singular; its documented embedding
    size for arbitrary subspaces is O(d^2 / (eps^2 delta)).
    """
    _, A, R, _ = spiky
    cls = SKETCHES[name]
    sv = _singular_values_of_SU(cls(cls.default_size(N, D), N, seed=seed), A, R)
    assert 0.5 <= sv.min() and sv.max() <= 1.5, (sv.min(), sv.max())


def test_leverage_sampling_embedding(instance, seed):
    _check_leverage_sampling(instance, seed)


def test_leverage_sampling_embedding_spiky(spiky, seed):
    _check_leverage_sampling(spiky, seed)


def _check_leverage_sampling(case, seed):
    _, A, R, _ = case
    S = leverage_sampler(A, seed=seed)
    assert S.sketch_size == RowSampler.default_size(N, D) <= 5 * D * np.log(D)
    sv = _singular_values_of_SU(S, A, R)
    assert 0.5 <= sv.min() and sv.max() <= 1.5, (sv.min(), sv.max())


def test_leverage_scores_factor_two(instance, seed):
    _, A, _, lev = instance
    approx = leverage_scores(A, seed=seed)
    pos = lev > 1e-12
    assert np.all(approx[~pos] <= 1e-12)
    ratio = approx[pos] / lev[pos]
    assert 0.5 <= ratio.min() and ratio.max() <= 2.0, (ratio.min(), ratio.max())
    exact = leverage_scores(A, method="exact")
    np.testing.assert_allclose(exact, lev, rtol=1e-7, atol=1e-12)


def test_leverage_scores_jl_projection(instance, seed):
    """With a JL projection (k = 40 < d) scores are unbiased up to the sketch, spread chi^2_k / k."""
    _, A, _, lev = instance
    approx = leverage_scores(A, seed=seed, jl_dim=40)
    pos = lev > 1e-12
    ratio = approx[pos] / lev[pos]
    assert 0.85 <= np.median(ratio) <= 1.15
    assert np.mean((ratio >= 0.5) & (ratio <= 2.0)) >= 0.98


def test_leverage_scores_weights_and_ridge(rng, seed):
    n, d = 3000, 8
    A = rng.standard_normal((n, d))
    w = rng.random(n) * (rng.random(n) > 0.3)
    B = np.sqrt(w)[:, None] * A
    for ridge in (0.0, 5.0):
        G = B.T @ B + ridge * np.eye(d)
        ref = np.einsum("ij,ji->i", B, np.linalg.solve(G, B.T))
        np.testing.assert_allclose(leverage_scores(A, row_weights=w, method="exact", ridge=ridge),
                                   ref, rtol=1e-9, atol=1e-14)
        approx = leverage_scores(A, row_weights=w, seed=seed, ridge=ridge)
        assert np.all(approx[w == 0] == 0)
        np.testing.assert_allclose(approx, ref, rtol=1.0)  # within a factor 2
    # Rank-deficient A: scores sum to the rank.
    A2 = np.hstack([A, A[:, :2]])
    assert np.isclose(leverage_scores(A2, method="exact").sum(), d, rtol=1e-8)
    assert np.isclose(leverage_scores(A2, seed=seed, jl_dim=100).sum(), d, rtol=0.3)


def test_leverage_bad_input():
    A = np.ones((10, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        leverage_scores(A, method="fast")
    with pytest.raises(ValueError, match="row_weights must be non-negative"):
        leverage_scores(A, row_weights=-np.ones(10))
    with pytest.raises(ValueError, match="row_weights contains NaN"):
        leverage_scores(A, row_weights=np.full(10, np.nan))
    with pytest.raises(ValueError, match="jl_dim must be >= 1"):
        leverage_scores(A, jl_dim=0)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        leverage_scores(A, ridge=-1.0)


@pytest.fixture(scope="module")
def exp_problem():
    data = fn.datasets.make_regression(1500, 8, nnz_per_row=5, seed=3)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    ref = fn.minimize(prob, method="exact", tol=1e-12)
    assert ref.success
    return prob, ref


@pytest.mark.parametrize("method,sketch", [("sample", "countsketch")]
                         + [("sketch", name) for name in SKETCHES])
def test_minimize_converges(method, sketch, exp_problem, seed):
    prob, ref = exp_problem
    res = fn.minimize(prob, method=method, sketch=sketch, seed=seed, tol=1e-9, maxiter=200)
    assert res.success, res.message
    assert res.grad_norm <= 1e-9 * np.linalg.norm(prob.jac(np.zeros(prob.d))) * 1.0001
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-6, atol=1e-6 * np.abs(ref.x).max())
    again = fn.minimize(prob, method=method, sketch=sketch, seed=seed, tol=1e-9, maxiter=200)
    np.testing.assert_array_equal(res.x, again.x)
    if method == "sample":
        assert np.all(res.history["sketch_size"][1:] == RowSampler.default_size(prob.n, prob.d))
