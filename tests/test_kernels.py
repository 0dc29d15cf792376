"""Design products, exact Gram and CountSketch vs dense formulas; thread-count invariance."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastnewton._threads import thread_limit
from fastnewton.hessian import DiagLowRank, gram, sketched_gram, weighted_gram
from fastnewton.hessian import _gram as gram_module
from fastnewton.linalg import Design
from fastnewton.linalg._design import n_row_blocks
from fastnewton.sketch import CountSketch


FORMATS = ("csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix", "coo_array",
           "dense")


def assert_close(got, ref, rtol=1e-12):
    """max |got - ref| <= rtol * max |ref| (relative to the scale of the result)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape
    assert got.dtype == np.float64
    scale = np.abs(ref).max()
    err = np.abs(got - ref).max()
    assert err <= rtol * scale, f"max error {err:.3e} vs scale {scale:.3e}"


def make_matrix(rng, n, d, fmt, index_dtype=np.int32, dtype=np.float64, density=0.1):
    """A random n x d matrix in format ``fmt`` with the given index and value dtypes.

    Returns (matrix, dense float64 copy of its values as stored, i.e. after the dtype cast).
    """
    A = sp.random_array((n, d), density=density, rng=rng, format="csr",
                        data_sampler=rng.standard_normal).astype(dtype)
    A.sum_duplicates()
    ref = A.toarray().astype(np.float64)
    if fmt == "dense":
        return A.toarray(), ref
    kind, container = fmt.split("_")
    A = getattr(A, "to" + kind)()
    if container == "matrix":
        A = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "coo": sp.coo_matrix}[kind](A)
    if kind == "coo":
        if container == "array":
            A.coords = tuple(c.astype(index_dtype) for c in A.coords)
        else:
            A.row, A.col = A.row.astype(index_dtype), A.col.astype(index_dtype)
    else:
        A.indices = A.indices.astype(index_dtype)
        A.indptr = A.indptr.astype(index_dtype)
    assert A.dtype == dtype
    return A, ref


MATRIX_CASES = [(fmt, idx, dt) for fmt in FORMATS for idx in (np.int32, np.int64)
                for dt in (np.float32, np.float64) if not (fmt == "dense" and idx == np.int64)]


def _ids(case):
    fmt, idx, dt = case
    return f"{fmt}-{np.dtype(idx).name}-{np.dtype(dt).name}"


@pytest.mark.parametrize("case", MATRIX_CASES, ids=[_ids(c) for c in MATRIX_CASES])
def test_design_products_match_dense(rng, case):
    fmt, idx, dt = case
    n, d = 300, 17
    A, Ad = make_matrix(rng, n, d, fmt, idx, dt)
    design = Design(A)
    if fmt in ("csr_matrix", "csr_array"):
        assert design.A.indices.dtype == idx  # CSR index width kept (scipy's tocsr may shrink it)
    if fmt != "dense":
        assert design.dtype == dt  # float32 kept for sparse A
    x = rng.standard_normal(d)
    y = rng.standard_normal(n)
    beta = rng.standard_normal(n)  # includes negative entries
    y[::7] = 0.0  # zeros take the skip branch of the transpose kernel
    assert_close(design.matvec(x), Ad @ x)
    assert_close(design.rmatvec(y), Ad.T @ y)
    out, t = design.normal_matvec(beta, x)
    assert_close(t, Ad @ x)
    assert_close(out, Ad.T @ (beta * (Ad @ x)))
    P = rng.standard_normal((d, 3))
    assert_close(design.matmat(P), Ad @ P)
    for k in (1, 2, 3, 4):  # pairs of columns in one pass, an odd one alone
        U = rng.standard_normal((n, k))
        assert_close(design.rmatmat(U), Ad.T @ U)
        assert_close(design.rmatmat(np.asfortranarray(U)), Ad.T @ U)


@pytest.fixture(params=["streaming", "csc"])
def gram_path(request, monkeypatch):
    """Run the exact Gram through its row-block streaming kernel or its CSC fallback."""
    if request.param == "csc":
        # budget below one d x d buffer: forces the column-parallel kernel over CSC
        monkeypatch.setattr(gram_module, "GRAM_BUFFER_BYTES", 8)
    return request.param


@pytest.mark.parametrize("case", MATRIX_CASES, ids=[_ids(c) for c in MATRIX_CASES])
def test_gram_matches_dense(rng, case, gram_path):
    fmt, idx, dt = case
    n, d, k = 257, 13, 2
    A, Ad = make_matrix(rng, n, d, fmt, idx, dt, density=0.3)
    beta = rng.standard_normal(n)  # negative entries too
    assert_close(weighted_gram(A, beta), Ad.T @ (beta[:, None] * Ad))
    U = rng.standard_normal((n, k))
    C = rng.standard_normal((k, k))
    C = C + C.T
    parts = DiagLowRank(beta, U, C)
    ridge = 0.37
    H = gram(A, parts, ridge=ridge)
    ref = Ad.T @ parts.to_dense() @ Ad + ridge * np.eye(d)
    assert_close(H, ref)
    assert np.array_equal(H, H.T)
    assert_close(gram(A, DiagLowRank(beta)), Ad.T @ (beta[:, None] * Ad))


def test_gram_path_fixture_switches_kernel(monkeypatch):
    """The fixture above really selects different kernels (guards the test's premise)."""
    assert gram_module.gram_row_blocks(100, 10) == 1
    assert 10 * 10 <= gram_module.GRAM_BUFFER_BYTES // 8
    monkeypatch.setattr(gram_module, "GRAM_BUFFER_BYTES", 8)
    assert 10 * 10 > gram_module.GRAM_BUFFER_BYTES // 8


@pytest.mark.parametrize("fmt", ["csr_array", "coo_matrix", "dense"])
@pytest.mark.parametrize("weighted", [False, True])
def test_countsketch_apply_matches_dense(rng, fmt, weighted):
    n, d, m = 400, 11, 37
    A, Ad = make_matrix(rng, n, d, fmt, density=0.2)
    S = CountSketch(m, n, seed=int(rng.integers(2**32)))
    Sd = S.to_dense()
    # one +-1 per column of S
    assert Sd.shape == (m, n)
    assert np.array_equal(np.abs(Sd).sum(axis=0), np.ones(n))
    w = None
    if weighted:
        w = rng.uniform(0, 3, n)
        w[::5] = 0.0
    ref = Sd @ (Ad if w is None else np.sqrt(w)[:, None] * Ad)
    assert_close(S.apply(A, row_weights=w), ref)
    # as the driver calls it: on a Design, reordered layout or not, same bits
    design = Design(A)
    a = CountSketch(m, n, seed=7, reorder=True)
    b = CountSketch(m, n, seed=7, reorder=False)
    Sa = a.to_dense()
    assert np.array_equal(Sa, b.to_dense())
    ra = a.apply(design, row_weights=w)
    ra2 = a.apply(design, row_weights=w)  # reuses the cached reordered layout
    rb = b.apply(design, row_weights=w)
    assert np.array_equal(ra, rb)
    assert np.array_equal(ra, ra2)
    assert_close(ra, Sa @ (Ad if w is None else np.sqrt(w)[:, None] * Ad))
    # a vector input
    v = rng.standard_normal(n)
    assert_close(a.apply(v), Sa @ v)


def test_countsketch_row_blocks_add_up(rng):
    """apply_rows over a partition of the rows sums to apply on the whole matrix."""
    n, d, m = 500, 7, 23
    A, Ad = make_matrix(rng, n, d, "csr_array", density=0.3)
    w = rng.uniform(0, 2, n)
    S = CountSketch(m, n, seed=3)
    whole = S.apply(A, row_weights=w)
    cuts = [0, 120, 121, 380, n]
    parts = sum(S.apply_rows(A[lo:hi], lo, row_weights=w[lo:hi]) for lo, hi in zip(cuts, cuts[1:]))
    assert_close(parts, whole)


def test_sketched_gram_matches_dense(rng):
    n, d, m = 300, 9, 40
    A, Ad = make_matrix(rng, n, d, "csr_array", density=0.3)
    beta = rng.standard_normal(n)
    U = rng.standard_normal((n, 1))
    C = np.array([[0.5]])
    S = CountSketch(m, n, seed=11)
    H = sketched_gram(A, DiagLowRank(beta, U, C), S, ridge=0.2)
    SA = S.to_dense() @ (np.sqrt(np.maximum(beta, 0))[:, None] * Ad)
    ref = SA.T @ SA + (Ad.T @ U) @ C @ (Ad.T @ U).T + 0.2 * np.eye(d)
    assert_close(H, ref)


# -- thread-count invariance ------------------------------------------------------------

def _all_products(A, rng_seed):
    """Every kernel product on A, computed with the current thread settings."""
    rng = np.random.default_rng(rng_seed)
    design = Design(A)
    n, d = design.shape
    x = rng.standard_normal(d)
    y = rng.standard_normal(n)
    beta = rng.standard_normal(n)
    U = rng.standard_normal((n, 2))
    out = {
        "matvec": design.matvec(x),
        "rmatvec": design.rmatvec(y),
        "normal": np.concatenate(design.normal_matvec(beta, x)),
        "weighted_gram": weighted_gram(design, beta),
        "gram_lowrank": gram(design, DiagLowRank(beta, U, np.eye(2)), ridge=0.1),
        "rmatmat": design.rmatmat(np.column_stack([U, y])),
    }
    for reorder in (True, False):
        S = CountSketch(64, n, seed=5, reorder=reorder)
        out[f"countsketch_{reorder}"] = S.apply(design, row_weights=np.abs(beta))
        out[f"countsketch_rmatvec_{reorder}"] = np.concatenate(
            [a.ravel() for a in S.apply_and_rmatvec(design, y, row_weights=np.abs(beta))])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_for_1_and_2_threads(rng, dtype, gram_path):
    n, d = 3 * 4096 + 123, 40  # several row blocks
    assert n_row_blocks(n) >= 3
    assert gram_module.gram_row_blocks(n, d) >= 3 or gram_path == "csc"
    A, Ad = make_matrix(rng, n, d, "csr_array", np.int32, dtype, density=0.05)
    seed = int(rng.integers(2**32))
    with thread_limit(1):
        one = _all_products(A, seed)
    with thread_limit(2):
        two = _all_products(A, seed)
    for key in one:
        assert np.array_equal(one[key], two[key]), key
    # and still right at this size
    r = np.random.default_rng(seed)
    x = r.standard_normal(d)
    y = r.standard_normal(n)
    beta = r.standard_normal(n)
    assert_close(one["matvec"], Ad @ x)
    assert_close(one["rmatvec"], Ad.T @ y)
    assert_close(one["weighted_gram"], Ad.T @ (beta[:, None] * Ad))
    assert_close(one["countsketch_True"], one["countsketch_False"], rtol=0)


def test_two_threads_really_available():
    """Thread invariance above is vacuous on a 1-thread numba: make sure 2 are usable."""
    import numba

    with thread_limit(2):
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    assert numba.config.NUMBA_NUM_THREADS >= 2


def test_fixed_dot_ignores_blas_threads(rng):
    """Long n-vector reductions (objective, line search) must not depend on BLAS threads."""
    from fastnewton.linalg._design import fixed_dot

    for n in (50_000, 5_000, 4 * 4096 + 3):  # numba blocks / einsum / ragged last block
        a, b, c = rng.standard_normal((3, n))
        with thread_limit(1):
            one, one3 = fixed_dot(a, b), fixed_dot(a, b, c)
        with thread_limit(2):
            two, two3 = fixed_dot(a, b), fixed_dot(a, b, c)
        assert one == two and one3 == two3
        assert one == pytest.approx(float(np.dot(a, b)), rel=1e-12,
                                    abs=1e-12 * np.abs(a * b).sum())
        assert one3 == pytest.approx(float(np.sum(a * b * c)), rel=1e-12,
                                     abs=1e-12 * np.abs(a * b * c).sum())


def test_axpby_matches_numpy_rounding(rng):
    from fastnewton.linalg._design import axpby

    for n in (10, 3 * 4096 + 1, 60_000):
        x, y = rng.standard_normal((2, n))
        for alpha, beta in ((1.0, 0.37), (-0.5, 2.25), (1.0, -1.0)):
            assert np.array_equal(axpby(alpha, x, beta, y), alpha * x + beta * y)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_curvature_sums_match_numpy_and_ignore_threads(rng, k):
    from fastnewton.linalg._design import curvature_sums

    n = 3 * 4096 + 123
    beta, a, b = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    U = rng.standard_normal((n, k)) if k else None
    with thread_limit(1):
        one = curvature_sums(beta, a, b, U)
    with thread_limit(2):
        two = curvature_sums(beta, a, b, U)
    for x, y in zip(one, two):
        assert (x is None and y is None) or np.array_equal(x, y)
    ref = (beta @ (a * a), beta @ (a * b), beta @ (b * b))
    np.testing.assert_allclose(one[:3], ref, rtol=1e-11)
    if k:
        np.testing.assert_allclose(one[3], U.T @ a, rtol=1e-11, atol=1e-11 * n)
        np.testing.assert_allclose(one[4], U.T @ b, rtol=1e-11, atol=1e-11 * n)
    else:
        assert one[3] is None and one[4] is None
    with pytest.raises(ValueError, match="one length"):
        curvature_sums(beta, a, b[:-1], U)


def test_row_sq_norms_of_A_M_match_dense(rng):
    from fastnewton.sketch._leverage import _row_sq_norms

    for k in (1, 7, 8, 23):
        A, Ad = make_matrix(rng, 700, 11, "csr_array", np.int64, np.float32, density=0.3)
        M = rng.standard_normal((11, k))
        ref = np.sum((Ad @ M) ** 2, axis=1)
        with thread_limit(1):
            one = _row_sq_norms(Design(A), M)
        with thread_limit(2):
            two = _row_sq_norms(Design(A), M)
        assert np.array_equal(one, two)
        np.testing.assert_allclose(one, ref, rtol=1e-12, atol=1e-12 * ref.max())


def _one_pass_products(design, rng):
    n, d = design.n, design.d
    y, w, p = rng.standard_normal(n), rng.random(n), rng.standard_normal(d)
    g, diag = design.rmatvec_diag(y, w)
    H, t = design.normal_matvec(w, p)
    return {"rmatvec": design.rmatvec(y), "rmatvec_diag_g": g, "rmatvec_diag_d": diag,
            "col_sq": design.weighted_col_sq(w), "normal": H, "normal_t": t}, (y, w, p)


@pytest.mark.parametrize("fmt", ["csr_array", "dense", "dense_fortran"])
@pytest.mark.parametrize("intercept", [False, True])
def test_one_pass_products_match_numpy_and_ignore_threads(rng, fmt, intercept):
    """The fused one-pass products (gradient + Jacobi diagonal, normal product, dense
    transpose product) against numpy, and bitwise the same for 1 and 2 threads."""
    from fastnewton.linalg._design import InterceptDesign

    n, d = 3 * 4096 + 77, 37
    A, Ad = make_matrix(rng, n, d, "dense" if fmt.startswith("dense") else fmt, density=0.1)
    if fmt == "dense_fortran":
        A = np.asfortranarray(A)
    design = InterceptDesign(A) if intercept else Design(A)
    Ab = np.column_stack([Ad, np.ones(n)]) if intercept else Ad
    seed = int(rng.integers(2**32))
    with thread_limit(1):
        one, (y, w, p) = _one_pass_products(design, np.random.default_rng(seed))
    with thread_limit(2):
        two, _ = _one_pass_products(design, np.random.default_rng(seed))
    for key in one:
        assert np.array_equal(one[key], two[key]), key
    assert_close(one["rmatvec"], Ab.T @ y)
    assert_close(one["rmatvec_diag_g"], Ab.T @ y)
    assert_close(one["rmatvec_diag_d"], (Ab * Ab).T @ w)
    assert np.array_equal(one["rmatvec_diag_d"], one["col_sq"])  # the same rounding
    assert_close(one["normal_t"], Ab @ p)
    assert_close(one["normal"], Ab.T @ (w * (Ab @ p)))


def test_one_pass_products_check_lengths():
    from fastnewton.exceptions import ValidationError

    design = Design(np.ones((5, 3)))
    with pytest.raises(ValidationError, match="w must have shape"):
        design.rmatvec_diag(np.ones(5), np.ones(4))
    with pytest.raises(ValidationError, match="y must have shape"):
        design.rmatvec_diag(np.ones(6), np.ones(5))


def test_axpy_max_abs_matches_numpy(rng):
    from fastnewton.linalg._design import axpy_max_abs

    for n in (0, 10, 3 * 4096 + 1, 60_000):
        x, y = rng.standard_normal((2, n))
        ref = y + 0.37 * x
        m = axpy_max_abs(0.37, x, y)
        assert np.array_equal(y, ref) and m == (np.abs(x).max() if n else 0.0)


def test_solver_blas_keeps_vector_work_on_one_thread_and_gives_large_calls_back():
    """Inside a solve with long vectors, BLAS runs on one thread (d-vector dots), except
    blas_for calls of large dense work, which get the thread count in force before;
    afterwards all is as before. Short vectors change nothing (no switching cost). The
    library's solve runs under it, and leaves the count unchanged."""
    import scipy.sparse as sp
    from threadpoolctl import threadpool_info

    import fastnewton as fn
    from fastnewton._threads import SMALL_BLAS_FLOPS, VECTOR_BLAS_MIN, blas_for, solver_blas

    def blas_threads():
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    with thread_limit(2):
        before = blas_threads()
        with solver_blas():
            assert blas_threads() == 1
            with blas_for(10 * SMALL_BLAS_FLOPS):
                assert blas_threads() == before
            with blas_for(1.0):
                assert blas_threads() == 1
            with solver_blas():  # nested: the outer one holds the count
                assert blas_threads() == 1
            assert blas_threads() == 1
        assert blas_threads() == before
        with solver_blas(VECTOR_BLAS_MIN - 1):
            assert blas_threads() == before
        seen = []
        data = fn.datasets.make_regression(500, 5, seed=0)
        fn.minimize(fn.ExpRegression(data.A, data.b, data.w), method="exact",
                    callback=lambda r: seen.append(blas_threads()))
        assert seen and set(seen) == {before} and blas_threads() == before
        seen = []
        A = sp.random(3000, VECTOR_BLAS_MIN + 10, density=0.003, format="csr", random_state=0)
        y = (np.random.default_rng(0).random(3000) < 0.4).astype(float)
        fn.minimize(fn.GLMRegression(A, y, family="binomial", lam=1.0), method="wide",
                    callback=lambda r: seen.append(blas_threads()))
        assert seen and set(seen) == {1} and blas_threads() == before
