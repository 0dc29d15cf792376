"""Newton-PCG (method="pcg") and the gradient-regularized globalization of fn.minimize."""

import numpy as np
import pytest

import fastnewton as fn
from fastnewton._steps import STEP_MODELS, PcgStep
from fastnewton._threads import thread_limit
from fastnewton.exceptions import ValidationError
from fastnewton.hessian import gram
from fastnewton.newton import METHODS

FAMILIES = ("exp", "cosh", "sinh")


def _problem(rng, family, n=3000, d=30, w="convex"):
    data = fn.datasets.make_regression(n, d, cond=1e2, family=family, w=w, seed=rng)
    if isinstance(w, str):
        prob = fn.ExpRegression(data.A, data.b, data.w, f=family)
    else:
        with pytest.warns(fn.NonConvexWarning, match="below the convexity bound"):
            prob = fn.ExpRegression(data.A, data.b, data.w, f=family)
    return prob, 0.5 * rng.standard_normal(d)


def _assert_quadratic_tail(grad_norm, tol):
    """Relative gradient norms r_k: below 1e-3, each step at least ~squares r (r_{k+1} <=
    r_k^1.7) until the forcing terms stop at what ``tol`` needs (r_k^2 < 0.1 tol: CG
    stops at a residual of 0.1 tol), where the step need only reach tol."""
    r = np.asarray(grad_norm) / grad_norm[0]
    pairs = [(a, b) for a, b in zip(r[:-1], r[1:]) if a <= 1e-3 and b >= 1e-15]
    assert pairs, f"no step in the local regime: {r}"
    for a, b in pairs:
        if a * a >= 0.1 * tol:
            assert np.log(b) <= 1.7 * np.log(a), f"not quadratic: {a:.2e} -> {b:.2e} in {r}"
        else:
            assert b <= tol, f"the last step missed tol: {a:.2e} -> {b:.2e} in {r}"


def _assert_superlinear_tail(grad_norm):
    """Contraction factors r_{k+1}/r_k of the last three steps above rounding decrease, the
    last <= 1e-2."""
    r = np.asarray(grad_norm) / grad_norm[0]
    r = r[r >= 1e-12]  # below that, rounding decides
    q = r[1:] / r[:-1]
    assert len(q) >= 3 and (np.diff(q[-3:]) < 0).all() and q[-1] <= 1e-2, f"{r}"


def test_pcg_is_registered():
    assert "pcg" in METHODS and STEP_MODELS["pcg"] is PcgStep


@pytest.mark.parametrize("family", FAMILIES)
def test_newton_pcg_agrees_with_exact_and_converges_quadratically(rng, family):
    prob, x0 = _problem(rng, family)
    with thread_limit(1):  # many tiny products: thread launches dominate on busy CPUs
        res = fn.minimize(prob, x0, method="pcg", tol=1e-12, seed=rng)
        ref = fn.minimize(prob, x0, method="exact", tol=1e-12)
    assert res.success and res.method == "pcg"
    scale = max(1.0, np.linalg.norm(ref.x))
    assert np.linalg.norm(res.x - ref.x) <= 1e-8 * scale
    assert res.fun <= ref.fun + 1e-10 * abs(ref.fun)
    _assert_quadratic_tail(res.history["grad_norm"], 1e-12)
    inner = res.history["inner_iters"][1:]
    assert (inner >= 1).all()
    # preconditioner: sketched at step 1, reused afterwards (0 = factor reused)
    sk = res.history["sketch_size"][1:]
    assert sk[0] > 0 and (sk == 0).any()
    # passes over A per step: CG products + gradient + A p of the line search + sketches
    passes = inner.sum() + 2 * res.nit + 2 * np.count_nonzero(sk)
    assert passes / res.nit <= 12


def test_newton_pcg_forcing_terms_tighten(rng):
    """CG tolerance min(0.5, ‖g‖/‖g0‖): more CG iterations late than early."""
    prob, x0 = _problem(rng, "exp")
    with thread_limit(1):
        res = fn.minimize(prob, x0, method="pcg", tol=1e-12, seed=0)
    inner = res.history["inner_iters"][1:]
    assert inner[-1] > inner[0]


def test_newton_pcg_nonconvex_cosh(rng):
    """Small w: indefinite Hessians; CG's negative-curvature exit keeps steps descending."""
    prob, x0 = _problem(rng, "cosh", w=0.0)
    x0 = 2.0 * x0
    f0 = prob.fun(x0)
    with thread_limit(1):
        res = fn.minimize(prob, x0, method="pcg", tol=1e-9, seed=0, maxiter=200)
    assert res.success
    assert res.fun < f0
    assert np.diff(res.history["fun"]).max() <= 1e-12 * abs(f0)


def test_pcg_step_negative_curvature_direction(rng):
    """Indefinite model at the start: the step is a descent direction (preconditioned -g)."""
    prob, x0 = _problem(rng, "cosh", n=500, d=8, w=0.0)
    z = prob.design.matvec(np.zeros(8) + 0.01)
    parts = prob.parts_z(z)
    H = gram(prob.design, parts, ridge=prob.lam)
    assert np.linalg.eigvalsh(H).min() < 0
    step = PcgStep(prob, np.random.default_rng(0), "countsketch", None)
    g = rng.standard_normal(8)
    timings = dict.fromkeys(("sketch", "assemble", "factor", "solve"), 0.0)
    direc = step.direction(parts, g, timings)
    assert float(g @ direc.p) < 0


@pytest.mark.parametrize("method", ["pcg", "exact"])
@pytest.mark.parametrize("family", ["exp", "sinh"])
def test_gradreg_globalization_converges_to_the_same_minimizer(rng, method, family):
    prob, x0 = _problem(rng, family)
    with thread_limit(1):
        res = fn.minimize(prob, x0, method=method, tol=1e-12, seed=0, globalization="gradreg")
        ref = fn.minimize(prob, x0, method="exact", tol=1e-12)
    assert res.success
    assert np.linalg.norm(res.x - ref.x) <= 1e-8 * max(1.0, np.linalg.norm(ref.x))
    gamma = res.history["gamma"]
    assert len(gamma) == res.nit + 1 and (gamma > 0).all()
    # the regularization mu = ‖g‖/gamma vanishes with ‖g‖: superlinear (in the limit
    # quadratic, with a constant that shrinks as gamma doubles)
    mu = res.history["shift"][1:]
    assert mu[-1] < 1e-6 * mu[0]
    _assert_superlinear_tail(res.history["grad_norm"])
    # accepted steps satisfy the decrease test f(x) - f(x+) >= ‖g+‖² / (8 mu)
    f, gn = res.history["fun"], res.history["grad_norm"]
    decrease = f[:-1] - f[1:]
    ok = (decrease >= gn[1:] ** 2 / (8 * mu) * (1 - 1e-9)) | (gn[1:] < gn[:-1])
    assert ok.all()


def test_gradreg_from_far_away_without_line_search(rng):
    """Global convergence from a start 5x farther out, where exp(A x) is much larger."""
    prob, x0 = _problem(rng, "exp")
    with thread_limit(1):
        res = fn.minimize(prob, 5.0 * x0, method="exact", tol=1e-14, globalization="gradreg",
                          maxiter=200)
        ref = fn.minimize(prob, x0, method="exact", tol=1e-12)
    assert res.success and res.history["grad_norm"][0] > ref.history["grad_norm"][0]
    assert np.linalg.norm(res.x - ref.x) <= 1e-8 * max(1.0, np.linalg.norm(ref.x))


def test_globalization_bad_input(rng):
    prob, x0 = _problem(rng, "exp", n=200, d=5)
    with pytest.raises(ValueError, match="globalization must be one of"):
        fn.minimize(prob, method="pcg", globalization="levenberg")


def test_pcg_method_bad_sketch_size(rng):
    prob, x0 = _problem(rng, "exp", n=200, d=5)
    with pytest.raises(ValidationError, match="sketch_size must be >= 1"):
        fn.minimize(prob, method="pcg", sketch_size=0)
