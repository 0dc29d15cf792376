"""One Newton step per method (every registered step model) on the grid.

A step is the body of ``fn.minimize``'s loop at x = 0 (z = A x carried): gradient (loss, A^T g),
Hessian parts, the method's direction and one line-search trial (A p, loss). The
step model (a fixed sketch and its layout of A) is built once, as in a solve. The mean
seconds per phase go to ``extra_info["phases"]`` (the d^3 factorization share).
"""

import numpy as np


def test_newton_step(benchmark, grid_case, step_method, bench_data, record, measure,
                     newton_step):
    inst = bench_data(grid_case)
    step = newton_step(inst.problem, step_method)
    step()  # builds one-off layouts (e.g. A reordered by bucket); not part of a step
    step.phases = dict.fromkeys(step.PHASES, 0.0)
    step.calls = 0
    record(benchmark, grid_case, "newton", f"newton_{step_method}", method=step_method)
    p = measure(benchmark, step)
    benchmark.extra_info["phases"] = step.mean_phases()
    assert p.shape == (grid_case.d,) and np.isfinite(p).all()
