"""Speed of the sketches (pytest-benchmark).

Run: ``PYTHONPATH=$PWD python -m pytest bench/bench_sketch.py --benchmark-json=sketch.json``.
Sizes default to the issue's (CSR n = 1e6, 20 nonzeros per row, d = 1000; dense SRHT
2^17 x 1024); scale them down with ``FASTNEWTON_BENCH_N`` (CSR rows),
``FASTNEWTON_BENCH_D`` and ``FASTNEWTON_BENCH_SRHT_LOG2N``. Compare within one run:

- countsketch-vs-spmv: CountSketch S diag(sqrt(w)) A (m = 2d, bucket layout built)
  vs one scipy ``A @ x``; the one-off layout (hash + rows grouped by bucket);
  SparseSign k = 4 (same m); CountSketch on 1 vs 2 threads.
- srht: SRHT of a dense 2^17 x 1024 matrix (m = 2 * 1024) vs a scipy.fft DCT-II based
  subsampled randomized trigonometric transform, and vs one scaled copy of the input.
"""

import os

import numpy as np
import pytest
import scipy.fft
import scipy.sparse as sp

from fastnewton._threads import thread_limit
from fastnewton.linalg import Design
from fastnewton.sketch import SRHT, CountSketch, SparseSign

N = int(os.environ.get("FASTNEWTON_BENCH_N", 1_000_000))
D = int(os.environ.get("FASTNEWTON_BENCH_D", 1000))
NNZ_PER_ROW = 20
SRHT_LOG2N = int(os.environ.get("FASTNEWTON_BENCH_SRHT_LOG2N", 17))
SRHT_D = int(os.environ.get("FASTNEWTON_BENCH_SRHT_D", 1024))


def _csr(n, d, k, seed=0):
    """CSR with k distinct sorted columns per row (one per stratum of d // k columns)."""
    rng = np.random.default_rng(seed)
    width = d // k
    cols = (np.arange(k) * width + rng.integers(0, width, size=(n, k))).astype(np.int32)
    indptr = np.arange(0, n * k + 1, k, dtype=np.int32)
    A = sp.csr_array((rng.standard_normal(n * k), cols.ravel(), indptr), shape=(n, d))
    A.has_sorted_indices = True
    return A


@pytest.fixture(scope="module")
def csr_case():
    A = _csr(N, D, NNZ_PER_ROW)
    design = Design(A)
    w = np.random.default_rng(1).random(N)
    return A, design, w


def _info(benchmark, **kw):
    benchmark.extra_info.update(kw)


@pytest.mark.benchmark(group="countsketch-vs-spmv")
def test_scipy_spmv(benchmark, csr_case):
    A, _, _ = csr_case
    x = np.random.default_rng(2).standard_normal(D)
    A @ x
    _info(benchmark, n=N, d=D, nnz=int(A.nnz), what="scipy A @ x")
    benchmark(lambda: A @ x)


@pytest.mark.benchmark(group="countsketch-vs-spmv")
@pytest.mark.parametrize("threads", [1, 2])
def test_countsketch_apply(benchmark, csr_case, threads):
    _, design, w = csr_case
    m = 2 * D
    S = CountSketch(m, N, seed=0).prepare(design)
    out = np.empty((m, D))
    S.apply(design, row_weights=w, out=out)  # warm the JIT
    _info(benchmark, n=N, d=D, m=m, nnz=design.nnz, threads=threads,
          what="CountSketch S diag(sqrt w) A, bucket layout built")
    with thread_limit(threads):
        benchmark(lambda: S.apply(design, row_weights=w, out=out))


@pytest.mark.benchmark(group="countsketch-vs-spmv")
def test_countsketch_layout(benchmark, csr_case):
    _, design, _ = csr_case
    m = 2 * D
    CountSketch(64, 1000, seed=0).prepare(Design(_csr(1000, D, NNZ_PER_ROW)))
    _info(benchmark, n=N, d=D, m=m, what="one-off: hash, bucket grouping, reordered copy of A")
    benchmark.pedantic(lambda: CountSketch(m, N, seed=0).prepare(design), rounds=3, iterations=1)


@pytest.mark.benchmark(group="countsketch-vs-spmv")
def test_sparse_sign_k4(benchmark, csr_case):
    _, design, w = csr_case
    m = 2 * D
    S = SparseSign(m, N, nnz_per_row=4, seed=0)
    out = np.empty((m, D))
    S.apply(design, row_weights=w, out=out)
    _info(benchmark, n=N, d=D, m=m, k=4, nnz=design.nnz, what="SparseSign k=4 S diag(sqrt w) A")
    benchmark(lambda: S.apply(design, row_weights=w, out=out))


@pytest.fixture(scope="module")
def dense_case():
    n = 2 ** SRHT_LOG2N
    A = np.random.default_rng(3).standard_normal((n, SRHT_D))
    return A


@pytest.mark.benchmark(group="srht")
def test_srht_dense(benchmark, dense_case):
    A = dense_case
    n, d = A.shape
    m = 2 * d
    S = SRHT(m, n, seed=0)
    out = np.empty((m, d))
    S.apply(A, out=out)  # warm the JIT
    _info(benchmark, n=n, d=d, m=m, what="SRHT (numba blocked FWHT)")
    benchmark.pedantic(lambda: S.apply(A, out=out), rounds=3, iterations=1)


@pytest.mark.benchmark(group="srht")
def test_scipy_fft_srtt(benchmark, dense_case):
    A = dense_case
    n, d = A.shape
    m = 2 * d
    rng = np.random.default_rng(4)
    signs = rng.choice([-1.0, 1.0], size=n)
    rows = np.sort(rng.choice(n, m, replace=False))
    buf = np.empty_like(A)
    scale = np.sqrt(n / m)

    def srtt():
        np.multiply(A, signs[:, None], out=buf)
        T = scipy.fft.dct(buf, type=2, axis=0, norm="ortho", overwrite_x=True)
        return scale * T[rows]

    srtt()
    _info(benchmark, n=n, d=d, m=m, what="scipy.fft DCT-II subsampled randomized trig. transform")
    benchmark.pedantic(srtt, rounds=3, iterations=1)


@pytest.mark.benchmark(group="srht")
def test_scaled_copy(benchmark, dense_case):
    A = dense_case
    buf = np.empty_like(A)
    np.multiply(A, 0.5, out=buf)
    _info(benchmark, n=A.shape[0], d=A.shape[1], what="one scaled copy of A (memory floor)")
    benchmark.pedantic(lambda: np.multiply(A, 0.5, out=buf), rounds=3, iterations=1)
