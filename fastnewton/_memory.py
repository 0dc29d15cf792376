"""Memory and time estimates of the step models, and the memory available to this process.

``method="auto"`` picks among the methods whose estimated memory fits in
:data:`AUTO_MEMORY_FRACTION` of :func:`available_memory` the one with the smallest
estimated time to converge; a forced method whose estimate exceeds
:data:`FORCED_MEMORY_FRACTION` of it raises :class:`~fastnewton.exceptions.MemoryBudgetError`
before anything large is allocated.

Estimates are from (n, d, nnz, the row lengths of A, sketch_size, dtype) only; they
count the arrays a solve allocates beyond A itself (the d x d Hessian and its factor, an
m x d sketch, copies of A for layouts, the reduction buffers of passes over A, the n- and
d-vectors of the driver). Time is counted in multiply-adds of a sparse pass over A; one
BLAS flop costs :data:`BLAS_FLOP` of one (calibrated on 2 cores, see
docs/performance.md; both scale with the thread count, so the choice does not depend on
it).
"""

from __future__ import annotations

import os

import numpy as np

from .exceptions import MemoryBudgetError, ValidationError
from .linalg._design import n_row_blocks

__all__ = ["available_memory", "method_memory", "method_time", "check_fits", "choose_method",
           "problem_stats", "AUTO_MEMORY_FRACTION", "FORCED_MEMORY_FRACTION", "WIDE_MIN_D"]

#: auto considers a method only if its estimate fits in this fraction of the available memory.
AUTO_MEMORY_FRACTION = 0.5
#: A forced method is refused if its estimate exceeds this fraction of the available memory.
FORCED_MEMORY_FRACTION = 0.9
#: Up to this d, auto keeps its exact-vs-sketch rule whenever the d x d Hessian fits.
WIDE_MIN_D = 2000
#: Cost of one BLAS flop in multiply-adds of a sparse pass (dense syrk/Cholesky on 2 cores).
BLAS_FLOP = 0.037
#: Newton steps to tol 1e-8: exact (quadratic), sketch (linear at m = 8 d), wide (Newton-CG).
STEPS = {"exact": 5.0, "sketch": 17.0, "sample": 17.0, "pcg": 6.0, "wide": 8.0}
#: CG iterations per Newton step: pcg (sketch-preconditioned), wide (Jacobi).
CG_ITERS = {"pcg": 5.0, "wide": 25.0}
#: GLMs (auto up to WIDE_MIN_D): Newton steps and CG iterations per step of Jacobi
#: Newton-CG (measured on the GLM race: 5 steps, 13-16 CG iterations in all).
GLM_WIDE_STEPS = 5.0
GLM_WIDE_CG = 4.0
#: Fixed cost of one CG iteration or Newton step (Python, dispatch), in multiply-adds.
CG_OVERHEAD = 5e5
_GIB = 2.0 ** 30
_ENV = "FASTNEWTON_MEMORY_LIMIT"


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _parse_bytes(text):
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    return float(text[:-1] if scale != 1 else text) * scale


def available_memory():
    """Bytes this process can still allocate: the least of ``MemAvailable`` of
    /proc/meminfo, the cgroup's limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)
    less its usage (reclaimable file cache excluded), and the environment variable
    ``FASTNEWTON_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix). ``inf`` when none of
    them is known."""
    avail = np.inf
    env = os.environ.get(_ENV)
    if env:
        try:
            avail = _parse_bytes(env)
        except ValueError:
            raise ValidationError(f"{_ENV} must be a number of bytes (optionally with a "
                                  f"K, M, G or T suffix), got {env!r}") from None
    meminfo = _read("/proc/meminfo")
    if meminfo:
        for line in meminfo.splitlines():
            if line.startswith("MemAvailable:"):
                avail = min(avail, float(line.split()[1]) * 1024)
    for limit_path, usage_path, stat_path in (
            ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current",
             "/sys/fs/cgroup/memory.stat"),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
             "/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.stat")):
        limit, usage = _read(limit_path), _read(usage_path)
        if not limit or not usage or limit.strip() == "max":
            continue
        try:
            lim, used = float(limit), float(usage)
        except ValueError:
            continue
        if lim >= 2.0 ** 60:  # v1's "no limit"
            continue
        cache = 0.0
        for line in (_read(stat_path) or "").splitlines():
            key, _, val = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file"):
                cache = float(val)
                break
        avail = min(avail, max(lim - used + cache, 0.0))
    return float(avail)


def problem_stats(problem):
    """``dict(n, d, nnz, row_sq, itemsize, index_itemsize, sparse)`` of a problem's design:
    ``row_sq`` is the sum over rows of the squared row lengths (ones column included)."""
    design = problem.design
    base = design.base
    n, d = design.n, design.d
    if base.sparse:
        A = base.A
        row_nnz = np.diff(A.indptr).astype(np.float64) + design.intercept
        row_sq = float(row_nnz @ row_nnz)
        itemsize, index_itemsize = A.data.dtype.itemsize, A.indices.dtype.itemsize
    else:
        row_sq = float(n) * d * d
        itemsize, index_itemsize = 8, 0
    return dict(n=n, d=d, nnz=float(design.nnz), row_sq=row_sq, itemsize=itemsize,
                index_itemsize=index_itemsize, sparse=bool(base.sparse))


def _default_m(method, n, d):
    if method == "sample":
        from .sketch import RowSampler
        return RowSampler.default_size(n, d)
    return int(min(n, max(8 * d, 64)))


def method_memory(method, n, d, nnz, *, sketch_size=None, itemsize=8, index_itemsize=4,
                  sparse=True):
    """Estimated bytes a solve with ``method`` allocates beyond A (see the module notes).

    ``sketch_size``: the m of sketch/sample/pcg (their default when None), the Nyström
    rank k of wide (None: Jacobi, nothing d x k)."""
    from .hessian._gram import GRAM_BUFFER_BYTES, gram_row_blocks

    f8 = 8.0
    common = f8 * n_row_blocks(n) * d + f8 * (12.0 * n + 16.0 * d)
    copy_of_A = nnz * (itemsize + index_itemsize) + f8 * (n + 1) if sparse else 0.0
    dd = f8 * d * d
    if method == "wide":
        k = 0 if sketch_size is None else sketch_size
        return common + f8 * 5.0 * k * d
    if method == "exact":
        extra = 0.0
        if sparse:
            nb = gram_row_blocks(n, d)
            extra = copy_of_A if nb == 1 and dd > GRAM_BUFFER_BYTES else nb * dd
        return common + 3.0 * dd + extra
    if method in ("sketch", "sample", "pcg"):
        m = _default_m(method, n, d) if sketch_size is None else sketch_size
        layout = copy_of_A + 4.0 * nnz if sparse else 0.0
        return common + f8 * m * d + 2.0 * dd + layout
    raise ValueError(f"no memory estimate for method {method!r}")


def method_time(method, n, d, nnz, row_sq, *, sketch_size=None, sparse=True):
    """Estimated time to converge (multiply-adds of a sparse pass; see the module notes)."""
    reduce = 2.0 * n_row_blocks(n) * d  # zero and sum the block buffers of a pass over A^T
    chol = BLAS_FLOP * d ** 3 / 3.0
    if method == "exact":
        gram = 0.5 * row_sq if sparse else BLAS_FLOP * n * d * d
        return STEPS["exact"] * (gram + 4.0 * nnz + chol)
    if method in ("sketch", "sample"):
        m = _default_m(method, n, d) if sketch_size is None else sketch_size
        return STEPS[method] * (6.0 * nnz + BLAS_FLOP * m * d * d + chol)
    if method == "pcg":
        m = _default_m(method, n, d) if sketch_size is None else sketch_size
        step = CG_ITERS["pcg"] * (2.0 * nnz + reduce + 2.0 * d * d) + 4.0 * nnz
        return STEPS["pcg"] * step + 2.0 * (3.0 * nnz + BLAS_FLOP * m * d * d + chol)
    if method == "wide":
        k = 0 if sketch_size is None else sketch_size
        step = CG_ITERS["wide"] * (2.0 * nnz + reduce + 4.0 * k * d) + 3.0 * nnz + 2.0 * reduce
        return STEPS["wide"] * step + k * (2.0 * nnz + reduce)
    raise ValueError(f"no time estimate for method {method!r}")


def _gib(b):
    return f"{b / _GIB:.3g} GiB"


def _what(method, n, d, m):
    if method == "exact":
        return f"the {d} x {d} Hessian and its Cholesky factor"
    if method == "wide":
        return "the reduction buffers and vectors of Newton-CG" + (
            f" and the rank-{m} Nystrom factors" if m else "")
    return f"the {m} x {d} sketch, the {d} x {d} sketched Hessian and its factor"


def check_fits(method, problem, sketch_size=None, available=None):
    """Raise :class:`MemoryBudgetError` if ``method`` does not fit in memory (estimate
    above :data:`FORCED_MEMORY_FRACTION` of :func:`available_memory`); else return the
    estimate in bytes. The message says what is needed, what is available and which
    method fits."""
    s = problem_stats(problem)
    n, d = s["n"], s["d"]
    if method == "sketch" and sketch_size is not None and sketch_size > n:
        return 0.0  # an invalid argument: the step model refuses it by name
    kw = dict(itemsize=s["itemsize"], index_itemsize=s["index_itemsize"], sparse=s["sparse"])
    need = method_memory(method, n, d, s["nnz"], sketch_size=sketch_size, **kw)
    avail = available_memory() if available is None else available
    if need <= FORCED_MEMORY_FRACTION * avail:
        return need
    m = sketch_size
    if method in ("sketch", "sample", "pcg") and m is None:
        m = _default_m(method, n, d)
    msg = (f"method={method!r} needs about {_gib(need)} ({_what(method, n, d, m)}; n = {n}, "
           f"d = {d}, nnz = {int(s['nnz'])}) but about {_gib(avail)} are available")
    if method in ("sketch", "sample", "pcg"):
        base = method_memory(method, n, d, s["nnz"], sketch_size=0, **kw)
        fit = int((FORCED_MEMORY_FRACTION * avail - base) // (8.0 * d))
        if fit >= d:
            msg += f"; sketch_size={fit} or less fits"
    wide = method_memory("wide", n, d, s["nnz"], **kw)
    if method != "wide" and wide <= FORCED_MEMORY_FRACTION * avail:
        msg += f"; method='wide' fits (about {_gib(wide)}; no d x d matrix)"
    raise MemoryBudgetError(msg + ".")


def choose_method(problem, sketch_size=None, available=None):
    """The method ``method="auto"`` runs: see the module notes.

    Up to :data:`WIDE_MIN_D` columns, exact against sketch by their estimated times
    (whenever the exact Hessian fits); beyond, the fastest estimate among exact,
    sketch and wide that fits in :data:`AUTO_MEMORY_FRACTION` of the available memory
    (wide when nothing else fits)."""
    s = problem_stats(problem)
    n, d, nnz = s["n"], s["d"], s["nnz"]
    budget = AUTO_MEMORY_FRACTION * (available_memory() if available is None else available)
    kw = dict(itemsize=s["itemsize"], index_itemsize=s["index_itemsize"], sparse=s["sparse"])
    m = _default_m("sketch", n, d) if sketch_size is None else sketch_size
    fits = {meth: method_memory(meth, n, d, nnz, sketch_size=m, **kw) <= budget
            for meth in ("exact", "sketch")}
    fits["wide"] = True
    if d <= WIDE_MIN_D and fits["exact"]:
        if m >= n or not fits["sketch"]:
            return "exact"
        # the rule of the benchmarks up to this width: per-step costs without the factor
        gram = 0.5 * s["row_sq"] if s["sparse"] else BLAS_FLOP * n * d * d
        cost_exact = gram + 4.0 * nnz
        cost_sketch = 6.0 * nnz + BLAS_FLOP * m * d * d
        if not _is_linear_model(problem):
            return "exact" if STEPS["exact"] * cost_exact <= STEPS["sketch"] * cost_sketch \
                else "sketch"
        return _linear_model_choice(s, cost_exact, cost_sketch, gram,
                                    wide=sketch_size is None)
    times = {meth: method_time(meth, n, d, nnz, s["row_sq"], sketch_size=m, sparse=s["sparse"])
             for meth in ("exact", "sketch")}
    times["wide"] = method_time("wide", n, d, nnz, s["row_sq"], sparse=s["sparse"])
    if m >= n:
        fits["sketch"] = False
    candidates = [meth for meth in ("exact", "sketch", "wide") if fits[meth]]
    return min(candidates, key=times.__getitem__)


def _is_linear_model(problem):
    from .problems._linear_model import LinearModelProblem

    return isinstance(problem, LinearModelProblem)


def _linear_model_choice(s, cost_exact, cost_sketch, gram, wide=True):
    """auto's choice for GLMs and user separable losses up to :data:`WIDE_MIN_D` columns.

    They also weigh pcg: one sketched preconditioner, kept across steps, plus about 5
    steps of 20 passes (sparse; 8 dense A passes, BLAS); and the exact Gram's scattered
    products cost more once the d x d accumulator leaves the cache ((d / 512)^2.2;
    calibrated on the method-choice table of docs/performance.md). And (``wide``: no ``sketch_size`` given) Jacobi Newton-CG:
    :data:`GLM_WIDE_STEPS` steps of :data:`GLM_WIDE_CG` CG iterations of two passes
    each, plus the gradient, the diagonal and the line search (about 4 passes), and
    :data:`CG_OVERHEAD` per iteration. Measured on the GLM race (n = 1e6, d = 1000,
    sparse standardized / unstandardized, and dense 2e5 x 500; binomial and Poisson):
    Jacobi CG needed 13-16 CG iterations over 5 Newton steps, pcg about 30 plus its
    8000 x 1000 sketch and factor; wide took 1.4-2.2 s against pcg's 4.7-8.3 s (sparse)
    and 6.4-6.7 s against 8.3-11.9 s (dense, busy host). On short rows at small n (2e4
    x 200) exact stays (0.21 s against wide's 0.15-0.26 s; exact needs no CG count)."""
    nnz, d, sparse, n = s["nnz"], s["d"], s["sparse"], s["n"]
    if sparse:
        cost_exact += gram * (max(1.0, d / 512.0) ** 2.2 - 1.0)
    costs = {"exact": STEPS["exact"] * cost_exact, "sketch": STEPS["sketch"] * cost_sketch,
             "pcg": cost_sketch + 5.0 * (20.0 if sparse else 8.0) * nnz}
    if wide:
        reduce = 2.0 * n_row_blocks(n) * d
        pass_ = nnz if sparse else 0.4 * nnz  # a dense pass is BLAS, as pcg's 8 of 20
        per_iter = 2.0 * pass_ + reduce + CG_OVERHEAD
        costs["wide"] = GLM_WIDE_STEPS * (GLM_WIDE_CG * per_iter + 4.0 * pass_ + 2.0 * reduce
                                          + CG_OVERHEAD)
    return min(costs, key=costs.get)
