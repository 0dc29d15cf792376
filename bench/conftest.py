"""Shared fixtures of the benchmark suite (pytest-benchmark).

Run ``python -m pytest bench/ --bench-size quick|default|full --benchmark-json=results.json``
and turn the JSON into tables and plots with ``fastnewton report results.json -o report/``
(the same as ``python -m fastnewton.bench.report`` or ``python -m fastnewton.report``;
see ``bench/README.md``).

What lives here, for every ``bench_*.py`` (also the ones other suites add):

* ``--bench-size``: ``quick`` (a small grid; the whole suite in < 3 minutes on 2 cores,
  a CI smoke test), ``default`` (a documented subset of the issue's grid) or ``full``
  (the whole grid n x nnz/row x d). :data:`GRIDS` lists the points.
* ``--bench-e2e-cap``: time cap in seconds of each end-to-end peer solver.
* Fixtures ``grid_case`` (parametrized over the grid of the chosen size),
  ``thread_case``, ``e2e_case`` (one problem each), ``bench_size`` and ``bench_data``
  (``bench_data(case, family="exp")`` -> cached :class:`Instance`: seeded data and the
  ``ExpRegression`` (or ``SoftmaxRegression``) problem built on it, generated once per
  session).
* ``sizes(table, env)``: the sizes of a suite with its own problems (sketch, linalg,
  families, distributed): ``table[--bench-size]``, each entry overridden by its
  environment variable when that is set (:func:`_sizes`).
* ``timed(benchmark, fn, rounds=...)`` -> (result, seconds): time ``fn`` and give its
  seconds also under ``--benchmark-disable`` (for ratios computed in the test).
* :func:`measure`: warm up once (JIT compilation, one-off layouts), then time with a
  number of rounds adapted to the cost of one call; records sizes in ``extra_info`` and
  the group, so one table compares like with like (same matrix).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest

SIZES = ("quick", "default", "full")
#: Seed of every generated benchmark problem (data and sketches).
BENCH_SEED = 20261123
#: Column-scaling condition number of every generated benchmark matrix.
BENCH_COND = 1e4


@dataclass(frozen=True)
class Case:
    """One matrix size: n rows, ``nnz_per_row`` nonzeros per row, d columns."""

    n: int
    nnz_per_row: int
    d: int
    cond: float = BENCH_COND

    @property
    def nnz(self):
        return self.n * min(self.nnz_per_row, self.d)

    @property
    def label(self):
        return f"n={self.n:.0e} nnz/row={self.nnz_per_row} d={self.d}".replace("e+0", "e")

    @property
    def id(self):
        return f"n{self.n}-k{self.nnz_per_row}-d{self.d}"

    def info(self):
        """Sizes for ``benchmark.extra_info``."""
        return {"n": self.n, "d": self.d, "nnz_per_row": self.nnz_per_row, "nnz": self.nnz,
                "cond": self.cond}


def _unique(cases):
    return list(OrderedDict.fromkeys(cases))


_N_FULL = (100_000, 300_000, 1_000_000, 3_000_000)
_K_FULL = (5, 20, 100)
_D_FULL = (100, 300, 1000)
#: The problem of the acceptance figures of issues 2 and 6.
ACCEPTANCE_CASE = Case(1_000_000, 20, 500)

#: Matrix sizes of the floor/kernel/Newton-step suites for each ``--bench-size``.
#: ``default``: n sweep at (20 nnz/row, d=300), nnz/row sweep at (n=3e5, d=300),
#: d sweep at (n=3e5, 20 nnz/row), plus the acceptance size (1e6, 20, 500).
GRIDS = {
    "quick": _unique([Case(20_000, 10, 50), Case(60_000, 10, 50), Case(20_000, 40, 50),
                      Case(20_000, 10, 100)]),
    "default": _unique([Case(n, 20, 300) for n in _N_FULL]
                       + [Case(300_000, k, 300) for k in (5, 100)]
                       + [Case(300_000, 20, d) for d in (100, 1000)]
                       + [ACCEPTANCE_CASE]),
    "full": _unique([Case(n, k, d) for n in _N_FULL for k in _K_FULL for d in _D_FULL]
                    + [ACCEPTANCE_CASE]),
}
#: Matrix of the thread-scaling suite.
THREAD_CASES = {"quick": Case(60_000, 10, 50), "default": ACCEPTANCE_CASE, "full": ACCEPTANCE_CASE}
#: End-to-end problem size (seeded exp and softmax regression, cond(A) ~ 1e4) and the
#: peers' default time cap (s).
E2E_CASES = {"quick": (Case(20_000, 10, 50, cond=1e3), 10.0),
             "default": (Case(100_000, 20, 200), 60.0),
             "full": (ACCEPTANCE_CASE, 300.0)}
#: Seconds of timing per benchmark (rounds = budget / time of one call, within bounds).
TIME_BUDGET = {"quick": 0.2, "default": 1.5, "full": 2.0}
MIN_ROUNDS = {"quick": 1, "default": 3, "full": 3}
MAX_ROUNDS = 30


def pytest_addoption(parser):
    group = parser.getgroup("fastnewton benchmarks")
    group.addoption("--bench-size", choices=SIZES, default="default",
                    help="problem grid of the fastnewton benchmarks: quick (CI smoke, < 3 min "
                         "on 2 cores), default (a subset of the grid) or full (whole grid)")
    group.addoption("--bench-e2e-cap", type=float, default=None,
                    help="time cap in seconds of each end-to-end peer solver "
                         "(default: 10 quick, 60 default, 300 full)")
    group.addoption("--bench-threads", type=int, default=None,
                    help="run every benchmark (but the thread-scaling suite, which sets its "
                         "own) with this many numba/BLAS threads (default: all available)")


def _size(config):
    return config.getoption("--bench-size")


def pytest_report_header(config):
    size = _size(config)
    case, cap = E2E_CASES[size]
    cap = config.getoption("--bench-e2e-cap") or cap
    from fastnewton._threads import available_cpus
    return (f"fastnewton bench: --bench-size={size}, {len(GRIDS[size])} grid sizes, "
            f"e2e {case.label} cap {cap:g}s, {available_cpus()} CPUs, seed {BENCH_SEED}")


def pytest_generate_tests(metafunc):
    size = _size(metafunc.config)
    if "grid_case" in metafunc.fixturenames:
        cases = GRIDS[size]
        metafunc.parametrize("grid_case", cases, ids=[c.id for c in cases], scope="session")
    if "step_method" in metafunc.fixturenames:
        metafunc.parametrize("step_method", step_methods())
    if "n_threads" in metafunc.fixturenames:
        counts = cpu_counts()
        metafunc.parametrize("n_threads", counts, ids=[f"t{c}" for c in counts])


@pytest.fixture(scope="session")
def bench_size(request):
    """The ``--bench-size`` of this run."""
    return _size(request.config)


@pytest.fixture(scope="session")
def thread_case(bench_size):
    return THREAD_CASES[bench_size]


@pytest.fixture(scope="session")
def e2e_case(bench_size):
    return E2E_CASES[bench_size][0]


@pytest.fixture(scope="session")
def e2e_cap(request, bench_size):
    """Time cap (s) of each end-to-end peer solver."""
    return request.config.getoption("--bench-e2e-cap") or E2E_CASES[bench_size][1]


# -- data ----------------------------------------------------------------------------------

@dataclass
class Instance:
    """A generated benchmark problem: the data and the family's problem on it."""

    case: Case
    data: object
    problem: object

    @property
    def A(self):
        return self.problem.A

    @property
    def design(self):
        return self.problem.design


def _available_bytes():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def _case_bytes(case):
    # A (data + int32 indices), b/w/z vectors, and room for one reordered copy of A.
    return 2 * 12 * case.nnz + 8 * 8 * case.n


class _DataCache:
    """Generated instances, kept for the session within a memory budget (LRU)."""

    def __init__(self, budget):
        self.budget = budget
        self.items = OrderedDict()  # (case, family) -> Instance

    def _held(self):
        return sum(_case_bytes(c) for c, _ in self.items)

    def get(self, case, family="exp"):
        key = (case, family)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        need = _case_bytes(case)
        if need > 0.6 * _available_bytes() + self._held():
            pytest.skip(f"{case.label} needs about {need / 2**30:.1f} GiB; not available here")
        while self.items and self._held() + need > self.budget:
            self.items.popitem(last=False)
        import fastnewton as fn
        data = fn.datasets.make_regression(case.n, case.d, nnz_per_row=case.nnz_per_row,
                                           cond=case.cond, family=family, seed=BENCH_SEED)
        if family == "softmax":
            problem = fn.SoftmaxRegression(data.A, data.b, data.w)
        else:
            problem = fn.ExpRegression(data.A, data.b, data.w, f=family)
        self.items[key] = inst = Instance(case, data, problem)
        return inst


@pytest.fixture(scope="session")
def bench_data():
    """``bench_data(case, family="exp")`` -> the cached :class:`Instance` of a :class:`Case`
    (``family``: exp/cosh/sinh (``ExpRegression``) or softmax (``SoftmaxRegression``))."""
    cache = _DataCache(budget=0.35 * _available_bytes())
    return cache.get


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    """Apply ``--bench-threads`` (numba and BLAS together) for the whole session."""
    from fastnewton._threads import thread_limit

    n = request.config.getoption("--bench-threads")
    if n is not None and n < 1:
        raise pytest.UsageError(f"--bench-threads must be >= 1, got {n}")
    with thread_limit(n):
        yield n


@pytest.fixture(scope="session", autouse=True)
def jit_warm(bench_threads):
    """Compile (or load from the numba cache) every kernel on a tiny problem first."""
    import fastnewton as fn
    from fastnewton._steps import STEP_MODELS

    data = fn.datasets.make_regression(5000, 20, nnz_per_row=5, seed=0)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.ConvergenceWarning)
        for method in STEP_MODELS:
            fn.minimize(prob, method=method, maxiter=2, seed=0)
    prob.hessp(np.zeros(prob.d), np.ones(prob.d))
    fn.hessian.gram(prob.design, prob.hessian_parts(np.zeros(prob.d)))
    prob.design.matvec(np.ones(prob.d))
    prob.design.rmatvec(np.ones(prob.n))


# -- timing --------------------------------------------------------------------------------

def _record(benchmark, case, suite, op, **extra):
    """Group and describe a benchmark: sizes, suite (floor/kernel/newton/e2e/threads), op."""
    from fastnewton._threads import available_cpus
    import numba

    if case is not None:
        benchmark.group = f"{suite if suite in ('e2e', 'threads') else 'size'}: {case.label}"
        benchmark.extra_info.update(case.info())
    benchmark.extra_info.update({"suite": suite, "op": op,
                                 "threads": extra.pop("threads", numba.get_num_threads()),
                                 "cpus": available_cpus()})
    benchmark.extra_info.update(extra)


def _measure(benchmark, fn, *, size, budget=None, min_rounds=None):
    """Warm ``fn`` up once, then time it ``rounds`` times (rounds from its cost).

    With ``--benchmark-disable`` ``fn`` runs once (smoke test). Returns the last result.
    """
    if benchmark.disabled:
        return benchmark.pedantic(fn, rounds=1, iterations=1)
    budget = TIME_BUDGET[size] if budget is None else budget
    min_rounds = MIN_ROUNDS[size] if min_rounds is None else min_rounds
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    rounds = int(min(MAX_ROUNDS, max(min_rounds, math.ceil(budget / once))))
    iterations = 1 if once > 1e-3 else int(min(100, math.ceil(1e-3 / once)))
    return benchmark.pedantic(fn, rounds=rounds, iterations=iterations)


class NewtonStep:
    """One Newton step of ``fn.minimize``'s loop at a fixed point, for timing.

    As in the driver, z = A x is carried from step to step (updated as z + t A p by the
    line search), so a step is: gradient (loss and A^T g at z; the ``sketch`` method
    sketches the Hessian in the same pass over A), Hessian parts, the method's direction
    (sketch / assemble / factor / solve) and one line-search trial (A p, loss). The step
    model is built once (a fixed sketch and its layout of A are one-off work, amortized
    over the steps of a solve); ``phases`` accumulates seconds per phase over the calls.
    """

    PHASES = ("gradient", "sketch", "assemble", "factor", "solve", "line_search")

    def __init__(self, problem, method, seed=BENCH_SEED, x=None):
        from fastnewton._steps import STEP_MODELS

        self.problem = problem
        self.method = method
        self.stepper = STEP_MODELS[method](problem, np.random.default_rng(seed),
                                           "countsketch", None)
        self.x = np.zeros(problem.d) if x is None else x
        self.z = problem.design.matvec(self.x)
        self.phases = dict.fromkeys(self.PHASES, 0.0)
        self.calls = 0

    def __call__(self):
        from fastnewton.newton import _evaluate

        prob, design, ph = self.problem, self.problem.design, self.phases
        z = self.z
        # as the driver: the step model may sketch the Hessian in the gradient's pass
        f, g, parts = _evaluate(prob, self.stepper, self.x, z, ph)
        if parts is None:
            parts = prob.parts_z(z)
        direc = self.stepper.direction(parts, g, ph)
        t0 = time.perf_counter()
        Ap = design.matvec(direc.p)
        prob.loss_z(z + Ap)
        ph["line_search"] += time.perf_counter() - t0
        self.calls += 1
        return direc.p

    def mean_phases(self):
        """Mean seconds per call of each phase (since construction)."""
        return {k: v / max(self.calls, 1) for k, v in self.phases.items()}


def step_methods():
    """Step models to benchmark: every registered method (exact, sketch, pcg, sample, ...)."""
    from fastnewton._steps import STEP_MODELS

    return list(STEP_MODELS)


def cpu_counts():
    """Thread counts 1, 2, ... up to the CPUs available (powers of two and the maximum)."""
    from fastnewton._threads import available_cpus

    top = available_cpus()
    counts = sorted({1, top} | {2 ** i for i in range(1, int(math.log2(max(top, 1))) + 1)})
    return [c for c in counts if c <= top]



def _sizes(size, table, env=None):
    """Sizes of one suite: ``table[size]`` with environment overrides.

    Parameters
    ----------
    size : {"quick", "default", "full"}
        The ``--bench-size`` of the run.
    table : dict
        ``{size: {key: value}}`` for every size.
    env : dict, optional
        ``{key: NAME}``: when the environment variable ``NAME`` is set (and not empty),
        ``int(float($NAME))`` replaces ``table[size][key]`` (explicit overrides win over
        ``--bench-size``).

    Returns
    -------
    dict
        ``{key: value}`` plus ``"bench_size": size`` (for ``extra_info``).
    """
    out = dict(table[size])
    for key, name in (env or {}).items():
        text = os.environ.get(name, "").strip()
        if text:
            try:
                out[key] = int(float(text))
            except ValueError:
                raise ValueError(f"{name} must be a number, got {text!r}") from None
    out["bench_size"] = size
    return out


def _timed(benchmark, fn, *, rounds=3, warmup_rounds=0, stat="min"):
    """Time ``fn`` with ``benchmark.pedantic``; return ``(result, seconds)``.

    ``seconds`` is the ``stat`` (``"min"``, ``"median"``, ``"mean"``) over the rounds, or
    the time of the single call that ``--benchmark-disable`` makes (pytest-benchmark keeps
    no statistics then).
    """
    if benchmark.disabled:
        t0 = time.perf_counter()
        out = benchmark.pedantic(fn, rounds=1, iterations=1)
        return out, time.perf_counter() - t0
    out = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    return out, float(getattr(benchmark.stats.stats, stat))


# -- helpers as fixtures (bench modules cannot import this conftest by name) ---------------

@pytest.fixture(scope="session")
def record():
    """``record(benchmark, case, suite, op, **extra)``: set the group and ``extra_info``.

    The group is ``"size: <case>"`` for the floor/kernel/Newton suites (everything on the
    same matrix in one table), ``"e2e: ..."`` and ``"threads: ..."`` otherwise.
    """
    return _record


@pytest.fixture(scope="session")
def measure(bench_size):
    """``measure(benchmark, fn)``: warm up, then time with adaptive rounds (:func:`_measure`)."""
    def run(benchmark, fn, **kwargs):
        return _measure(benchmark, fn, size=bench_size, **kwargs)
    return run


@pytest.fixture(scope="session")
def sizes(bench_size):
    """``sizes(table, env=None)`` -> this run's sizes of a suite (:func:`_sizes`)."""
    def get(table, env=None):
        return _sizes(bench_size, table, env)
    return get


@pytest.fixture(scope="session")
def timed():
    """``timed(benchmark, fn, rounds=3, warmup_rounds=0, stat="min")`` -> (result, seconds)."""
    return _timed


@pytest.fixture(scope="session")
def newton_step():
    """The :class:`NewtonStep` class: ``newton_step(problem, method)`` is a callable step."""
    return NewtonStep
