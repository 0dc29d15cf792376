"""Physical floors: every other figure of the suite is reported as a multiple of these.

One scipy ``A @ x`` and ``A.T @ y`` (single-threaded CSR products), a numpy copy of as
many bytes as A occupies (memory bandwidth: no pass over A can beat it) and one d x d
Cholesky (LAPACK, the d^3/3 part of a Newton step).
"""

import numpy as np
import scipy.linalg as sla


def test_scipy_matvec(benchmark, grid_case, bench_data, record, measure):
    A = bench_data(grid_case).A
    x = np.random.default_rng(0).standard_normal(A.shape[1])
    record(benchmark, grid_case, "floor", "scipy_matvec")
    y = measure(benchmark, lambda: A @ x)
    assert y.shape == (A.shape[0],)


def test_scipy_rmatvec(benchmark, grid_case, bench_data, record, measure):
    A = bench_data(grid_case).A
    y = np.random.default_rng(0).standard_normal(A.shape[0])
    AT = A.T
    record(benchmark, grid_case, "floor", "scipy_rmatvec")
    out = measure(benchmark, lambda: AT @ y)
    assert out.shape == (A.shape[1],)


def test_memcopy(benchmark, grid_case, bench_data, record, measure):
    A = bench_data(grid_case).A
    nbytes = A.data.nbytes + A.indices.nbytes + A.indptr.nbytes
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    record(benchmark, grid_case, "floor", "memcopy", bytes=int(nbytes))
    measure(benchmark, lambda: np.copyto(dst, src))
    assert dst[-1] == 1


def test_cholesky(benchmark, grid_case, record, measure):
    d = grid_case.d
    X = np.random.default_rng(0).standard_normal((2 * d, d))
    H = X.T @ X / (2 * d) + np.eye(d)
    record(benchmark, grid_case, "floor", "cholesky")
    c = measure(benchmark, lambda: sla.cholesky(H, lower=False, check_finite=False))
    assert np.allclose(c.T @ c, H)
