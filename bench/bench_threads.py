"""Thread scaling: kernels and a Newton step with 1, 2, ... up to the available CPUs.

Threads are set for numba and BLAS together (``fastnewton._threads.thread_limit``). The
report gives the speedup over 1 thread of each op (same group = same op and matrix).
"""

import numpy as np
import pytest

from fastnewton._steps import default_sketch_size
from fastnewton._threads import thread_limit
from fastnewton.hessian import gram, sketched_gram
from fastnewton.sketch import CountSketch

OPS = ("matvec", "rmatvec", "normal_matvec", "countsketch", "gram", "sketched_gram",
       "newton_sketch", "newton_exact")


@pytest.fixture(scope="module")
def thread_inst(thread_case, bench_data):
    inst = bench_data(thread_case)
    parts = inst.problem.hessian_parts(np.zeros(thread_case.d))
    m = default_sketch_size(thread_case.n, thread_case.d)
    return inst, parts, CountSketch(m, thread_case.n, seed=0)


def _op(name, inst, parts, S, newton_step):
    design, case = inst.design, inst.case
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(case.d), rng.standard_normal(case.n)
    if name == "matvec":
        out = np.empty(case.n)
        return lambda: design.matvec(x, out=out)
    if name == "rmatvec":
        out = np.empty(case.d)
        return lambda: design.rmatvec(y, out=out)
    if name == "normal_matvec":
        return lambda: design.normal_matvec(parts.beta, x)
    if name == "countsketch":
        buf = np.empty(S.shape[:1] + (case.d,))
        return lambda: S.apply(design, row_weights=parts.beta, out=buf)
    if name == "gram":
        return lambda: gram(design, parts)
    if name == "sketched_gram":
        buf = np.empty(S.shape[:1] + (case.d,))
        return lambda: sketched_gram(design, parts, S, out=buf)
    method = name.split("_", 1)[1]
    step = newton_step(inst.problem, method)
    step()  # one-off layouts
    return step


@pytest.mark.parametrize("op", OPS)
def test_threads(benchmark, thread_inst, op, n_threads, record, measure, newton_step):
    inst, parts, S = thread_inst
    fn_ = _op(op, inst, parts, S, newton_step)
    with thread_limit(n_threads):
        record(benchmark, inst.case, "threads", op, threads=n_threads)
        benchmark.group = f"threads {op}: {inst.case.label}"
        measure(benchmark, fn_)
