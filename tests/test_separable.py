"""SeparableLoss: user losses compiled into the fused kernels (convex and non-convex),
against finite differences and scipy.optimize; errors for bad loss functions."""

import numba
import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.exceptions import ValidationError


@numba.njit
def logcosh(z, y):
    r = z - y
    t = np.tanh(r)
    return np.abs(r) + np.log1p(np.exp(-2.0 * np.abs(r))) - np.log(2.0), t, 1.0 - t * t


@numba.njit
def geman_mcclure(z, y):
    """½ r²/(1 + r²): robust, non-convex for |r| > 1/sqrt(3)."""
    r = z - y
    q = 1.0 + r * r
    return 0.5 * r * r / q, r / (q * q), (1.0 - 3.0 * r * r) / (q * q * q)


@numba.njit
def log_of_z(z, y):  # NaN / -inf for z <= 0
    return np.log(z + 1.0) - y * z, 1.0 / (z + 1.0) - y, -1.0 / (z + 1.0) ** 2


def _np_logcosh(r):
    return np.logaddexp(r, -r) - np.log(2.0)


def _np_gm(r):
    return 0.5 * r * r / (1 + r * r)


def _data(rng, n=200, p=4, sparse=False, outliers=0):
    A = rng.standard_normal((n, p))
    y = A @ np.array([1.0, -2.0, 0.5, 0.0])[:p] + 0.3 + 0.1 * rng.standard_normal(n)
    if outliers:
        y[:outliers] += 20 * rng.standard_normal(outliers)
    if sparse:
        A[rng.random(A.shape) < 0.3] = 0.0
        A = sp.csr_array(A)
    return A, y


def _reference(rho, A, y, sw, intercept, lam):
    Ad = A.toarray() if sp.issparse(A) else A
    s = np.ones(y.size) if sw is None else sw

    def fun(x):
        coef, b = (x[:-1], x[-1]) if intercept else (x, 0.0)
        return float(np.sum(s * rho(Ad @ coef + b - y)) + 0.5 * lam * coef @ coef)
    return fun


def _fd(fun, x, h=1e-6):
    return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in np.eye(x.size)])


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("name", ["logcosh", "geman_mcclure"])
def test_loss_gradient_hessian_against_numpy_and_finite_differences(name, sparse, rng):
    loss, rho = {"logcosh": (logcosh, _np_logcosh), "geman_mcclure": (geman_mcclure, _np_gm)}[name]
    A, y = _data(rng, n=50, sparse=sparse)
    for intercept in (False, True):
        for sw in (None, rng.uniform(0.5, 2, 50)):
            prob = fn.SeparableLoss(A, y, loss, sample_weight=sw, fit_intercept=intercept,
                                    lam=0.1)
            ref = _reference(rho, A, y, sw, intercept, 0.1)
            x = rng.standard_normal(prob.d)
            assert prob.fun(x) == pytest.approx(ref(x), rel=1e-12)
            assert _rel(prob.jac(x), _fd(ref, x)) < 1e-6
            H = prob.hessian(x)
            assert _rel(H, _fd(prob.jac, x, 1e-5)) < 1e-6
            assert _rel(prob.hessp(x, x), H @ x) < 1e-12


def test_convex_logcosh_every_method_matches_scipy(rng):
    A, y = _data(rng, n=300, sparse=True, outliers=10)
    sw = rng.uniform(0.5, 2, 300)
    prob = fn.SeparableLoss(A, y, logcosh, sample_weight=sw, fit_intercept=True, lam=1e-3)
    ref = so.minimize(_reference(_np_logcosh, A, y, sw, True, 1e-3), np.zeros(prob.d),
                      jac=prob.jac, method="L-BFGS-B",
                      options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 5000})
    for method in ("exact", "sketch", "pcg", "sample", "auto"):
        res = fn.minimize(prob, method=method, seed=0, tol=1e-10)
        assert res.success, (method, res.message)
        assert _rel(res.x, ref.x) < 1e-6, method
    coef, b = prob.split(res.x)
    assert abs(b - 0.3) < 0.05


def test_nonconvex_robust_loss_finds_a_local_minimizer(rng):
    A, y = _data(rng, n=300, outliers=30)
    prob = fn.SeparableLoss(A, y, geman_mcclure, fit_intercept=True)
    x0 = np.r_[0.8, -1.8, 0.4, 0.1, 0.2]  # in the basin of the inliers' fit
    assert (prob.hessian_parts(x0).beta < 0).any()  # the outliers' curvature is negative
    for method in ("exact", "sketch", "pcg", "sample"):
        res = fn.minimize(prob, x0, method=method, seed=0, tol=1e-9)
        assert res.success, (method, res.message)
        ev = np.linalg.eigvalsh(prob.hessian(res.x))
        assert ev.min() > 0  # a strict local minimizer
        assert np.linalg.norm(res.x[:4] - [1.0, -2.0, 0.5, 0.0]) < 0.1  # outliers ignored
        ref = so.minimize(prob.fun, x0, jac=prob.jac, hess=prob.hessian, method="trust-exact",
                          options={"gtol": 1e-10})
        assert _rel(res.x, ref.x) < 1e-6


def test_bad_loss_functions_get_clear_errors(rng):
    A, y = _data(rng, n=20)

    def plain(z, y):
        return 0.5 * (z - y) ** 2, z - y, 1.0

    with pytest.raises(TypeError, match="loss must be a numba-jitted function.*plain"):
        fn.SeparableLoss(A, y, plain)

    @numba.njit
    def one_arg(z):
        return z, 1.0, 0.0

    with pytest.raises(TypeError, match="loss 'test_bad_loss.*one_arg' could not be called"):
        fn.SeparableLoss(A, y, one_arg)

    @numba.njit
    def two_values(z, y):
        return z - y, 1.0

    with pytest.raises(TypeError, match="must return a tuple .* of three floats"):
        fn.SeparableLoss(A, y, two_values)

    @numba.njit
    def scalar(z, y):
        return z - y

    with pytest.raises(TypeError, match="must return a tuple"):
        fn.SeparableLoss(A, y, scalar)

    @numba.njit
    def nan_at_zero(z, y):
        return np.nan, 0.0, 0.0

    with pytest.raises(TypeError, match="non-finite values"):
        fn.SeparableLoss(A, y, nan_at_zero)


def test_non_finite_values_on_the_data(rng):
    A, y = _data(rng, n=30)
    y = np.abs(y) * 0.1
    prob = fn.SeparableLoss(A, y, log_of_z)
    x = np.array([50.0, 0, 0, 0])  # z + 1 <= 0 on some samples
    bad = int(np.flatnonzero(A @ x + 1.0 <= 0)[0])
    assert prob.fun(x) == np.inf
    with pytest.raises(ValidationError,
                       match=f"loss function '.*log_of_z' returned a non-finite .* sample {bad}"):
        prob.jac(x)
    val, g, parts = prob.loss_grad_parts_z(A @ x)
    assert val == np.inf and parts is None


def test_kernel_is_built_once_per_function(rng):
    from fastnewton.problems._separable_kernels import separable_kernel

    A, y = _data(rng, n=20)
    p1 = fn.SeparableLoss(A, y, logcosh)
    p2 = fn.SeparableLoss(A[:10], y[:10], logcosh)
    assert p1._kernel is p2._kernel is separable_kernel(logcosh)
    assert separable_kernel(geman_mcclure) is not p1._kernel
