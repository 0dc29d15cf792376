"""method="auto" on GLMs: pcg is a candidate (wide d, dense A), exact for short rows."""

import pytest

import fastnewton as fn
from fastnewton.newton import _resolve_method


@pytest.mark.parametrize("n, d, k, dense, expect", [
    (20000, 200, 20, False, "exact"),    # short rows, small d: the exact Gram is cheap
    (300000, 1000, 20, False, "pcg"),    # d x d accumulator out of cache: pcg
    (20000, 100, 100, False, "sketch"),  # long rows: the Gram's nnz_i^2 products dominate
    (40000, 300, 0, True, "pcg"),        # dense: CG passes are BLAS, the syrk is n d^2
])
def test_auto_for_glms(n, d, k, dense, expect):
    data = fn.datasets.make_glm(n, d, nnz_per_row=max(k, 1), dense=dense,
                                column_popularity="uniform", seed=0)
    prob = fn.GLMRegression(data.A, data.y, family="binomial", lam=1.0)
    assert _resolve_method("auto", prob, None) == expect


def test_auto_for_other_families_is_unchanged():
    data = fn.datasets.make_regression(300000, 1000, nnz_per_row=20, seed=0)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    assert _resolve_method("auto", prob, None) == "exact"
