"""fastnewton.datasets.make_glm: structure, distributions, determinism, non-canonical form."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.datasets import GLM_FAMILIES, GLMData, make_glm


def _seed(rng):
    return int(rng.integers(1 << 31))


def test_shapes_types_and_canonical_csr(rng):
    data = make_glm(500, 40, nnz_per_row=6, seed=_seed(rng))
    assert isinstance(data, GLMData)
    A = data.A
    assert sp.issparse(A) and A.format == "csr" and A.shape == (500, 40)
    assert A.has_canonical_format and A.dtype == np.float64
    assert data.y.shape == (500,) and data.coef.shape == (40,)
    assert data.sample_weight is None and data.family == "binomial" and data.power is None
    with pytest.raises(Exception):
        data.y = None  # frozen
    dense = make_glm(300, 7, dense=True, dtype=np.float32, seed=_seed(rng))
    assert isinstance(dense.A, np.ndarray) and dense.A.shape == (300, 7)
    assert dense.A.dtype == np.float32 and np.count_nonzero(dense.A) == dense.A.size
    w = make_glm(100, 5, nnz_per_row=2, weighted=True, seed=_seed(rng)).sample_weight
    assert w.shape == (100,) and w.min() >= 0.5 and w.max() < 2.0


def test_constant_rows_have_distinct_columns(rng):
    data = make_glm(2000, 50, nnz_per_row=20, zipf_exponent=1.5, seed=_seed(rng))
    assert (np.diff(data.A.indptr) == 20).all()  # duplicates were redrawn, not summed
    A = data.A.copy()
    A.sum_duplicates()
    assert A.nnz == data.A.nnz
    # values N(0, 1/20)
    assert abs(np.std(data.A.data) * np.sqrt(20) - 1) < 0.05
    assert (np.diff(make_glm(10, 3, nnz_per_row=20, seed=0).A.indptr) == 3).all()  # capped at d


def test_powerlaw_row_lengths(rng):
    data = make_glm(20000, 1000, nnz_per_row=20, row_lengths="powerlaw", seed=_seed(rng))
    lengths = np.diff(data.A.indptr)
    assert lengths.min() >= 1 and lengths.max() <= 1000
    assert 15 < lengths.mean() < 25  # mean about nnz_per_row
    assert np.median(lengths) < lengths.mean()  # right-skewed
    assert lengths.max() > 10 * lengths.mean()  # heavy tail (tail exponent 2)
    # survival function ~ L^-2 in the tail: P(L > 4m) / P(L > 2m) about 1/4
    m = np.median(lengths)
    ratio = (lengths > 4 * m).mean() / (lengths > 2 * m).mean()
    assert 0.15 < ratio < 0.4
    A = data.A.copy()
    A.sum_duplicates()
    assert A.nnz == data.A.nnz  # long rows (Gumbel top-k) have distinct columns too


def test_zipf_popularity_in_column_counts(rng):
    s = 1.1
    data = make_glm(20000, 500, nnz_per_row=5, zipf_exponent=s, seed=_seed(rng))
    counts = np.sort(np.bincount(data.A.indices, minlength=500))[::-1].astype(float)
    ranks = np.arange(1, 501)
    sel = slice(9, 200)  # away from the head (distinctness caps it) and the noisy tail
    slope = np.polyfit(np.log(ranks[sel]), np.log(counts[sel]), 1)[0]
    assert -s - 0.25 < slope < -s + 0.25
    assert counts[0] > 100 * max(counts[-1], 1)
    uniform = make_glm(20000, 500, nnz_per_row=5, column_popularity="uniform", seed=_seed(rng))
    ucounts = np.bincount(uniform.A.indices, minlength=500)
    assert ucounts.std() < 2.0 * np.sqrt(ucounts.mean())  # Poisson-like scatter only
    # the popular columns are spread over the index range (a random ranking)
    top = np.argsort(np.bincount(data.A.indices, minlength=500))[-50:]
    assert top.min() < 100 and top.max() > 400


@pytest.mark.parametrize("family, power", [("binomial", None), ("poisson", None), ("gamma", None),
                                           ("tweedie", 1.5), ("tweedie", 3.0), ("normal", None)])
def test_y_in_the_family_domain_and_mean(rng, family, power):
    data = make_glm(20000, 30, family=family, power=power, nnz_per_row=5, intercept=0.2,
                    seed=_seed(rng))
    y = data.y
    eta = data.A @ data.coef + data.intercept
    assert np.isfinite(y).all()
    if family == "binomial":
        assert set(np.unique(y)) == {0.0, 1.0}
        mean = 1 / (1 + np.exp(-eta))
    elif family == "normal":
        mean = eta
    else:
        mean = np.exp(eta)
        if family == "poisson":
            assert (y >= 0).all() and (y == np.round(y)).all()
        elif family == "tweedie" and power < 2:
            assert (y >= 0).all() and (y == 0).any() and (y > 0).any()
        else:
            assert (y > 0).all()
    # y is drawn at the true linear predictor: E[y - mean] = 0 and they correlate
    assert abs(np.mean(y - mean)) < 5 * np.std(y - mean) / np.sqrt(y.size)
    assert np.corrcoef(y, mean)[0, 1] > 0.2


def test_seeded_determinism(rng):
    seed = _seed(rng)
    kw = dict(family="poisson", row_lengths="powerlaw", column_scale=(1e-3, 1), n_high_leverage=3,
              canonical=False, weighted=True)
    a, b = make_glm(1000, 60, seed=seed, **kw), make_glm(1000, 60, seed=seed, **kw)
    for name in ("y", "coef", "sample_weight", "high_leverage_rows"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(a.A, name), getattr(b.A, name))
    c = make_glm(1000, 60, seed=seed + 1, **kw)
    assert not np.array_equal(a.y, c.y)
    g = make_glm(1000, 60, seed=np.random.default_rng(seed), **kw)
    np.testing.assert_array_equal(g.A.data, a.A.data)


def test_non_canonical_matrix_equals_its_canonical_form(rng):
    seed = _seed(rng)
    canon = make_glm(3000, 80, nnz_per_row=10, seed=seed)
    raw = make_glm(3000, 80, nnz_per_row=10, seed=seed, canonical=False)
    A = raw.A
    assert not A.has_canonical_format
    A.check_format(full_check=True)  # a valid CSR matrix
    assert A.nnz > 1.05 * canon.A.nnz  # duplicates
    rows_sorted = all(np.all(np.diff(A.indices[A.indptr[i]:A.indptr[i + 1]]) > 0)
                      for i in range(A.shape[0]))
    assert not rows_sorted  # unsorted indices
    fixed = A.copy()
    fixed.has_canonical_format = False
    fixed.sum_duplicates()
    for name in ("data", "indices", "indptr"):  # exactly (halves add up exactly)
        np.testing.assert_array_equal(getattr(fixed, name), getattr(canon.A, name))
    np.testing.assert_array_equal(raw.y, canon.y)
    assert (A != canon.A).nnz == 0
    x = rng.standard_normal(80)
    np.testing.assert_allclose(A @ x, canon.A @ x, rtol=1e-12, atol=1e-12)


def test_column_scale_and_standardize_keep_the_linear_predictor(rng):
    seed = _seed(rng)
    base = make_glm(4000, 30, nnz_per_row=5, seed=seed)
    eta = base.A @ base.coef + base.intercept
    scaled = make_glm(4000, 30, nnz_per_row=5, column_scale=(1e-3, 1.0), seed=seed)
    norms = np.sqrt(np.asarray(scaled.A.multiply(scaled.A).sum(axis=0)).ravel())
    base_norms = np.sqrt(np.asarray(base.A.multiply(base.A).sum(axis=0)).ravel())
    factors = norms / base_norms
    assert factors.min() >= 1e-3 * (1 - 1e-12) and factors.max() <= 1.0
    assert factors.max() / factors.min() > 100  # spread over decades
    np.testing.assert_allclose(scaled.A @ scaled.coef + scaled.intercept, eta, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(scaled.y, base.y)
    std = make_glm(4000, 30, nnz_per_row=5, column_scale=(1e-3, 1.0), standardize=True, seed=seed)
    dense_std = std.A.toarray().std(axis=0)
    np.testing.assert_allclose(dense_std, 1.0, rtol=1e-10)
    np.testing.assert_allclose(std.A @ std.coef + std.intercept, eta, rtol=1e-9, atol=1e-9)
    dense = make_glm(2000, 10, dense=True, standardize=True, intercept=0.5, seed=seed)
    np.testing.assert_allclose(dense.A.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(dense.A.std(axis=0), 1.0, rtol=1e-10)


def _leverage(A):
    Q, _ = np.linalg.qr(A.toarray())
    return np.einsum("ij,ij->i", Q, Q)  # exact leverage scores, mean d / n


def test_high_leverage_rows(rng):
    seed = _seed(rng)
    kw = dict(nnz_per_row=5, column_popularity="uniform", seed=seed)
    data = make_glm(3000, 20, n_high_leverage=4, **kw)
    plain = make_glm(3000, 20, **kw)  # the same A but for the scaled rows
    rows = data.high_leverage_rows
    assert rows.shape == (4,) and np.unique(rows).size == 4
    assert plain.high_leverage_rows.size == 0
    diff = (data.A - plain.A).tocsr()
    diff.eliminate_zeros()
    assert set(np.flatnonzero(np.diff(diff.indptr))) == set(rows)
    lev, lev0 = _leverage(data.A), _leverage(plain.A)
    # s^2 h / (1 + (s^2 - 1) h) for a row of leverage h scaled by s = 10
    assert (lev[rows] > 10 * lev0[rows]).all()
    assert lev[rows].mean() > 10 * 20 / 3000


def test_every_family_gives_a_valid_glm_problem(rng):
    for family in GLM_FAMILIES:
        power = 1.5 if family == "tweedie" else None
        data = make_glm(500, 10, family=family, power=power, nnz_per_row=3, weighted=True,
                        seed=_seed(rng))
        prob = fn.GLMRegression(data.A, data.y, family=family, power=power,
                                sample_weight=data.sample_weight, lam=1.0)
        assert np.isfinite(prob.fun(np.zeros(prob.d)))


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "logit"}, "family must be one of"),
    ({"family": "tweedie"}, "needs power"),
    ({"family": "tweedie", "power": 0.5}, "power must be in"),
    ({"family": "poisson", "power": 1.5}, "power applies to family='tweedie' only"),
    ({"column_popularity": "pareto"}, "column_popularity"),
    ({"row_lengths": "random"}, "row_lengths"),
    ({"column_scale": (1.0, 0.1)}, "column_scale"),
    ({"column_scale": "wide"}, "column_scale"),
    ({"dense": True, "canonical": False}, "canonical=False"),
    ({"n_high_leverage": 11}, "n_high_leverage"),
    ({"zipf_exponent": 0.0}, "zipf_exponent"),
    ({"dtype": np.int32}, "dtype"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_glm(10, 4, nnz_per_row=2, **kwargs)
