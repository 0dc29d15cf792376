"""fastnewton.linalg: pcg and sketch-and-precondition lstsq against numpy/scipy references."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fastnewton._threads import thread_limit
from fastnewton.datasets import make_regression
from fastnewton.exceptions import ValidationError
from fastnewton.hessian import DiagLowRank, HessianOperator, SketchPreconditioner, gram
from fastnewton.linalg import lstsq, pcg
from fastnewton.sketch import SKETCHES, CountSketch


def _spd(rng, d, cond):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (Q * np.logspace(0, np.log10(cond), d)) @ Q.T


# -- pcg ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dense", "sparse", "operator"])
def test_pcg_solves_spd_systems(rng, kind):
    d = 40
    H = _spd(rng, d, 1e3)
    x_true = rng.standard_normal(d)
    b = H @ x_true
    A = {"dense": H, "sparse": sp.csr_array(H), "operator": spla.aslinearoperator(H)}[kind]
    seen = []
    res = pcg(A, b, rtol=1e-12, maxiter=500, callback=lambda xk: seen.append(xk.copy()))
    assert res.converged and not res.negative_curvature
    assert np.linalg.norm(res.x - x_true) <= 1e-8 * np.linalg.norm(x_true)
    assert res.nit == res.iterations == len(seen) == len(res.residual_norms) - 1
    assert res.residual_norm <= 1e-12 * np.linalg.norm(b)
    np.testing.assert_allclose(res.residual_norms[0], np.linalg.norm(b))


def test_pcg_matches_scipy_cg_iterates(rng):
    """Same Krylov recurrence as scipy's cg: the first iterates agree to rounding."""
    d = 30
    H = _spd(rng, d, 1e2)
    b = rng.standard_normal(d)
    M = np.diag(1.0 / np.diag(H))
    ours, theirs = [], []
    pcg(H, b, rtol=1e-14, maxiter=5, M=M, callback=lambda xk: ours.append(xk.copy()))
    spla.cg(H, b, rtol=1e-14, maxiter=5, M=M, callback=lambda xk: theirs.append(xk.copy()))
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-9, atol=1e-12)


def test_pcg_x0_atol_and_maxiter(rng):
    d = 25
    H = _spd(rng, d, 1e4)
    b = rng.standard_normal(d)
    x_exact = np.linalg.solve(H, b)
    res = pcg(H, b, x0=x_exact, rtol=1e-8)
    assert res.nit == 0 and res.converged
    res = pcg(H, b, rtol=0.0, atol=1e-6 * np.linalg.norm(b))
    assert res.converged and np.linalg.norm(b - H @ res.x) <= 2e-6 * np.linalg.norm(b)
    res = pcg(H, b, rtol=1e-14, maxiter=3)
    assert not res.converged and res.nit == 3


def test_pcg_stops_on_negative_curvature(rng):
    d = 10
    H = np.diag(np.r_[np.ones(d - 1), -1.0])
    b = np.ones(d)
    res = pcg(H, b, rtol=1e-12)
    assert res.negative_curvature and not res.converged
    p = res.direction
    assert p @ H @ p <= 0
    # the iterate returned is a descent direction for 1/2 x^T H x - b^T x (x = 0 start)
    assert res.nit == 0 or float(b @ res.x) > 0


def test_pcg_bad_input(rng):
    H = _spd(rng, 5, 10.0)
    with pytest.raises(ValidationError, match=r"M \(the preconditioner\) has shape \(4, 4\) "
                                              r"but A has shape \(5, 5\)"):
        pcg(H, np.ones(5), M=np.eye(4))
    with pytest.raises(ValidationError, match="b has 4 entries, expected 5"):
        pcg(H, np.ones(4))
    with pytest.raises(ValidationError, match="A must be square"):
        pcg(np.ones((5, 4)), np.ones(5))
    with pytest.raises(ValidationError, match="M is not positive definite"):
        pcg(H, np.ones(5), M=-np.eye(5))
    with pytest.raises(TypeError, match="callback must be callable"):
        pcg(H, np.ones(5), callback=3)
    with pytest.raises(ValidationError, match="rtol must be >= 0"):
        pcg(H, np.ones(5), rtol=-1.0)


def test_sketch_preconditioned_cg_on_ill_conditioned_hessian(seed):
    """cond(H) >= 1e8: PCG with SketchPreconditioner <= 40 iterations, plain cg > 20x more."""
    with thread_limit(1):  # hundreds of small products: thread launches dominate on busy CPUs
        _check_sketch_preconditioned_cg(np.random.default_rng(seed))


def _check_sketch_preconditioned_cg(rng):
    n, d = 5000, 150
    data = make_regression(n, d, nnz_per_row=8, cond=3e4, seed=rng)
    parts = DiagLowRank(rng.uniform(0.5, 2.0, n))
    H = HessianOperator(data.A, parts)
    Hd = gram(data.A, parts)
    assert np.linalg.cond(Hd) >= 1e8
    x_true = rng.standard_normal(d)
    b = Hd @ x_true
    M = SketchPreconditioner(data.A, parts, "countsketch", seed=rng)
    res = pcg(H, b, rtol=1e-10, maxiter=1000, M=M)
    assert res.converged and res.nit <= 40
    assert np.linalg.norm(Hd @ res.x - b) <= 2e-10 * np.linalg.norm(b)  # true residual
    count = [0]
    x, info = spla.cg(H, b, rtol=1e-10, maxiter=20 * res.nit,
                      callback=lambda xk: count.__setitem__(0, count[0] + 1))
    assert info != 0 and count[0] == 20 * res.nit  # not converged within 20x the iterations


# -- lstsq -------------------------------------------------------------------------------

def _tall_problem(rng, sparse, n=20000, d=50, cond=1e8):
    if sparse:
        A = make_regression(n, d, nnz_per_row=8, cond=cond, seed=rng).A
        Ad = A.toarray()
    else:
        U, _ = np.linalg.qr(rng.standard_normal((n, d)))
        V, _ = np.linalg.qr(rng.standard_normal((d, d)))
        A = Ad = (U * np.logspace(0, -np.log10(cond), d)) @ V.T
    return A, Ad


@pytest.mark.parametrize("sparse", [False, True])
def test_lstsq_consistent_recovers_truth(rng, sparse):
    A, Ad = _tall_problem(rng, sparse)
    assert np.linalg.cond(Ad) >= 0.5e8
    x_true = rng.standard_normal(Ad.shape[1])
    res = lstsq(A, Ad @ x_true, seed=rng)
    assert res.converged
    assert np.linalg.norm(res.x - x_true) <= 1e-7 * np.linalg.norm(x_true)


@pytest.mark.parametrize("sparse", [False, True])
def test_lstsq_inconsistent_matches_numpy_and_is_backward_stable(rng, sparse):
    A, Ad = _tall_problem(rng, sparse)
    n, d = Ad.shape
    b = Ad @ rng.standard_normal(d) + rng.standard_normal(n)
    x_np = np.linalg.lstsq(Ad, b, rcond=None)[0]
    r_np = np.linalg.norm(b - Ad @ x_np)
    res = lstsq(A, b, seed=rng)
    r = b - Ad @ res.x
    assert abs(np.linalg.norm(r) - r_np) <= 1e-10 * r_np
    np.testing.assert_allclose(res.residual_norm, np.linalg.norm(r), rtol=1e-12)
    normA = np.linalg.norm(Ad, 2)
    backward = np.linalg.norm(Ad.T @ r) / (normA * (normA * np.linalg.norm(res.x)
                                                    + np.linalg.norm(b)))
    assert backward <= 1e-13
    assert res.backward_error <= 1e-13
    assert res.norm_A <= normA * (1 + 1e-12) and res.norm_A >= 0.9 * normA


def test_lstsq_default_sketch_resolves_at_call_time(rng):
    A, Ad = _tall_problem(rng, sparse=True, n=3000, d=20, cond=10.0)
    res = lstsq(A, Ad @ np.ones(20), seed=0)
    expected = "sparse-sign" if "sparse-sign" in SKETCHES else "countsketch"
    assert res.sketch == expected
    res = lstsq(A, Ad @ np.ones(20), sketch=CountSketch(100, 3000, seed=0))
    assert res.sketch == "CountSketch" and res.sketch_size == 100
    np.testing.assert_allclose(res.x, np.ones(20), rtol=1e-10)
    res = lstsq(A, Ad @ np.ones(20), sketch_size=5000)  # m >= n: A itself is factored
    assert res.sketch == "exact-qr"
    np.testing.assert_allclose(res.x, np.ones(20), rtol=1e-10)


def test_lstsq_bad_input(rng):
    A = rng.standard_normal((100, 5))
    with pytest.raises(ValidationError, match="b has 99 entries, expected 100"):
        lstsq(A, np.ones(99))
    with pytest.raises(ValidationError, match="lstsq needs a tall A"):
        lstsq(A.T, np.ones(5))
    with pytest.raises(ValidationError, match="sketch_size must be >= d = 5"):
        lstsq(A, np.ones(100), sketch_size=3)
    B = A.copy()
    B[:, 4] = B[:, 3]
    with pytest.raises(ValidationError, match="numerically rank-deficient"):
        lstsq(B, np.ones(100), seed=0)
    with pytest.raises(ValueError, match="unknown sketch 'nope'"):
        lstsq(A, np.ones(100), sketch="nope")


# -- tall_gram ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3000, 300), (900, 513), (40, 7), (2000, 256),
                                   (8200, 100), (5000, 3), (1, 4), (0, 3)])
def test_tall_gram_matches_numpy_and_ignores_threads(rng, shape):
    from fastnewton.linalg._tallgram import gram_row_blocks, tall_gram

    X = rng.standard_normal(shape)
    ref = X.T @ X
    runs = [tall_gram(X, n_threads=t) for t in (1, 2, 3)]
    np.testing.assert_allclose(runs[0], ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    assert np.array_equal(runs[0], runs[0].T)  # exactly symmetric
    for G in runs[1:]:  # same blocks, same BLAS calls: same bits for any thread count
        assert np.array_equal(G, runs[0])
    with thread_limit(2):
        assert np.array_equal(tall_gram(X), runs[0])
    if shape in ((3000, 300), (8200, 100)):  # these take the multi-block path
        assert gram_row_blocks(*shape) > 1


def test_tall_gram_blocks_and_layouts(rng):
    from fastnewton.linalg._tallgram import MAX_BLOCKS, gram_row_blocks, tall_gram

    for m, d in [(1, 1), (1023, 2), (2048, 10), (2400, 300), (8000, 1000), (10**7, 50),
                 (10**6, 10**4)]:
        nb = gram_row_blocks(m, d)
        assert nb & (nb - 1) == 0 and 1 <= nb <= MAX_BLOCKS
        assert nb == 1 or (m // nb >= 1024 and nb * d <= m)
    assert gram_row_blocks(2400, 300) == 2 and gram_row_blocks(10**7, 50) == MAX_BLOCKS
    X = rng.standard_normal((3000, 40))
    ref = tall_gram(X)
    assert np.array_equal(tall_gram(np.asfortranarray(X)), ref)  # copied to C order
    Y = rng.standard_normal((3000, 80))
    Y[:, ::2] = X
    assert np.array_equal(tall_gram(Y[:, ::2]), ref)  # strided view
    with pytest.raises(ValueError, match="2-D"):
        tall_gram(np.ones(5))




@pytest.mark.parametrize("diag", [[1.0] * 7 + [0.0], [1.0, 2.0, 3.0, 0.0]])
def test_pcg_stops_finitely_on_a_singular_matrix(diag):
    """b outside the range of a singular PSD matrix: the curvature along a direction
    falls to rounding level; CG stops there (flagged like negative curvature) with a
    finite iterate instead of a step blown up to 1e95 or inf."""
    A = np.diag(diag)
    with np.errstate(all="raise"):
        res = pcg(A, np.ones(len(diag)))
    assert res.negative_curvature and not res.converged
    assert np.isfinite(res.x).all() and np.linalg.norm(res.x) < 100
    ref = pcg(np.diag([d if d else 1.0 for d in diag]), np.ones(len(diag)), rtol=1e-12)
    assert ref.converged and not ref.negative_curvature  # the test does not fire on SPD
