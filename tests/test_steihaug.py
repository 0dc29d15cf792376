"""fastnewton.linalg.steihaug_cg against dense trust-region formulas."""

import numpy as np
import pytest

from fastnewton.exceptions import ValidationError
from fastnewton.linalg import steihaug_cg


def _sym(rng, d, eigs):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (Q * eigs) @ Q.T


def _model(H, g, s):
    return g @ s + 0.5 * s @ H @ s


def _cauchy_value(H, g, radius):
    """Model value at the Cauchy point (minimizer along −g inside the ball)."""
    gHg = g @ H @ g
    gn = np.linalg.norm(g)
    t = radius / gn if gHg <= 0 else min(gn * gn / gHg, radius / gn)
    return _model(H, g, -t * g)


def test_inside_the_region_it_is_the_newton_step(rng):
    d = 30
    H = _sym(rng, d, np.logspace(0, 3, d))
    g = rng.standard_normal(d)
    res = steihaug_cg(H, g, radius=1e6, rtol=1e-12, maxiter=200)
    s_newton = -np.linalg.solve(H, g)
    assert res.converged and not res.on_boundary and not res.negative_curvature
    assert np.linalg.norm(res.s - s_newton) <= 1e-8 * np.linalg.norm(s_newton)
    assert res.model_value == pytest.approx(_model(H, g, res.s), rel=1e-9)
    assert res.step_norm == pytest.approx(np.linalg.norm(res.s), rel=1e-9)


@pytest.mark.parametrize("precond", [False, True], ids=["plain", "preconditioned"])
def test_truncated_on_the_boundary_with_cauchy_decrease(rng, precond):
    d = 25
    H = _sym(rng, d, np.logspace(0, 2, d))
    g = rng.standard_normal(d)
    M = _sym(rng, d, rng.uniform(0.5, 2.0, d)) if precond else None
    radius = 0.1 * np.linalg.norm(np.linalg.solve(H, g))
    res = steihaug_cg(H, g, radius, M=M, rtol=1e-12)
    norm = np.sqrt(res.s @ np.linalg.solve(M, res.s)) if precond else np.linalg.norm(res.s)
    assert res.on_boundary and not res.negative_curvature and not res.converged
    assert norm == pytest.approx(radius, rel=1e-10)
    assert res.model_value == pytest.approx(_model(H, g, res.s), rel=1e-9)
    if not precond:  # Steihaug's step does at least as well as the Cauchy point
        assert res.model_value <= _cauchy_value(H, g, radius) * (1 - 1e-12)


def test_negative_curvature_goes_to_the_boundary(rng):
    d = 20
    eigs = np.linspace(-1.0, 5.0, d)
    H = _sym(rng, d, eigs)
    g = rng.standard_normal(d)
    res = steihaug_cg(H, g, radius=1e4, rtol=1e-12, maxiter=100)
    assert res.negative_curvature and res.on_boundary and not res.converged
    assert np.linalg.norm(res.s) == pytest.approx(1e4, rel=1e-10)
    assert res.model_value == pytest.approx(_model(H, g, res.s), rel=1e-9)
    assert res.model_value < 0
    # along the exact negative-curvature eigenvector the first direction already stops
    Q = np.linalg.eigh(H)[1]
    res1 = steihaug_cg(H, Q[:, 0], radius=2.0)
    assert res1.nit == 1 and res1.negative_curvature
    np.testing.assert_allclose(res1.s, -2.0 * Q[:, 0], atol=1e-12)


def test_zero_gradient_and_maxiter(rng):
    H = _sym(rng, 10, np.linspace(1.0, 1e4, 10))
    res = steihaug_cg(H, np.zeros(10), radius=1.0)
    assert res.converged and res.nit == 0 and not res.s.any() and res.model_value == 0.0
    g = rng.standard_normal(10)
    res = steihaug_cg(H, g, radius=1e6, rtol=1e-14, maxiter=3)
    assert res.nit == 3 and not res.converged and not res.on_boundary
    assert res.model_value == pytest.approx(_model(H, g, res.s), rel=1e-9)


def test_bad_input(rng):
    H = np.eye(3)
    with pytest.raises(ValidationError, match="radius must be > 0"):
        steihaug_cg(H, np.ones(3), radius=0.0)
    with pytest.raises(ValidationError, match="H must be square"):
        steihaug_cg(np.ones((3, 2)), np.ones(3), radius=1.0)
    with pytest.raises(ValidationError, match=r"M \(the preconditioner\) has shape"):
        steihaug_cg(H, np.ones(3), radius=1.0, M=np.eye(2))
    with pytest.raises(ValidationError, match="M is not positive definite"):
        steihaug_cg(H, np.ones(3), radius=1.0, M=-np.eye(3))
    with pytest.raises(TypeError, match="H must be a matrix or a scipy LinearOperator"):
        steihaug_cg("H", np.ones(3), radius=1.0)
