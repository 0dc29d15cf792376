"""Hessian building blocks: DiagLowRank, gram, sketched_gram, HessianOperator, SketchPreconditioner."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastnewton._threads import thread_limit
from fastnewton.exceptions import ValidationError
from fastnewton.hessian import (DiagLowRank, HessianOperator, SketchPreconditioner, gram,
                                sketched_gram)
from fastnewton.linalg import Design
from fastnewton.sketch import CountSketch


def _random_csr(rng, n, d, density=0.2):
    A = sp.random_array((n, d), density=density, format="csr", rng=rng,
                        data_sampler=rng.standard_normal)
    A.sort_indices()
    return A


def _as_format(A, fmt):
    """A (CSR float64) in the requested storage: csr32, csr64, csc, dense, float32 CSR."""
    if fmt == "dense":
        return A.toarray()
    if fmt == "csc":
        return A.tocsc()
    if fmt == "float32":
        return A.astype(np.float32)
    B = A.copy()
    itype = np.int32 if fmt == "csr32" else np.int64
    B.indices = B.indices.astype(itype)
    B.indptr = B.indptr.astype(itype)
    return B


def _parts(rng, n, low_rank, negative):
    beta = rng.uniform(0.1, 2.0, n)
    if negative:
        beta[rng.random(n) < 0.3] *= -1.0
    if not low_rank:
        return DiagLowRank(beta)
    U = rng.standard_normal((n, 2))
    C = np.array([[1.5, -1.0], [-1.0, 0.0]])  # symmetric and indefinite, like softmax's core
    return DiagLowRank(beta, U, C)


def _dense_hessian(A, parts, ridge):
    Ad = A.toarray() if sp.issparse(A) else np.asarray(A)
    Ad = Ad.astype(np.float64)
    return Ad.T @ parts.to_dense() @ Ad + ridge * np.eye(Ad.shape[1])


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


FORMATS = ["csr32", "csr64", "csc", "dense"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("low_rank", [False, True])
@pytest.mark.parametrize("negative", [False, True])
def test_gram_matches_dense_formula(rng, fmt, low_rank, negative):
    n, d = 300, 17
    A = _random_csr(rng, n, d)
    parts = _parts(rng, n, low_rank, negative)
    ridge = 0.3
    H = gram(_as_format(A, fmt), parts, ridge=ridge)
    ref = _dense_hessian(A, parts, ridge)
    assert H.shape == (d, d) and H.dtype == np.float64
    assert _rel(H, ref) <= 1e-12
    np.testing.assert_array_equal(H, H.T)


@pytest.mark.parametrize("fmt", FORMATS + ["float32"])
@pytest.mark.parametrize("low_rank", [False, True])
@pytest.mark.parametrize("negative", [False, True])
def test_hessian_operator_matches_dense(rng, fmt, low_rank, negative):
    n, d = 300, 17
    A = _random_csr(rng, n, d)
    Af = _as_format(A, fmt)
    parts = _parts(rng, n, low_rank, negative)
    ridge = 0.7
    H = HessianOperator(Af, parts, ridge=ridge)
    ref = _dense_hessian(Af.astype(np.float64) if fmt == "float32" else A, parts, ridge)
    assert H.shape == (d, d) and H.dtype == np.float64
    p = rng.standard_normal(d)
    assert _rel(H @ p, ref @ p) <= 1e-12
    assert _rel(H.matvec(p[:, None]).ravel(), ref @ p) <= 1e-12
    assert _rel(H.rmatvec(p), ref @ p) <= 1e-12
    assert _rel(H.H @ p, ref @ p) <= 1e-12
    P = rng.standard_normal((d, 21))  # more columns than one kernel chunk
    assert _rel(H @ P, ref @ P) <= 1e-12
    assert _rel(H.with_ridge(0.0) @ p, (ref - ridge * np.eye(d)) @ p) <= 1e-12


def test_gram_and_operator_bitwise_across_threads(rng):
    n, d = 20000, 30  # several row blocks
    A = _random_csr(rng, n, d, density=0.1)
    parts = _parts(rng, n, low_rank=True, negative=True)
    design = Design(A)
    p = rng.standard_normal(d)
    P = rng.standard_normal((d, 5))
    out = {}
    for threads in (1, 2):
        with thread_limit(threads):
            H = HessianOperator(design, parts, ridge=0.1)
            out[threads] = (gram(design, parts, ridge=0.1), H @ p, H @ P)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("instance", range(3))
def test_sketched_gram_spectral_distortion(seed, instance):
    """Default size m = 8 d: eigenvalues of H^{-1/2} H~ H^{-1/2} in [(1-eps)^2, (1+eps)^2], eps=0.5."""
    rng = np.random.default_rng([seed, instance])
    n, d = 6000, 40
    A = _random_csr(rng, n, d, density=0.25)
    parts = DiagLowRank(rng.uniform(0.1, 3.0, n))
    H = gram(A, parts)
    S = CountSketch(8 * d, n, seed=rng)
    Ht = sketched_gram(Design(A), parts, S)
    Linv = np.linalg.inv(np.linalg.cholesky(H))
    ev = np.linalg.eigvalsh(Linv @ Ht @ Linv.T)
    eps = 0.5
    assert (1 - eps) ** 2 <= ev.min() and ev.max() <= (1 + eps) ** 2


def test_sketched_gram_keeps_low_rank_and_ridge_exact(rng):
    n, d = 400, 6
    A = _random_csr(rng, n, d, density=0.5)
    parts = _parts(rng, n, low_rank=True, negative=False)
    S = CountSketch(n, n, seed=rng)  # m = n: S^T S is diagonal (signs squared) up to collisions
    Ht = sketched_gram(A, parts, S, ridge=0.5)
    Sd = S.to_dense()
    Ad = A.toarray()
    SA = Sd @ (np.sqrt(parts.beta)[:, None] * Ad)
    ref = SA.T @ SA + (Ad.T @ parts.U) @ parts.C @ (Ad.T @ parts.U).T + 0.5 * np.eye(d)
    assert _rel(Ht, ref) <= 1e-12


def test_preconditioner_is_inverse_of_sketched_hessian(rng):
    n, d = 2000, 25
    A = _random_csr(rng, n, d, density=0.2)
    parts = DiagLowRank(rng.uniform(0.5, 2.0, n))
    S = CountSketch(200, n, seed=1)
    M = SketchPreconditioner(A, parts, S, ridge=0.1)
    Ht = sketched_gram(A, parts, S, ridge=0.1)
    v = rng.standard_normal(d)
    assert M.shape == (d, d) and M.dtype == np.float64 and M.shift == 0.0
    assert _rel(Ht @ (M @ v), v) <= 1e-10
    assert _rel(Ht @ (M @ np.column_stack([v, 2 * v])), np.column_stack([v, 2 * v])) <= 1e-10
    # update: new beta through the same sketch; ridge alone refactors without A
    parts2 = DiagLowRank(rng.uniform(0.5, 2.0, n))
    M.update(parts2)
    assert _rel(sketched_gram(A, parts2, S, ridge=0.1) @ (M @ v), v) <= 1e-10
    M.update(ridge=3.0)
    assert _rel(sketched_gram(A, parts2, S, ridge=3.0) @ (M @ v), v) <= 1e-10
    assert M.n_factorizations == 3


def test_preconditioner_shift_safeguard(rng):
    """Rank-deficient A and no ridge: the sketched Hessian is singular -> documented shift."""
    n, d = 500, 8
    A = _random_csr(rng, n, d, density=0.5).toarray()
    A[:, -1] = A[:, 0]  # duplicate column
    M = SketchPreconditioner(A, DiagLowRank(np.ones(n)), "countsketch", seed=0)
    assert M.shift > 0
    v = rng.standard_normal(d)
    assert np.all(np.isfinite(M @ v)) and float(v @ (M @ v)) > 0


def test_preconditioner_by_name_uses_sketch_size(rng):
    n, d = 1000, 10
    A = _random_csr(rng, n, d)
    M = SketchPreconditioner(A, DiagLowRank(np.ones(n)), "countsketch", sketch_size=123, seed=0)
    assert M.sketch_size == 123 and M.sketch.shape == (123, n)


# -- bad input ---------------------------------------------------------------------------

def test_diag_low_rank_errors_name_the_argument():
    n = 5
    with pytest.raises(ValidationError, match="beta contains NaN"):
        DiagLowRank([1.0, np.nan, 1.0])
    with pytest.raises(ValidationError, match="beta must be 1-D"):
        DiagLowRank(np.ones((2, 2)))
    with pytest.raises(ValidationError, match="U and C must be given together"):
        DiagLowRank(np.ones(n), U=np.ones((n, 1)))
    with pytest.raises(ValidationError, match=r"U must have shape \(5, k\)"):
        DiagLowRank(np.ones(n), U=np.ones((4, 1)), C=np.ones((1, 1)))
    with pytest.raises(ValidationError, match=r"C must have shape \(2, 2\)"):
        DiagLowRank(np.ones(n), U=np.ones((n, 2)), C=np.ones((3, 3)))
    with pytest.raises(ValidationError, match="U contains NaN"):
        DiagLowRank(np.ones(n), U=np.full((n, 1), np.inf), C=np.ones((1, 1)))
    with pytest.raises(ValidationError, match="C contains NaN"):
        DiagLowRank(np.ones(n), U=np.ones((n, 1)), C=[[np.nan]])
    with pytest.raises(ValidationError, match="C must be symmetric"):
        DiagLowRank(np.ones(n), U=np.ones((n, 2)), C=[[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(TypeError, match="U must be a dense array"):
        DiagLowRank(np.ones(n), U=sp.csr_array(np.ones((n, 1))), C=[[1.0]])
    with pytest.raises(ValidationError, match=r"t must have shape \(5,\)"):
        DiagLowRank(np.ones(n)).matvec(np.ones(4))


def test_shape_mismatch_between_A_and_parts(rng):
    A = _random_csr(rng, 50, 4)
    bad = DiagLowRank(np.ones(49))
    for build in (lambda: gram(A, bad), lambda: HessianOperator(A, bad),
                  lambda: SketchPreconditioner(A, bad, "countsketch", seed=0),
                  lambda: sketched_gram(A, bad, CountSketch(10, 50, seed=0))):
        with pytest.raises(ValidationError, match="parts has n = 49 .* A has 50 rows"):
            build()
    with pytest.raises(TypeError, match="parts must be a DiagLowRank"):
        HessianOperator(A, np.ones(50))
    M = SketchPreconditioner(A, DiagLowRank(np.ones(50)), "countsketch", seed=0)
    with pytest.raises(ValidationError, match="parts has n = 49"):
        M.update(bad)
    with pytest.raises(ValidationError, match="ridge must be finite"):
        HessianOperator(A, DiagLowRank(np.ones(50)), ridge=np.nan)


def test_operators_applied_to_wrong_size(rng):
    A = _random_csr(rng, 50, 4)
    parts = DiagLowRank(np.ones(50))
    M = SketchPreconditioner(A, parts, "countsketch", seed=0)
    H = HessianOperator(A, parts)
    with pytest.raises(ValidationError, match=r"the preconditioner is 4 x 4 but was applied "
                                              r"to an operand of shape \(5,\)"):
        M @ np.ones(5)
    with pytest.raises(ValidationError, match=r"the preconditioner is 4 x 4 .* \(3, 2\)"):
        M @ np.ones((3, 2))
    with pytest.raises(ValidationError, match=r"the Hessian operator is 4 x 4 .* \(50,\)"):
        H.matvec(np.ones(50))
    with pytest.raises(ValidationError, match=r"the Hessian operator is 4 x 4 .* \(6, 1\)"):
        H @ np.ones((6, 1))


def test_preconditioner_sketch_of_wrong_size(rng):
    A = _random_csr(rng, 50, 4)
    with pytest.raises(ValueError, match="sketch has 60 columns but A has 50 rows"):
        SketchPreconditioner(A, DiagLowRank(np.ones(50)), CountSketch(10, 60, seed=0))
