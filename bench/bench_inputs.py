"""Cost of accepting any scipy input, and of the cached fast path (pytest-benchmark).

Run: ``PYTHONPATH=$PWD python -m pytest bench/bench_inputs.py --bench-size default
--benchmark-json=inputs.json``. Sizes (:data:`SIZES`) follow ``--bench-size``:

- ``quick`` (CI smoke, seconds): CSR n = 50,000, 10 nonzeros per row, d = 100;
  solver calls on n = 20,000, 10 per row, d = 50;
- ``default`` and ``full`` (the issue's size): CSR n = 1e6, 20 nonzeros per row, d = 500
  (about 240 MB); the solver calls (gram, HessianOperator, pcg, lstsq) on n = 2e5,
  20 per row, d = 200.

Environment overrides: ``FASTNEWTON_BENCH_INPUTS_N``, ``FASTNEWTON_BENCH_INPUTS_D``,
``FASTNEWTON_BENCH_INPUTS_NNZ_PER_ROW`` (the validation and sketch matrix) and
``FASTNEWTON_BENCH_INPUTS_SOLVER_N``, ``..._SOLVER_D``, ``..._SOLVER_NNZ_PER_ROW``.

Every timing is compared with one scipy ``A @ x`` on the same matrix, measured in the
same run (``extra_info["spmv_s"]``); ``extra_info["ratio"]`` is the benchmark's time over
it, ``extra_info["target"]`` the ratio the design promises:

- validate-canonical: ``as_design(A, cache=False)`` of a canonical CSR (checks only, no
  copy): target 5;
- validate-noncanonical: the same for ``A @ diags(s)`` (scipy leaves every row unsorted)
  and for a CSR built from raw arrays with shuffled rows and duplicates (checks +
  canonical copy): target 10;
- countsketch-repeat: the second and later ``CountSketch(2d, n).apply(A, row_weights=w)``
  on a scipy CSR (the cached Design and its bucket layout): target 2; the same call on a
  Design for comparison, and the first call (the one-off layout) in ``extra_info``;
- scipy-vs-design: gram, HessianOperator products, pcg on a HessianOperator, lstsq with a
  scipy matrix against the same call on its Design (``extra_info["ratio"]`` is scipy
  input over Design input): target 1.2.
"""

import time

import numpy as np
import pytest
import scipy.sparse as sp

from fastnewton.hessian import DiagLowRank, HessianOperator, gram
from fastnewton.linalg import as_design, clear_design_cache, lstsq, pcg
from fastnewton.sketch import CountSketch

SIZES = {
    "quick": dict(n=50_000, d=100, nnz_per_row=10, solver_n=20_000, solver_d=50,
                  solver_nnz_per_row=10),
    "default": dict(n=1_000_000, d=500, nnz_per_row=20, solver_n=200_000, solver_d=200,
                    solver_nnz_per_row=20),
    "full": dict(n=1_000_000, d=500, nnz_per_row=20, solver_n=200_000, solver_d=200,
                 solver_nnz_per_row=20),
}
ENV = {"n": "FASTNEWTON_BENCH_INPUTS_N", "d": "FASTNEWTON_BENCH_INPUTS_D",
       "nnz_per_row": "FASTNEWTON_BENCH_INPUTS_NNZ_PER_ROW",
       "solver_n": "FASTNEWTON_BENCH_INPUTS_SOLVER_N",
       "solver_d": "FASTNEWTON_BENCH_INPUTS_SOLVER_D",
       "solver_nnz_per_row": "FASTNEWTON_BENCH_INPUTS_SOLVER_NNZ_PER_ROW"}


def _csr(n, d, k, seed):
    """Canonical CSR (scipy ``csr_matrix``) with k distinct sorted columns per row."""
    rng = np.random.default_rng(seed)
    width = d // k
    cols = (np.arange(k) * width + rng.integers(0, width, size=(n, k))).astype(np.int32)
    indptr = np.arange(0, n * k + 1, k, dtype=np.int32)
    return sp.csr_matrix((rng.standard_normal(n * k), cols.ravel(), indptr), shape=(n, d))


def _shuffled_with_duplicates(A, k, seed):
    """A from raw arrays: each row's entries shuffled, one entry per row repeated (its
    value split in two), as a user building a CSR by hand might pass it."""
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    order = np.argsort(rng.random((n, k)), axis=1) + (np.arange(n) * k)[:, None]
    indices = A.indices[order.ravel()].reshape(n, k)
    data = A.data[order.ravel()].reshape(n, k)
    indices[:, 1] = indices[:, 0]  # a duplicate in every row (replaces one entry)
    data[:, 0] *= 0.5
    data[:, 1] = data[:, 0]
    M = sp.csr_matrix((data.ravel(), indices.ravel(), A.indptr.copy()), shape=A.shape)
    assert not M.has_canonical_format
    return M


def _min_time(fn, rounds):
    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.fixture(scope="module")
def cfg(sizes):
    c = sizes(SIZES, ENV)
    c["nnz_per_row"] = min(c["nnz_per_row"], c["d"])
    c["solver_nnz_per_row"] = min(c["solver_nnz_per_row"], c["solver_d"])
    return c


@pytest.fixture(scope="module")
def mats(cfg):
    """The canonical matrix, its two non-canonical forms, vectors, and scipy's A @ x."""
    n, d, k = cfg["n"], cfg["d"], cfg["nnz_per_row"]
    A = _csr(n, d, k, seed=1)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(d), rng.uniform(0.5, 1.5, n)
    scaled = A @ sp.diags(rng.uniform(0.5, 2.0, d))
    assert not scaled.has_sorted_indices
    out = dict(A=A, diags=scaled, raw=_shuffled_with_duplicates(A, k, seed=3), x=x, w=w)
    A @ x
    out["spmv_s"] = _min_time(lambda: A @ x, 10)
    return out


@pytest.fixture(scope="module")
def solver_mats(cfg):
    n, d, k = cfg["solver_n"], cfg["solver_d"], cfg["solver_nnz_per_row"]
    A = _csr(n, d, k, seed=4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(d)
    A @ x
    return dict(A=A, x=x, beta=rng.uniform(0.1, 2.0, n), y=A @ x + 0.01 * rng.standard_normal(n),
                spmv_s=_min_time(lambda: A @ x, 10))


def _info(benchmark, cfg, op, spmv_s, seconds, target, prefix="", **extra):
    n, d, k = cfg[prefix + "n"], cfg[prefix + "d"], cfg[prefix + "nnz_per_row"]
    benchmark.group = f"inputs: n={n} d={d} nnz/row={k}"
    benchmark.extra_info.update(dict(suite="inputs", op=op, n=n, d=d, nnz_per_row=k,
                                     nnz=n * k, bench_size=cfg["bench_size"], spmv_s=spmv_s,
                                     seconds=seconds, ratio=seconds / spmv_s, target=target,
                                     **extra))


def test_scipy_spmv(benchmark, cfg, mats, timed):
    A, x = mats["A"], mats["x"]
    _, t = timed(benchmark, lambda: A @ x, rounds=10)
    _info(benchmark, cfg, "scipy A @ x", mats["spmv_s"], t, None)


def test_validate_canonical(benchmark, cfg, mats, timed):
    A = mats["A"]
    design, t = timed(benchmark, lambda: as_design(A, cache=False), rounds=5, warmup_rounds=1)
    assert np.shares_memory(design.A.data, A.data)  # wrapped, not copied
    _info(benchmark, cfg, "validate canonical CSR", mats["spmv_s"], t, 5)


@pytest.mark.parametrize("form", ["diags", "raw"])
def test_validate_noncanonical(benchmark, cfg, mats, timed, form):
    M = mats[form]
    design, t = timed(benchmark, lambda: as_design(M, cache=False), rounds=3, warmup_rounds=1)
    assert design.A.has_canonical_format and not np.shares_memory(design.A.data, M.data)
    _info(benchmark, cfg, f"validate + canonicalize ({form})", mats["spmv_s"], t, 10)


@pytest.mark.parametrize("given", ["scipy", "design"])
def test_countsketch_repeat(benchmark, cfg, mats, timed, given):
    clear_design_cache()
    A, w, n, d = mats["A"], mats["w"], cfg["n"], cfg["d"]
    S = CountSketch(2 * d, n, seed=6)
    target = A if given == "scipy" else as_design(A)
    t0 = time.perf_counter()
    S.apply(target, row_weights=w)  # first call: validation (scipy) and the bucket layout
    first = time.perf_counter() - t0
    _, t = timed(benchmark, lambda: S.apply(target, row_weights=w), rounds=10)
    _info(benchmark, cfg, f"CountSketch.apply repeated ({given})", mats["spmv_s"], t,
          2 if given == "scipy" else None, first_call_s=first, sketch_size=2 * d)


def _engine_calls(m):
    parts = DiagLowRank(m["beta"])
    return {
        "gram": lambda A: gram(A, parts, ridge=1.0),
        "hessian_operator": lambda A: HessianOperator(A, parts, ridge=1.0) @ m["x"],
        "pcg": lambda A: pcg(HessianOperator(A, parts, ridge=1.0), m["x"], maxiter=10),
        "lstsq": lambda A: lstsq(A, m["y"], seed=0, maxiter=10),
    }


@pytest.mark.parametrize("op", ["gram", "hessian_operator", "pcg", "lstsq"])
def test_scipy_vs_design(benchmark, cfg, solver_mats, timed, op):
    clear_design_cache()
    A = solver_mats["A"]
    call = _engine_calls(solver_mats)[op]
    design = as_design(A, cache=False)
    rounds = 3 if op in ("gram", "lstsq") else 10
    call(A)
    call(design)
    _, t = timed(benchmark, lambda: call(A), rounds=rounds)
    t_design = _min_time(lambda: call(design), 1 if benchmark.disabled else rounds)
    _info(benchmark, cfg, f"{op} on scipy vs Design", solver_mats["spmv_s"], t, None,
          prefix="solver_", design_s=t_design)
    benchmark.extra_info.update(ratio=t / t_design, target=1.2)
