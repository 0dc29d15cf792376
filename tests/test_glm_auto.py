"""method="auto" on GLMs: Jacobi Newton-CG (wide) for wide d and dense A, exact for short
rows at small d; pcg and sketch when a sketch_size is given."""

import pytest

import fastnewton as fn
from fastnewton.newton import _resolve_method


@pytest.mark.parametrize("n, d, k, dense, expect", [
    (20000, 200, 20, False, "exact"),    # short rows, small d: the exact Gram is cheap
    # Jacobi CG took 16-17 CG iterations over 5 steps on these (pcg 26-30 plus its sketch):
    # 0.49 s against pcg's 1.0 s and exact's 4.6 s (d x d accumulator out of cache) ...
    (300000, 1000, 20, False, "wide"),
    # ... 0.23 s against sketch's 0.42 s and exact's 0.44 s (long rows) ...
    (20000, 100, 100, False, "wide"),
    # ... and 1.2 s against pcg's 1.85 s and exact's 3.6 s (dense: the syrk is n d^2)
    (40000, 300, 0, True, "wide"),
])
def test_auto_for_glms(n, d, k, dense, expect):
    data = fn.datasets.make_glm(n, d, nnz_per_row=max(k, 1), dense=dense,
                                column_popularity="uniform", seed=0)
    prob = fn.GLMRegression(data.A, data.y, family="binomial", lam=1.0)
    assert _resolve_method("auto", prob, None) == expect


@pytest.mark.parametrize("n, d, k, dense, expect", [
    (300000, 1000, 20, False, "pcg"),    # a sketch_size asks for a sketched method
    (20000, 100, 100, False, "sketch"),
    (40000, 300, 0, True, "pcg"),
])
def test_auto_for_glms_with_sketch_size(n, d, k, dense, expect):
    data = fn.datasets.make_glm(n, d, nnz_per_row=max(k, 1), dense=dense,
                                column_popularity="uniform", seed=0)
    prob = fn.GLMRegression(data.A, data.y, family="binomial", lam=1.0)
    assert _resolve_method("auto", prob, 4 * d) == expect


def test_auto_for_other_families_is_unchanged():
    data = fn.datasets.make_regression(300000, 1000, nnz_per_row=20, seed=0)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    assert _resolve_method("auto", prob, None) == "exact"
