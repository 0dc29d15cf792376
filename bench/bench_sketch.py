"""Speed of the sketches (pytest-benchmark).

Run: ``PYTHONPATH=$PWD python -m pytest bench/bench_sketch.py --bench-size full
--benchmark-json=sketch.json``. Sizes (:data:`SIZES`) follow ``--bench-size``:

- ``quick`` (CI smoke, seconds): CSR n = 20,000, 10 nonzeros per row, d = 50; SRHT 2^12 x 64;
- ``default`` (under a minute): CSR n = 500,000, 20 per row, d = 500; SRHT 2^16 x 512;
- ``full`` (the issue's acceptance sizes): CSR n = 1e6, 20 per row, d = 1000 (m = 2000);
  SRHT of a dense 2^17 x 1024 matrix (m = 2048; needs about 3 GiB).

Precedence: an environment variable that is set wins over ``--bench-size`` for its own
size, the others still come from ``--bench-size``: ``FASTNEWTON_BENCH_N`` (CSR rows),
``FASTNEWTON_BENCH_D`` (CSR columns), ``FASTNEWTON_BENCH_NNZ_PER_ROW``,
``FASTNEWTON_BENCH_SRHT_LOG2N`` (log2 of the dense rows), ``FASTNEWTON_BENCH_SRHT_D``.
The sketch size is m = 2d throughout. Every benchmark's ``extra_info`` has its sizes.
Compare within one run:

- countsketch-vs-spmv: CountSketch S diag(sqrt(w)) A (m = 2d, bucket layout built)
  vs one scipy ``A @ x``; the one-off layout (hash + rows grouped by bucket);
  SparseSign k = 4 (same m); CountSketch on 1 vs 2 threads.
- srht: SRHT of a dense 2^k x d matrix (m = 2d) vs a scipy.fft DCT-II based
  subsampled randomized trigonometric transform, and vs one scaled copy of the input.
"""

import numpy as np
import pytest
import scipy.fft
import scipy.sparse as sp

from fastnewton._threads import thread_limit
from fastnewton.linalg import Design
from fastnewton.sketch import SRHT, CountSketch, SparseSign

#: Sizes of each ``--bench-size`` (environment variables in :data:`ENV` override them).
SIZES = {
    "quick": dict(n=20_000, nnz_per_row=10, d=50, srht_log2n=12, srht_d=64),
    "default": dict(n=500_000, nnz_per_row=20, d=500, srht_log2n=16, srht_d=512),
    "full": dict(n=1_000_000, nnz_per_row=20, d=1000, srht_log2n=17, srht_d=1024),
}
ENV = {"n": "FASTNEWTON_BENCH_N", "d": "FASTNEWTON_BENCH_D",
       "nnz_per_row": "FASTNEWTON_BENCH_NNZ_PER_ROW",
       "srht_log2n": "FASTNEWTON_BENCH_SRHT_LOG2N", "srht_d": "FASTNEWTON_BENCH_SRHT_D"}


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
def cfg(sizes):
    """This run's sizes (``--bench-size`` and the environment overrides)."""
    c = sizes(SIZES, ENV)
    c["nnz_per_row"] = min(c["nnz_per_row"], c["d"])
    return c


@pytest.fixture(scope="module")
def csr_case(cfg):
    n, d, k = cfg["n"], cfg["d"], cfg["nnz_per_row"]
    A = _csr(n, d, k)
    design = Design(A)
    w = np.random.default_rng(1).random(n)
    info = dict(n=n, d=d, nnz_per_row=k, nnz=int(A.nnz), m=2 * d, bench_size=cfg["bench_size"])
    return A, design, w, info


def _info(benchmark, info, **kw):
    benchmark.extra_info.update(info)
    benchmark.extra_info.update(kw)


@pytest.mark.benchmark(group="countsketch-vs-spmv")
def test_scipy_spmv(benchmark, csr_case):
    A, _, _, info = csr_case
    x = np.random.default_rng(2).standard_normal(A.shape[1])
    A @ x
    _info(benchmark, info, what="scipy A @ x")
    benchmark(lambda: A @ x)


@pytest.mark.benchmark(group="countsketch-vs-spmv")
@pytest.mark.parametrize("threads", [1, 2])
def test_countsketch_apply(benchmark, csr_case, threads):
    _, design, w, info = csr_case
    m, d = info["m"], info["d"]
    S = CountSketch(m, design.n, seed=0).prepare(design)
    out = np.empty((m, d))
    S.apply(design, row_weights=w, out=out)  # warm the JIT
    _info(benchmark, info, threads=threads,
          what="CountSketch S diag(sqrt w) A, bucket layout built")
    with thread_limit(threads):
        benchmark(lambda: S.apply(design, row_weights=w, out=out))


@pytest.mark.benchmark(group="countsketch-vs-spmv")
def test_countsketch_layout(benchmark, csr_case):
    _, design, _, info = csr_case
    m, d = info["m"], info["d"]
    CountSketch(64, 1000, seed=0).prepare(Design(_csr(1000, d, info["nnz_per_row"])))
    _info(benchmark, info, what="one-off: hash, bucket grouping, reordered copy of A")
    benchmark.pedantic(lambda: CountSketch(m, design.n, seed=0).prepare(design), rounds=3,
                       iterations=1)


@pytest.mark.benchmark(group="countsketch-vs-spmv")
def test_sparse_sign_k4(benchmark, csr_case):
    _, design, w, info = csr_case
    m, d = info["m"], info["d"]
    S = SparseSign(m, design.n, nnz_per_row=4, seed=0)
    out = np.empty((m, d))
    S.apply(design, row_weights=w, out=out)
    _info(benchmark, info, k=4, what="SparseSign k=4 S diag(sqrt w) A")
    benchmark(lambda: S.apply(design, row_weights=w, out=out))


@pytest.fixture(scope="module")
def dense_case(cfg):
    n = 2 ** cfg["srht_log2n"]
    A = np.random.default_rng(3).standard_normal((n, cfg["srht_d"]))
    info = dict(n=n, d=cfg["srht_d"], m=2 * cfg["srht_d"], bench_size=cfg["bench_size"])
    return A, info


@pytest.mark.benchmark(group="srht")
def test_srht_dense(benchmark, dense_case):
    A, info = dense_case
    n, d = A.shape
    m = info["m"]
    S = SRHT(m, n, seed=0)
    out = np.empty((m, d))
    S.apply(A, out=out)  # warm the JIT
    _info(benchmark, info, what="SRHT (numba FWHT pruned to the sampled rows)")
    benchmark.pedantic(lambda: S.apply(A, out=out), rounds=3, iterations=1)


@pytest.mark.benchmark(group="srht")
def test_scipy_fft_srtt(benchmark, dense_case):
    A, info = dense_case
    n, d = A.shape
    m = info["m"]
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
    _info(benchmark, info, what="scipy.fft DCT-II subsampled randomized trig. transform")
    benchmark.pedantic(srtt, rounds=3, iterations=1)


@pytest.mark.benchmark(group="srht")
def test_scaled_copy(benchmark, dense_case):
    A, info = dense_case
    buf = np.empty_like(A)
    np.multiply(A, 0.5, out=buf)
    _info(benchmark, info, what="one scaled copy of A (memory floor)")
    benchmark.pedantic(lambda: np.multiply(A, 0.5, out=buf), rounds=3, iterations=1)
