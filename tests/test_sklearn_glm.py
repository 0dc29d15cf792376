"""The drop-in scikit-learn GLM estimators against scikit-learn's own, fitted at tight tol."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("sklearn")

import sklearn.linear_model as sklm  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnewton as fn  # noqa: E402
from fastnewton.sklearn import (GammaRegressor, LogisticRegression, PoissonRegressor,  # noqa: E402
                                TweedieRegressor)

#: check_estimator checks each estimator may fail, {check name: reason}, per class.
#: Empty: every applicable check passes. (scikit-learn itself skips check_array_api_input
#: without SCIPY_ARRAY_API=1; LogisticRegression is tagged binary-only
#: (classifier_tags.multi_class = False), so the multiclass checks are replaced by
#: check_classifier_not_supporting_multiclass, which passes.)
EXPECTED_FAILED_CHECKS = {
    "LogisticRegression": {},
    "PoissonRegressor": {},
    "GammaRegressor": {},
    "TweedieRegressor": {},
}

#: (our class, scikit-learn's class, make_glm family, extra constructor arguments)
MODELS = {
    "logistic": (LogisticRegression, sklm.LogisticRegression, "binomial", {"C": 0.5}),
    "poisson": (PoissonRegressor, sklm.PoissonRegressor, "poisson", {"alpha": 0.01}),
    "gamma": (GammaRegressor, sklm.GammaRegressor, "gamma", {"alpha": 0.01}),
    "tweedie1.5": (TweedieRegressor, sklm.TweedieRegressor, "tweedie", {"alpha": 0.01, "power": 1.5}),
    "tweedie3": (TweedieRegressor, sklm.TweedieRegressor, "tweedie", {"alpha": 0.05, "power": 3.0}),
    "normal": (TweedieRegressor, sklm.TweedieRegressor, "normal", {"alpha": 0.01, "power": 0.0}),
}


def _data(rng, family, *, dense, weighted, power=None, n=600, d=8):
    data = fn.datasets.make_glm(n, d, family=family, power=power, nnz_per_row=4,
                                column_popularity="zipf", zipf_exponent=0.8, dense=dense,
                                intercept=0.3, weighted=weighted,
                                seed=int(rng.integers(1 << 31)))
    return data


def _reference(cls, kwargs, X, y, sw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=1e-12 may end in a "did not converge" warning
        return cls(solver="newton-cholesky", tol=1e-12, max_iter=1000, **kwargs).fit(
            X, y, sample_weight=sw)


def _close(a, b, rtol=1e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-3)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "nointercept"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_same_fit_as_sklearn(rng, model, dense, fit_intercept, weighted):
    ours_cls, ref_cls, family, kwargs = MODELS[model]
    data = _data(rng, family, dense=dense, weighted=weighted, power=kwargs.get("power")
                 if family == "tweedie" else None)
    X, y, sw = data.A, data.y, data.sample_weight
    ref = _reference(ref_cls, dict(kwargs, fit_intercept=fit_intercept), X, y, sw)
    ours = ours_cls(tol=1e-10, fit_intercept=fit_intercept, **kwargs).fit(X, y, sample_weight=sw)
    _close(ours.coef_, ref.coef_)
    _close(ours.intercept_, ref.intercept_)
    assert np.shape(ours.intercept_) == np.shape(ref.intercept_)
    assert np.shape(ours.n_iter_) == np.shape(ref.n_iter_)
    Xt = _data(rng, family, dense=dense, weighted=False, power=kwargs.get("power")
               if family == "tweedie" else None)
    for Xe, ye in ((X, y), (Xt.A, Xt.y)):  # training data and fresh data
        _close(ours.predict(Xe), ref.predict(Xe))
        assert abs(ours.score(Xe, ye) - ref.score(Xe, ye)) <= 1e-6
        assert abs(ours.score(Xe, ye, sample_weight=sw) - ref.score(Xe, ye, sample_weight=sw)) <= 1e-6
        if model == "logistic":
            _close(ours.decision_function(Xe), ref.decision_function(Xe))
            _close(ours.predict_proba(Xe), ref.predict_proba(Xe))
            _close(ours.predict_log_proba(Xe), ref.predict_log_proba(Xe))
            np.testing.assert_array_equal(ours.classes_, ref.classes_)


@pytest.mark.parametrize("method", ["exact", "sketch", "pcg"])
def test_methods_reach_the_same_fit(rng, method):
    data = _data(rng, "binomial", dense=False, weighted=True, n=2000, d=12)
    ref = _reference(sklm.LogisticRegression, {"C": 2.0}, data.A, data.y, data.sample_weight)
    ours = LogisticRegression(C=2.0, tol=1e-10, method=method, random_state=0).fit(
        data.A, data.y, sample_weight=data.sample_weight)
    _close(ours.coef_, ref.coef_)
    assert ours.result_.method == method


def test_labels_class_weight_and_no_penalty(rng):
    data = _data(rng, "binomial", dense=True, weighted=False)
    labels = np.where(data.y > 0, "spam", "ham")
    for kwargs in ({"class_weight": "balanced"}, {"class_weight": {"ham": 2.0, "spam": 0.5}},
                   {"C": np.inf}):
        ref = _reference(sklm.LogisticRegression, kwargs, data.A, labels, None)
        ours = LogisticRegression(tol=1e-10, **kwargs).fit(data.A, labels)
        _close(ours.coef_, ref.coef_)
        np.testing.assert_array_equal(ours.predict(data.A), ref.predict(data.A))
        assert ours.predict(data.A).dtype == labels.dtype
        assert ours.score(data.A, labels) == ref.score(data.A, labels)
    with pytest.warns(FutureWarning, match="penalty"):
        none = LogisticRegression(penalty=None, tol=1e-10).fit(data.A, labels)
    _close(none.coef_, ours.coef_)  # penalty=None is C=inf


def test_default_tol_bounds_sklearns_gradient(rng):
    """At the default tol, the gradient of scikit-learn's objective is at most tol."""
    data = _data(rng, "poisson", dense=False, weighted=True, n=3000)
    est = PoissonRegressor(alpha=0.1).fit(data.A, data.y, sample_weight=data.sample_weight)
    s = data.sample_weight
    z = data.A @ est.coef_ + est.intercept_
    r = s * (np.exp(z) - data.y) / s.sum()  # d/dz of the mean half deviance
    grad = np.append(data.A.T @ r + 0.1 * est.coef_, r.sum())
    assert np.linalg.norm(grad) <= est.tol
    assert est.n_iter_ >= 1


def test_warm_start_and_dtype(rng):
    data = _data(rng, "gamma", dense=True, weighted=False)
    est = GammaRegressor(alpha=0.01, tol=1e-10, warm_start=True).fit(data.A, data.y)
    first = est.n_iter_
    est.fit(data.A, data.y)
    assert first >= 2 and est.n_iter_ == 0
    A32 = data.A.astype(np.float32)
    est32 = GammaRegressor(alpha=0.01, tol=1e-8).fit(A32, data.y)
    assert est32.coef_.dtype == np.float32
    clf = LogisticRegression().fit(A32, (data.y > np.median(data.y)).astype(int))
    assert clf.coef_.dtype == np.float32 and clf.coef_.shape == (1, data.A.shape[1])
    assert clf.intercept_.shape == (1,) and clf.n_iter_.shape == (1,)


def test_three_classes_raise_and_name_the_limitation(rng):
    X = rng.standard_normal((30, 3))
    y = np.repeat([0, 1, 2], 10)
    with pytest.raises(ValueError, match="Only binary classification.*3 classes.*multinomial"):
        LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        LogisticRegression().fit(X, np.zeros(30))


@pytest.mark.parametrize("est, match", [
    (LogisticRegression(C=0.0), "C must be > 0"),
    (LogisticRegression(C=-1.0), "C must be > 0"),
    (LogisticRegression(l1_ratio=0.5), "L2 penalty only.*l1_ratio"),
    (LogisticRegression(penalty="l1"), "L2 penalty only.*penalty='l1'"),
    (LogisticRegression(penalty="elasticnet", l1_ratio=0.5), "L2 penalty only"),
    (LogisticRegression(dual=True), "dual=True is not supported"),
    (LogisticRegression(method="newton"), "method must be one of"),
    (LogisticRegression(solver="bfgs"), "solver must be one of"),
    (PoissonRegressor(alpha=-0.1), "alpha must be >= 0"),
    (PoissonRegressor(tol=0.0), "tol must be > 0"),
    (GammaRegressor(max_iter=0), "max_iter must be >= 1"),
    (TweedieRegressor(power=0.5), r"0 < power < 1"),
    (TweedieRegressor(power=1.5, link="identity"), "identity link is supported for power=0"),
    (TweedieRegressor(power=0.0, link="log"), "log link is supported for power >= 1"),
    (TweedieRegressor(power=-1.0), "identity link is supported for power=0.*power < 0 is not "
                                   "supported"),
    (TweedieRegressor(link="logit"), "link must be one of"),
])
def test_bad_parameters_raise_clear_errors(est, match):
    X = np.abs(np.random.default_rng(0).standard_normal((20, 2)))
    y = np.r_[np.ones(10), 2 * np.ones(10)]
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_bad_parameter_types():
    X, y = np.eye(4), np.array([0, 1, 0, 1])
    with pytest.raises(TypeError, match="C must be a real number"):
        LogisticRegression(C="1").fit(X, y)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        PoissonRegressor(max_iter=1.5).fit(X, y)


def test_y_outside_the_domain():
    X = np.eye(4)
    with pytest.raises(ValueError, match="y must be positive"):
        GammaRegressor().fit(X, np.array([1.0, 0.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="non-negative"):
        PoissonRegressor().fit(X, np.array([1.0, -1.0, 2.0, 3.0]))


def test_convergence_warning_is_sklearns(rng):
    data = _data(rng, "binomial", dense=False, weighted=False)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        est = LogisticRegression(max_iter=1, tol=1e-12).fit(data.A, data.y)
    assert est.n_iter_[0] == 1


def test_sparse_formats(rng):
    data = _data(rng, "poisson", dense=False, weighted=False)
    ref = PoissonRegressor(alpha=0.01, tol=1e-10).fit(data.A, data.y)
    for X in (sp.csc_matrix(data.A), sp.coo_array(data.A), data.A.toarray()):
        _close(PoissonRegressor(alpha=0.01, tol=1e-10).fit(X, data.y).coef_, ref.coef_, 1e-8)


def _estimators():
    # The sketched method converges linearly: at the default tol=1e-4 it stops at a
    # gradient of about 1e-4, too loose for check_sample_weight_equivalence's 1e-7
    # agreement of two fits (exact Newton's last step lands far below tol). tol=1e-8 here.
    return [LogisticRegression(), LogisticRegression(method="sketch", tol=1e-8, random_state=0),
            PoissonRegressor(), GammaRegressor(), TweedieRegressor(),
            TweedieRegressor(power=1.5), TweedieRegressor(power=3.0, alpha=0.5)]


@parametrize_with_checks(_estimators(),
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


def test_score_of_a_constant_target_is_nan_with_a_warning(rng):
    """scikit-learn's GLM score is nan where y is constant (null deviance 0)."""
    from fastnewton.sklearn import PoissonRegressor

    X = rng.standard_normal((60, 3))
    est = PoissonRegressor().fit(X, np.zeros(60))
    with pytest.warns(RuntimeWarning, match="y is constant"):
        assert np.isnan(est.score(X, np.zeros(60)))
    assert np.isfinite(est.score(X, rng.poisson(1.0, 60).astype(float)))
