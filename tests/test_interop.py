"""Interoperability: scipy.optimize with prob.fun/jac/hessp, OptimizeResult, scikit-learn."""

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.problems import PROBLEMS

sklearn = pytest.importorskip("sklearn")  # the "sklearn" extra (also in "dev")
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnewton.sklearn import (ESTIMATORS, ExpRegressor, SoftmaxRegressor,  # noqa: E402
                                expected_failed_checks)

#: check_estimator runs on every estimator of fastnewton.sklearn, in these settings.
#: Checks scikit-learn skips for the environment: check_array_api_input (needs
#: SCIPY_ARRAY_API=1). The estimators set the ``poor_score`` tag: f(X coef) without
#: intercept cannot fit the standardized, signed linear targets of check_regressors_train
#: to R² > 0.5 for f = exp/cosh, by design.
CHECKED = {
    "ExpRegressor": [ExpRegressor(), ExpRegressor(f="cosh"),
                     ExpRegressor(method="sketch", random_state=0)],
    "SoftmaxRegressor": [SoftmaxRegressor(), SoftmaxRegressor(method="sketch", random_state=0)],
}

#: Per estimator, the checks it is allowed to fail, each with its reason (declared by the
#: estimator class itself, see fastnewton.sklearn.expected_failed_checks).
EXPECTED_FAILED_CHECKS = {cls.__name__: expected_failed_checks(cls()) for cls in ESTIMATORS}


def test_every_estimator_is_checked_and_every_expected_failure_has_a_reason():
    from test_sklearn_glm import _estimators as glm_estimators

    checked = set(CHECKED) | {type(est).__name__ for est in glm_estimators()}
    assert checked == {cls.__name__ for cls in ESTIMATORS}
    assert EXPECTED_FAILED_CHECKS["ExpRegressor"] == {}
    assert set(EXPECTED_FAILED_CHECKS["SoftmaxRegressor"]) == {"check_methods_subset_invariance"}
    for name, checks in EXPECTED_FAILED_CHECKS.items():
        for check, reason in checks.items():
            assert check.startswith("check_") and len(reason) > 20, (name, check)


def _data(rng, n=400, d=6, family="exp", sparse=True):
    data = fn.datasets.make_regression(n, d, family=family, cond=5.0,
                                       seed=int(rng.integers(1 << 31)), dense=not sparse)
    return data


@pytest.mark.parametrize("family", ["exp", "sinh"])
def test_scipy_trust_ncg_reaches_fn_minimize_answer(rng, family):
    data = _data(rng, family=family)
    prob = fn.ExpRegression(data.A, data.b, data.w, f=family, lam=1e-3)
    ours = fn.minimize(prob, method="exact", tol=1e-12)
    x0 = np.zeros(prob.d)
    g0 = np.linalg.norm(prob.jac(x0))
    theirs = scipy.optimize.minimize(prob.fun, x0, jac=prob.jac, hessp=prob.hessp,
                                     method="trust-ncg", options={"gtol": 1e-9 * g0, "maxiter": 500})
    # trust-ncg may stop with status 2 once rounding stalls it: judge by the gradient
    assert np.linalg.norm(prob.jac(theirs.x)) <= 1e-8 * g0, theirs.message
    np.testing.assert_allclose(theirs.x, ours.x, rtol=1e-6, atol=1e-7 * np.abs(ours.x).max())
    assert theirs.fun == pytest.approx(ours.fun, rel=1e-12)
    # the gradient fn.minimize reports is prob.jac at its x
    np.testing.assert_allclose(ours.jac, prob.jac(ours.x), rtol=1e-12, atol=1e-14)


def test_scipy_newton_cg_with_hessp(rng):
    data = _data(rng)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    ours = fn.minimize(prob, method="exact", tol=1e-12)
    theirs = scipy.optimize.minimize(prob.fun, np.zeros(prob.d), jac=prob.jac, hessp=prob.hessp,
                                     method="Newton-CG", options={"xtol": 1e-12})
    np.testing.assert_allclose(theirs.x, ours.x, rtol=1e-6, atol=1e-9)


def test_newton_result_is_an_optimize_result(rng):
    data = _data(rng, n=200, d=4)
    res = fn.minimize(fn.ExpRegression(data.A, data.b, data.w))
    assert isinstance(res, scipy.optimize.OptimizeResult)
    for key in ("x", "fun", "jac", "nit", "nfev", "success", "status", "message"):
        assert key in res and res[key] is getattr(res, key)
    assert "x:" in repr(res) or "x" in str(res)


# -- scikit-learn ------------------------------------------------------------------------
@parametrize_with_checks([est for ests in CHECKED.values() for est in ests],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[
                             type(est).__name__])
def test_sklearn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.NonConvexWarning)
        check(estimator)


@pytest.mark.parametrize("f", ["exp", "sinh"])
def test_exp_regressor_matches_the_library(rng, f):
    data = _data(rng, family=f)
    est = ExpRegressor(f=f, w=data.w, lam=1e-6, method="exact", tol=1e-10).fit(data.A, data.b)
    res = fn.minimize(fn.ExpRegression(data.A, data.b, data.w, f=f, lam=1e-6), method="exact",
                      tol=1e-10)
    np.testing.assert_array_equal(est.coef_, res.x)
    assert est.n_iter_ == res.nit and est.n_features_in_ == data.A.shape[1]
    z = data.A @ res.x
    pred = {"exp": np.exp, "sinh": np.sinh}[f](z)
    np.testing.assert_allclose(est.predict(data.A), pred, rtol=1e-12)
    assert est.score(data.A, data.b) == pytest.approx(r2_score(data.b, pred), rel=1e-12)
    # without the w bias the model that generated the data (noise 0.01) is recovered
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.NonConvexWarning)
        unbiased = ExpRegressor(f=f, w=0.0, lam=1e-8, method="exact").fit(data.A, data.b)
    assert unbiased.score(data.A, data.b) > 0.99
    dense = ExpRegressor(f=f, w=data.w, lam=1e-6, method="exact", tol=1e-10).fit(
        data.A.toarray(), data.b)
    np.testing.assert_allclose(dense.coef_, est.coef_, rtol=1e-8, atol=1e-10)


def test_exp_regressor_in_a_pipeline_and_grid_search(rng):
    from sklearn.model_selection import GridSearchCV
    data = _data(rng, n=300, d=5)
    search = GridSearchCV(ExpRegressor(), {"lam": [1e-8, 1e-2]}, cv=3).fit(data.A, data.b)
    assert search.best_params_["lam"] in (1e-8, 1e-2)
    assert np.isfinite(search.best_score_)


def test_exp_regressor_bad_w():
    with pytest.raises(ValueError, match="w must be 'convex'"):
        ExpRegressor(w="nope").fit(np.ones((4, 2)), np.ones(4))


@pytest.mark.skipif("softmax" not in PROBLEMS, reason="SoftmaxRegression has not landed yet")
def test_softmax_regressor_matches_the_library(rng):
    A = sp.random_array((300, 5), density=0.5, rng=rng, format="csr")
    b = rng.dirichlet(np.ones(300))
    est = SoftmaxRegressor(w=1.0, lam=1e-6, method="exact").fit(A, b)
    res = fn.minimize(PROBLEMS["softmax"](A, b, w=1.0, lam=1e-6), method="exact")
    np.testing.assert_array_equal(est.coef_, res.x)
    z = A @ res.x
    np.testing.assert_allclose(est.predict(A), np.exp(z) / np.exp(z).sum(), rtol=1e-10)


def test_core_import_does_not_need_sklearn():
    import os
    import subprocess
    import sys
    code = "import sys, fastnewton; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=repo),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
