"""ExpRegression (exp / cosh / sinh) against dense numpy formulas and finite differences."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.exceptions import NonConvexWarning

from _reference import DenseExpRegression, dense, fd_gradient, fd_jacobian, rel_err

FAMILIES = ("exp", "cosh", "sinh")


def _instance(rng, f, sparse, w_kind, lam, n=40, d=6):
    """A small random instance with |A x| of order 1 (no overflow, all regimes of beta)."""
    if sparse:
        A = sp.random_array((n, d), density=0.5, rng=rng, format="csr",
                            data_sampler=rng.standard_normal)
    else:
        A = rng.standard_normal((n, d))
    A = A / np.sqrt(d)
    b = rng.uniform(-1.0, 3.0, n)
    w = 0.7 if w_kind == "scalar" else rng.uniform(0.0, 2.0, n)
    x = rng.standard_normal(d) * 0.8
    return A, b, w, x


def _problem(A, b, w, f, lam):
    """ExpRegression, silencing the NonConvexWarning of the random small-w instances."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvexWarning)
        return fn.ExpRegression(A, b, w, f=f, lam=lam)


CASES = [(f, sparse, w_kind, lam, rep)
         for f in FAMILIES for sparse in (False, True)
         for w_kind in ("scalar", "vector") for lam in (0.0, 0.7) for rep in range(2)]


@pytest.mark.parametrize("f,sparse,w_kind,lam,rep", CASES)
def test_derivatives_match_finite_differences(rng, f, sparse, w_kind, lam, rep):
    A, b, w, x = _instance(rng, f, sparse, w_kind, lam)
    prob = _problem(A, b, w, f, lam)
    ref = DenseExpRegression(A, b, w, f, lam)
    Ad = dense(A)

    # objective and gradient equal the hand-written numpy formulas
    assert prob.fun(x) == pytest.approx(ref.fun(x), rel=1e-13)
    np.testing.assert_allclose(prob.jac(x), ref.grad(x), rtol=1e-12,
                               atol=1e-12 * np.abs(ref.grad(x)).max())

    # gradient vs central differences of fun
    g_fd = fd_gradient(prob.fun, x, h=1e-5)
    g = prob.jac(x)
    np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-6 * np.abs(g_fd).max())

    # Hessian assembled from hessian_parts vs central differences of jac
    parts = prob.hessian_parts(x)
    assert isinstance(parts, fn.hessian.DiagLowRank)
    H = Ad.T @ parts.to_dense() @ Ad + lam * np.eye(Ad.shape[1])
    H_fd = fd_jacobian(prob.jac, x, h=1e-5)
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-6 * np.abs(H_fd).max())
    np.testing.assert_allclose(H, ref.hess(x), rtol=1e-12, atol=1e-12 * np.abs(H).max())

    # hessp and hessian equal the assembled Hessian
    p = rng.standard_normal(Ad.shape[1])
    np.testing.assert_allclose(prob.hessp(x, p), H @ p, rtol=1e-12,
                               atol=1e-12 * np.abs(H @ p).max())
    np.testing.assert_allclose(prob.hessian(x), H, rtol=1e-12, atol=1e-12 * np.abs(H).max())


@pytest.mark.parametrize("f", FAMILIES)
def test_reference_derivatives_match_finite_differences(rng, f):
    """The oracle itself: its gradient and Hessian formulas vs central differences."""
    A, b, w, x = _instance(rng, f, False, "vector", 0.3)
    ref = DenseExpRegression(A, b, w, f, 0.3)
    g_fd = fd_gradient(ref.fun, x, h=1e-5)
    np.testing.assert_allclose(ref.grad(x), g_fd, rtol=1e-6, atol=1e-6 * np.abs(g_fd).max())
    H_fd = fd_jacobian(ref.grad, x, h=1e-5)
    np.testing.assert_allclose(ref.hess(x), H_fd, rtol=1e-6, atol=1e-6 * np.abs(H_fd).max())


def test_scipy_compatible_interface(rng):
    """fun/jac/hessp plug into scipy.optimize.minimize and reach the same point."""
    from scipy.optimize import minimize as sp_minimize

    A, b, w, _ = _instance(rng, "exp", True, "scalar", 0.1, n=60, d=5)
    prob = fn.ExpRegression(A, b, 2.0, f="exp", lam=0.1)
    res_sp = sp_minimize(prob.fun, np.zeros(5), jac=prob.jac, hessp=prob.hessp,
                         method="trust-ncg", options={"gtol": 1e-12})
    res_fn = fn.minimize(prob, method="exact", tol=1e-12)
    # trust-ncg stops near a relative gradient of 1e-8 here ("bad approximation")
    assert np.linalg.norm(res_sp.jac) < 1e-6 * np.linalg.norm(prob.jac(np.zeros(5)))
    assert rel_err(res_fn.x, res_sp.x) < 1e-6


@pytest.mark.parametrize("f", FAMILIES)
def test_convexity_warning(rng, f):
    """w below the convexity bound warns; data made with w='convex' does not."""
    data = fn.datasets.make_regression(300, 5, family=f, seed=int(rng.integers(2**31)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonConvexWarning)
        prob = fn.ExpRegression(data.A, data.b, data.w, f=f)
    assert prob.convex
    bound = fn.problems.convexity_bound(data.b, f)
    if bound.max() > 0:
        with pytest.warns(NonConvexWarning, match="below the convexity bound"):
            fn.ExpRegression(data.A, data.b, 0.0, f=f)


@pytest.mark.parametrize("f", FAMILIES)
def test_convexity_bound_is_tight(rng, f):
    """At w**2 = bound + 1e-6 the row Hessian beta(z) is >= 0 on a fine grid of z; at
    w**2 = bound - 1e-3 it is negative somewhere (checked with the numpy formula)."""
    from _reference import FUNCS

    fz, dfz, d2fz = FUNCS[f]
    z = np.linspace(-6, 6, 200001)
    for b in rng.uniform(-3.0, 12.0, 5):
        bound = float(fn.problems.convexity_bound(np.array([b]), f)[0])
        beta0 = dfz(z) ** 2 + d2fz(z) * (fz(z) - b)
        assert (beta0 + bound + 1e-6 >= 0).all()
        if bound > -np.inf and beta0.min() < 0:
            assert (beta0 + bound - 1e-3).min() < 0
