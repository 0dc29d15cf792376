"""fn.minimize is the one entry point: every family of the registry, every method, and
``success`` always means the gradient test at the returned x (checked with prob.jac)."""

import warnings

import numpy as np
import pytest
import scipy.optimize

import fastnewton as fn
from fastnewton.exceptions import ConvergenceWarning
from fastnewton.problems import PROBLEMS

N, D = 2000, 8
Z_METHODS = ("exact", "sketch", "pcg", "sample")
OWN_METHOD = {"multisoftmax": "newton-cg", "attention": "varpro-trust-ncg",
              "attention_kernel": "qr-refine"}


def _simplex(v):
    return v / v.sum()


def _instance(name, rng):
    """A seeded, well-posed instance of the family ``name`` (any seed)."""
    if name in ("multisoftmax", "attention", "attention_kernel"):
        A1, A2 = rng.standard_normal((40, 3)), rng.standard_normal((30, 3))
        if name == "multisoftmax":
            B = rng.dirichlet(np.ones(30), size=40)
            return fn.MultiSoftmaxRegression(A1, A2, B, lam=1e-3)
        if name == "attention":
            return fn.AttentionRegression(A1, A2, rng.standard_normal((30, 3)),
                                          rng.standard_normal((40, 2)), lam=1e-2)
        return fn.AttentionKernelRegression(rng.standard_normal((50, 4)),
                                            rng.standard_normal(4), power=2)
    A = fn.datasets.make_regression(N, D, nnz_per_row=4, seed=rng).A
    z = A @ (0.5 * rng.standard_normal(D))
    noise = np.exp(0.1 * rng.standard_normal(N))
    if name == "exp":
        data = fn.datasets.make_regression(N, D, cond=10.0, seed=rng)
        return fn.ExpRegression(data.A, data.b, data.w)
    if name == "softmax":
        return fn.SoftmaxRegression(A, _simplex(np.exp(z - z.max()) * noise), lam=1e-6)
    if name == "rescaled":
        return fn.RescaledRegression(A, _simplex(np.exp(z) * noise), f="exp", lam=1e-3)
    if name == "resnet":
        return fn.ResNetSoftmaxRegression(A, _simplex((np.exp(z) + z) * noise), lam=1e-6)
    if name == "copyright":
        b = np.exp(z - z.max()) * noise
        n1 = 3 * N // 4
        return fn.CopyrightRegression(A[:n1], _simplex(b[:n1]), A[n1:], _simplex(b[n1:]),
                                      gamma=1e-4, w=0.3, lam=1e-6)
    if name == "twolayer":
        H = 5.0 * rng.standard_normal((N, 2))
        s = _simplex(np.exp(z - z.max()))
        b = np.logaddexp(0.0, H.T @ s) + 0.01 * rng.standard_normal(2)
        return fn.TwoLayerRegression(A, H, b, w=0.3, lam=1e-3)
    if name == "glm":
        y = (rng.random(N) < 1.0 / (1.0 + np.exp(-z))).astype(float)
        return fn.GLMRegression(A, y, family="binomial", sample_weight=rng.uniform(0.5, 2, N),
                                fit_intercept=True, lam=1e-2)
    raise KeyError(name)


def _x0(prob):
    return np.zeros(getattr(prob, "size", None) or prob.d)


def _rel_grad(prob, x, x0):
    return np.linalg.norm(prob.jac(x)) / np.linalg.norm(prob.jac(x0))


def test_every_registered_family_has_an_instance(rng):
    for name in PROBLEMS:
        assert isinstance(_instance(name, rng), PROBLEMS[name])


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_minimize_solves_every_family(name, rng):
    prob = _instance(name, rng)
    x0 = _x0(prob)
    res = fn.minimize(prob, tol=1e-8, maxiter=200, seed=0)
    assert isinstance(res, fn.NewtonResult)
    assert res.success and res.status == 0, res.message
    assert _rel_grad(prob, res.x, x0) <= 1e-8 * (1 + 1e-12)
    assert res.x.shape == x0.shape and res.jac.shape == x0.shape
    np.testing.assert_allclose(res.jac, prob.jac(res.x), rtol=1e-12,
                               atol=1e-14 * np.abs(res.jac).max())
    assert res.fun == pytest.approx(prob.fun(res.x), rel=1e-13)
    assert res.grad_norm == pytest.approx(np.linalg.norm(res.jac), rel=1e-14)
    if name in OWN_METHOD:
        assert res.method == OWN_METHOD[name]
    else:
        assert res.method in Z_METHODS
    assert res.timings["total"] >= 0 and res.nfev >= 1
    assert res.history["fun"].ndim == 1 and res.history["grad_norm"].shape == res.history["fun"].shape
    if name in ("attention", "twolayer"):
        return  # non-convex: another solver may find another local minimizer
    # scipy.optimize, run to a tighter tolerance, finds no lower value
    ref = scipy.optimize.minimize(
        prob.fun, x0, jac=prob.jac, hessp=prob.hessp, method="trust-ncg",
        options={"gtol": 1e-10 * np.linalg.norm(prob.jac(x0)), "maxiter": 1000})
    assert res.fun <= ref.fun + 1e-9 * abs(ref.fun) + 1e-14 * prob.fun(x0)


def _cases():
    for name in sorted(PROBLEMS):
        for method in (Z_METHODS if name not in OWN_METHOD else ("auto",)):
            yield name, method


@pytest.mark.parametrize("tol", [1e-8, 1e-15])
@pytest.mark.parametrize("name, method", list(_cases()))
def test_success_implies_the_gradient_test_at_the_returned_x(name, method, tol, rng):
    """On every family and method, at a reachable and at an unreachable tol: success is
    claimed only where ‖∇L(x)‖ <= tol ‖∇L(x0)‖ holds for the returned x (prob.jac, the
    driver's bookkeeping not involved); a failure warns and names a non-success status."""
    prob = _instance(name, rng)
    x0 = _x0(prob)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn.minimize(prob, method=method, tol=tol, maxiter=300, seed=1)
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    if res.success:
        assert res.status in (0, 2)
        assert _rel_grad(prob, res.x, x0) <= tol * (1 + 1e-12), res.message
        assert not conv
    else:
        assert res.status in (1, 3, 6), res.message
        assert conv and "did not converge" in str(conv[-1].message)
        if tol == 1e-8:  # reachable; a randomized model may still stall near it (honestly)
            assert res.status == 6 and _rel_grad(prob, res.x, x0) <= 1e-4, res.message
    assert res.grad_norm == pytest.approx(np.linalg.norm(prob.jac(res.x)), rel=1e-12)


@pytest.mark.parametrize("name", ["exp", "softmax"])
def test_unreachable_tol_stops_as_stalled_not_at_maxiter(name, rng):
    """tol below what float64 resolves: the solve ends with status 6 (stalled at rounding
    level) long before maxiter, with a warning that says so and the achieved gradient."""
    prob = _instance(name, rng)
    for method in ("exact", "sketch"):
        with pytest.warns(ConvergenceWarning, match="tol is likely below what float64"):
            res = fn.minimize(prob, method=method, tol=1e-18, maxiter=500, seed=0)
        assert res.status == 6 and not res.success, res.message
        assert "stalled" in res.message and "relative gradient" in res.message
        assert res.nit < 100
        assert _rel_grad(prob, res.x, _x0(prob)) <= 1e-10


@pytest.mark.parametrize("name, bad, match", [
    ("multisoftmax", dict(method="exact"), "method='exact' does not apply to "
                                           "MultiSoftmaxRegression, which is solved by"),
    ("multisoftmax", dict(sketch="srht"), "sketch='srht' does not apply"),
    ("multisoftmax", dict(sketch_size=10), "sketch_size=10 does not apply"),
    ("attention_kernel", dict(sketch="gaussian"), "sketch='gaussian' does not apply"),
    ("multisoftmax", dict(dtol=1e-3), "dtol=0.001 does not apply"),
    ("multisoftmax", dict(globalization="gradreg"), "globalization='gradreg' does not apply"),
    ("attention", dict(method="pcg"), "options it takes: tol, verbose, x0, maxiter, callback, seed"),
    ("attention", dict(armijo=0.1), "armijo=0.1 does not apply to AttentionRegression"),
    ("attention", dict(options={"rank": 3}), r"options \['rank'\] do not apply"),
    ("attention_kernel", dict(x0=np.ones(4)), "x0=array.* does not apply to "
                                              "AttentionKernelRegression"),
    ("attention_kernel", dict(dtol=1.0), "dtol=1.0 does not apply"),
    ("attention_kernel", dict(callback=print), "callback=.* does not apply"),
    ("exp", dict(options={"rank": 3}), "options applies to the matrix-valued families only"),
])
def test_options_that_do_not_apply_are_refused_by_name(name, bad, match, rng):
    with pytest.raises(ValueError, match=match):
        fn.minimize(_instance(name, rng), **bad)


def test_family_options_pass_through_and_the_own_method_is_accepted(rng):
    prob = _instance("multisoftmax", rng)
    plain = fn.minimize(prob, method="newton-cg", options={"preconditioner": False,
                                                           "cg_maxiter": 50})
    assert plain.success and plain.X.shape == (3, 3)
    np.testing.assert_allclose(plain.x, fn.minimize(prob).x, rtol=1e-6, atol=1e-8)
    kern = fn.AttentionKernelRegression(rng.standard_normal((60, 6)),
                                        rng.standard_normal(60), kind="exp")
    res = fn.minimize(kern, method="nystrom-pcg", options={"rank": 40}, seed=0, tol=1e-6)
    assert res.success and res.rank <= 40 and "relative residual" in res.message
    assert res.history["fun"].shape == (2,)
    assert res.fun == pytest.approx(0.5 * np.sum((kern.apply(res.x) - kern.b) ** 2))


@pytest.mark.parametrize("name", ["multisoftmax", "attention"])
def test_matrix_family_callback_protocol(name, rng):
    prob = _instance(name, rng)
    seen = []

    def stop_at_two(inter):
        seen.append(inter.nit)
        assert inter.fun == pytest.approx(prob.fun(inter.x))
        return inter.nit == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a callback stop does not warn
        res = fn.minimize(prob, callback=stop_at_two)
    assert res.status == 4 and not res.success and res.nit == 2 and seen == [1, 2]


def test_a_problem_with_only_a_solve_is_refused_naming_the_missing_methods():
    class OnlySolve:
        def solve(self):
            return None

    with pytest.raises(TypeError, match="OnlySolve lacks loss_z, loss_grad_z, parts_z"):
        fn.minimize(OnlySolve())
