"""Kernels of a Newton step on the grid: SpMV, SpMV^T, A^T(beta*(A p)), CountSketch, Grams.

Each is on the same matrix as the floors (same group), so the report gives it as a
multiple of one scipy ``A @ x``.
"""

import numpy as np
import pytest

from fastnewton.hessian import gram, sketched_gram
from fastnewton.sketch import CountSketch
from fastnewton._steps import default_sketch_size


def _vectors(inst):
    rng = np.random.default_rng(1)
    return rng.standard_normal(inst.case.d), rng.standard_normal(inst.case.n)


def test_matvec(benchmark, grid_case, bench_data, record, measure):
    inst = bench_data(grid_case)
    x, _ = _vectors(inst)
    out = np.empty(grid_case.n)
    record(benchmark, grid_case, "kernel", "matvec")
    measure(benchmark, lambda: inst.design.matvec(x, out=out))
    np.testing.assert_allclose(out, inst.A @ x, rtol=1e-10, atol=1e-12)


def test_rmatvec(benchmark, grid_case, bench_data, record, measure):
    inst = bench_data(grid_case)
    _, y = _vectors(inst)
    out = np.empty(grid_case.d)
    record(benchmark, grid_case, "kernel", "rmatvec")
    measure(benchmark, lambda: inst.design.rmatvec(y, out=out))
    np.testing.assert_allclose(out, inst.A.T @ y, rtol=1e-9, atol=1e-9)


def test_normal_matvec(benchmark, grid_case, bench_data, record, measure):
    inst = bench_data(grid_case)
    p, beta = _vectors(inst)
    beta = np.abs(beta)
    record(benchmark, grid_case, "kernel", "normal_matvec")
    out, _ = measure(benchmark, lambda: inst.design.normal_matvec(beta, p))
    np.testing.assert_allclose(out, inst.A.T @ (beta * (inst.A @ p)), rtol=1e-9, atol=1e-9)


@pytest.fixture
def beta_parts(grid_case, bench_data):
    """Hessian parts of the benchmark problem at x = 0 (the first Newton step's)."""
    inst = bench_data(grid_case)
    return inst, inst.problem.hessian_parts(np.zeros(grid_case.d))


def test_countsketch(benchmark, beta_parts, record, measure):
    inst, parts = beta_parts
    case = inst.case
    m = default_sketch_size(case.n, case.d)
    S = CountSketch(m, case.n, seed=0)
    out = np.empty((m, case.d))
    record(benchmark, case, "kernel", "countsketch", sketch_size=m)
    measure(benchmark, lambda: S.apply(inst.design, row_weights=parts.beta, out=out))
    assert np.isfinite(out).all()


def test_gram(benchmark, beta_parts, record, measure):
    inst, parts = beta_parts
    record(benchmark, inst.case, "kernel", "gram")
    G = measure(benchmark, lambda: gram(inst.design, parts))
    assert G.shape == (inst.case.d, inst.case.d)


def test_sketched_gram(benchmark, beta_parts, record, measure):
    inst, parts = beta_parts
    case = inst.case
    m = default_sketch_size(case.n, case.d)
    S = CountSketch(m, case.n, seed=0)
    out = np.empty((m, case.d))
    record(benchmark, case, "kernel", "sketched_gram", sketch_size=m)
    G = measure(benchmark, lambda: sketched_gram(inst.design, parts, S, out=out))
    assert G.shape == (case.d, case.d)
