r"""Drop-in scikit-learn GLM estimators solved by :func:`fastnewton.minimize`.

``LogisticRegression`` (binary), ``PoissonRegressor``, ``GammaRegressor`` and
``TweedieRegressor`` take the constructor parameters, defaults and objective of the
scikit-learn classes of the same names, plus ``method`` (the step model of
:func:`fastnewton.minimize`) and ``random_state`` (the seed of its sketches). Swapping
the import gives the same ``coef_`` and ``intercept_`` up to the solvers' tolerance,
and the same ``predict``, ``predict_proba``, ``decision_function`` and ``score``.
Re-exported by :mod:`fastnewton.sklearn`; needs scikit-learn.

Objectives (s: sample weights, times the class weights for ``LogisticRegression``),
minimized as a :class:`fastnewton.GLMRegression` with the sum convention:

- ``LogisticRegression(C)``: :math:`C \sum_i s_i \ell_i + \tfrac12\|w\|^2`, i.e.
  ``GLMRegression(family="binomial", lam=1/C)`` (``C=np.inf``: no penalty).
- ``PoissonRegressor(alpha)`` / ``GammaRegressor`` / ``TweedieRegressor``:
  :math:`\frac{1}{\sum_i s_i}\sum_i s_i \ell_i + \tfrac{\alpha}2\|w\|^2` with
  :math:`\ell` the half unit deviance, i.e. ``lam = alpha * sum(s)``.

The intercept is never penalized.

``tol``: fitting stops when the Euclidean norm of the gradient of scikit-learn's
objective (the sum objective divided by :math:`\sum_i s_i`) is at most ``tol``.
scikit-learn's ``lbfgs`` and ``newton-cholesky`` test the largest absolute entry of that
gradient against ``tol``, so the test here is at least as tight. It is passed to
:func:`fastnewton.minimize` as the relative tolerance
``tol * sum(s) / ‖∇L(x0)‖`` (one extra gradient evaluation at the start point).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy.special import expit, log_expit

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import d2_tweedie_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(est, X="no_validation", y="no_validation", **kw):
        return est._validate_data(X, y, **kw)

from .exceptions import ConvergenceWarning as _FNConvergenceWarning
from .exceptions import ValidationError

__all__ = ["LogisticRegression", "PoissonRegressor", "GammaRegressor", "TweedieRegressor"]

_DTYPES = [np.float64, np.float32]
_LOGISTIC_SOLVERS = ("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga")
_GLM_SOLVERS = ("lbfgs", "newton-cholesky")


# -- parameter checks ----------------------------------------------------------------------

def _check_real(est, name, *, low=None, low_open=False, allow_inf=False):
    value = getattr(est, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{type(est).__name__}: {name} must be a real number, "
                        f"got {type(value).__name__} {value!r}")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValidationError(f"{type(est).__name__}: {name} must be finite, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValidationError(f"{type(est).__name__}: {name} must be {'>' if low_open else '>='} "
                              f"{low:g}, got {value!r}")
    return value


def _check_int(est, name, low):
    value = getattr(est, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{type(est).__name__}: {name} must be an integer, "
                        f"got {type(value).__name__} {value!r}")
    if value < low:
        raise ValidationError(f"{type(est).__name__}: {name} must be >= {low}, got {value!r}")
    return int(value)


def _check_choice(est, name, choices):
    value = getattr(est, name)
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(f"{type(est).__name__}: {name} must be one of {tuple(choices)}, "
                              f"got {value!r}")
    return value


def _check_common(est, solvers, max_iter_low):
    from .newton import METHODS

    if not isinstance(est.fit_intercept, (bool, np.bool_)):
        raise TypeError(f"{type(est).__name__}: fit_intercept must be a bool, "
                        f"got {est.fit_intercept!r}")
    if not isinstance(est.warm_start, (bool, np.bool_)):
        raise TypeError(f"{type(est).__name__}: warm_start must be a bool, got {est.warm_start!r}")
    _check_real(est, "tol", low=0.0)
    _check_int(est, "max_iter", max_iter_low)
    _check_choice(est, "solver", solvers)
    _check_choice(est, "method", METHODS)


def _seed(random_state):
    """An int or Generator for fastnewton from scikit-learn's random_state conventions."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator)):
        return random_state
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


# -- the shared solve ----------------------------------------------------------------------

class _FastNewtonGLM(BaseEstimator):
    """Builds the GLMRegression, maps tol, runs fastnewton.minimize."""

    def _solve(self, X, y, sample_weight, family, power, lam, x0):
        """Minimize; returns (x, result). ``sample_weight`` is None or a float64 n-vector."""
        from .newton import minimize
        from .problems import GLMRegression

        problem = GLMRegression(X, y, family=family, power=power, sample_weight=sample_weight,
                                fit_intercept=self.fit_intercept, lam=lam)
        sw_sum = float(X.shape[0] if sample_weight is None else sample_weight.sum())
        if x0 is None:  # the intercept at the link of the weighted mean, as scikit-learn
            x0 = problem.initial_point()
        g0 = float(np.linalg.norm(problem.jac(x0)))
        target = self.tol * sw_sum
        rtol = 1.0 if g0 <= target else target / g0
        with warnings.catch_warnings():
            # re-issued below as scikit-learn's ConvergenceWarning
            warnings.simplefilter("ignore", _FNConvergenceWarning)
            res = minimize(problem, x0, method=self.method, tol=rtol, maxiter=self.max_iter,
                           seed=_seed(self.random_state), verbose=bool(self.verbose))
        if not res.success:
            warnings.warn(
                f"{type(self).__name__} ({res.method} Newton) stopped after {res.nit} steps "
                f"without reaching tol={self.tol:g}: {res.message}; gradient norm of the "
                f"scaled objective {res.grad_norm / sw_sum:.3e}. Increase max_iter, or the "
                "regularization (C smaller / alpha larger) if the problem is ill-posed.",
                ConvergenceWarning, stacklevel=3)
        self.result_ = res
        return problem.split(res.x), res

    def _warm_start_x0(self, n_features):
        """[coef_, intercept_] of the previous fit if warm_start and it fits, else None."""
        if not self.warm_start or not hasattr(self, "coef_"):
            return None
        coef = np.asarray(self.coef_, dtype=np.float64).ravel()
        if coef.size != n_features:
            return None
        if self.fit_intercept:
            return np.append(coef, float(np.ravel(self.intercept_)[0]))
        return coef.copy()


# -- LogisticRegression --------------------------------------------------------------------

class LogisticRegression(ClassifierMixin, _FastNewtonGLM):
    r"""Binary L2-regularized logistic regression, scikit-learn's API, fastnewton's solver.

    Minimizes :math:`C \sum_i s_i \ell(x_i^T w + b, y_i) + \tfrac12 \|w\|^2` with the
    log-loss :math:`\ell`, as ``sklearn.linear_model.LogisticRegression`` (L2 penalty,
    ``lbfgs`` / ``newton-cg`` / ``newton-cholesky`` solvers): the same coefficients up
    to the tolerance. Binary only: three or more classes raise a ValueError.

    Parameters
    ----------
    penalty : {"l2", None}, default="deprecated"
        Deprecated in scikit-learn 1.8 (use ``C`` and ``l1_ratio``); accepted with a
        FutureWarning as there. ``None``: no penalty (``C`` ignored). ``"l1"`` and
        ``"elasticnet"`` are not supported (the Newton methods need a twice-differentiable
        objective) and raise a ValueError.
    C : float > 0, default=1.0
        Inverse regularization strength; ``np.inf``: no penalty.
    l1_ratio : float, default=0.0
        Must be 0 (or None): only the L2 penalty is supported.
    dual : bool, default=False
        Must be False (the primal problem is solved).
    tol : float >= 0, default=1e-4
        Stop when the gradient norm of the objective divided by :math:`C \sum_i s_i`
        is at most ``tol`` (see :mod:`fastnewton.sklearn`).
    fit_intercept : bool, default=True
        Fit an unpenalized intercept (an implicit column of ones; X is not copied).
    intercept_scaling : float, default=1
        Accepted for compatibility; used by scikit-learn's liblinear only, ignored.
    class_weight : dict, "balanced" or None
        Weights of the classes, multiplied into the sample weights as scikit-learn does.
    random_state : int, Generator, RandomState or None
        Seed of the sketches of the sketched methods.
    solver : str, default="lbfgs"
        Accepted for compatibility (any of scikit-learn's names) and ignored: the solve
        is fastnewton's ``method``; the objective is always that of scikit-learn's
        ``lbfgs`` solver (unpenalized intercept, also for ``"liblinear"``).
    max_iter : int >= 0, default=100
        Maximum number of Newton steps.
    verbose : int, default=0
        Print per-step progress of :func:`fastnewton.minimize` when > 0.
    warm_start : bool, default=False
        Start from the previous fit's ``coef_`` and ``intercept_``.
    n_jobs : None
        Accepted for compatibility, ignored (threads: ``fastnewton`` thread settings).
    method : {"auto", "exact", "sketch", "sample", "pcg", "wide"}, default="auto"
        Step model of :func:`fastnewton.minimize` (``"wide"``: matrix-free Newton-CG, for
        many features; ``"auto"`` picks by an estimate of time and memory).

    Attributes
    ----------
    classes_ : ndarray (2,)
    coef_ : ndarray (1, n_features)
    intercept_ : ndarray (1,)
    n_iter_ : ndarray (1,) of int32
        Newton steps taken.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has feature names.
    result_ : fastnewton.NewtonResult
        The result of the solve (objective on the sum scale, history, timings).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnewton.sklearn import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 3))
    >>> y = (X @ [1.0, -2.0, 0.5] + rng.logistic(size=200) > 0).astype(int)
    >>> clf = LogisticRegression(C=1.0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, penalty="deprecated", *, C=1.0, l1_ratio=0.0, dual=False, tol=1e-4,
                 fit_intercept=True, intercept_scaling=1, class_weight=None, random_state=None,
                 solver="lbfgs", max_iter=100, verbose=0, warm_start=False, n_jobs=None,
                 method="auto"):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.method = method

    def _ridge(self):
        """lam of the sum objective: 1 / C, or 0 without penalty."""
        C = _check_real(self, "C", low=0.0, low_open=True, allow_inf=True)
        l1_ratio = 0.0 if self.l1_ratio is None else _check_real(self, "l1_ratio", low=0.0)
        if l1_ratio > 1.0:
            raise ValidationError(f"LogisticRegression: l1_ratio must be in [0, 1], got {l1_ratio!r}")
        unsupported = ("fastnewton's LogisticRegression supports the L2 penalty only (its "
                       "Newton methods need a twice-differentiable objective)")
        penalty = self.penalty
        if penalty == "deprecated":
            if l1_ratio != 0.0:
                raise ValidationError(f"{unsupported}: l1_ratio must be 0, got {l1_ratio!r}")
            return 0.0 if np.isinf(C) else 1.0 / C
        if penalty not in ("l2", None):
            if penalty in ("l1", "elasticnet"):
                raise ValidationError(f"{unsupported}; got penalty={penalty!r}")
            raise ValidationError(f"LogisticRegression: penalty must be 'l2' or None, got {penalty!r}")
        warnings.warn("'penalty' was deprecated in scikit-learn 1.8; leave it at its default "
                      "and use C (C=np.inf for no penalty) instead", FutureWarning, stacklevel=3)
        if penalty is None:
            if C != 1.0:
                warnings.warn("Setting penalty=None will ignore the C and l1_ratio parameters",
                              UserWarning, stacklevel=3)
            return 0.0
        if l1_ratio != 0.0:
            raise ValidationError(f"{unsupported}: l1_ratio must be 0, got {l1_ratio!r}")
        return 0.0 if np.isinf(C) else 1.0 / C

    def fit(self, X, y, sample_weight=None):
        """Fit the model to (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Two classes (any labels; ``classes_[1]`` is the positive one).
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        lam = self._ridge()
        _check_common(self, _LOGISTIC_SOLVERS, 0)
        if self.dual:
            raise ValidationError("LogisticRegression: dual=True is not supported; fastnewton "
                                  "solves the primal problem (dual=False)")
        X, y = _validate_data(self, X, y, accept_sparse="csr", dtype=_DTYPES, order="C")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        n_classes = self.classes_.size
        if n_classes < 2:
            raise ValueError("This solver needs samples of at least 2 classes in the data, but "
                             f"the data contains only one class: {self.classes_[0]!r}")
        if n_classes > 2:
            raise ValueError(
                f"Only binary classification is supported by fastnewton's LogisticRegression, "
                f"but y has {n_classes} classes: multinomial logistic regression is not "
                "implemented. Use "
                "sklearn.linear_model.LogisticRegression, or wrap this estimator in "
                "sklearn.multiclass.OneVsRestClassifier (one-vs-rest, a different model).")
        if sample_weight is not None or self.class_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if sample_weight is not None:
                sample_weight = np.array(sample_weight, dtype=np.float64)
        if self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y,
                                      sample_weight=sample_weight)
            sample_weight = sample_weight * cw[LabelEncoder().fit(self.classes_).transform(y)]
        y01 = (y == self.classes_[1]).astype(np.float64)
        n_features = X.shape[1]
        x0 = self._warm_start_x0(n_features)  # None: GLMRegression.initial_point()
        (coef, intercept), res = self._solve(X, y01, sample_weight, "binomial", None, lam, x0)
        self.coef_ = coef.astype(X.dtype, copy=False)[None, :]
        self.intercept_ = np.array([intercept if self.fit_intercept else 0.0], dtype=X.dtype)
        self.n_iter_ = np.array([res.nit], dtype=np.int32)
        return self

    def decision_function(self, X):
        """Signed distance to the hyperplane, ``X @ coef_.T + intercept_``, shape (n,)."""
        check_is_fitted(self)
        X = _validate_data(self, X, accept_sparse="csr", dtype=_DTYPES, reset=False)
        return np.asarray(X @ self.coef_[0], dtype=self.coef_.dtype) + self.intercept_[0]

    def predict(self, X):
        """Class labels: ``classes_[1]`` where the decision function is positive."""
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int)]

    def predict_proba(self, X):
        """Probabilities of ``classes_``, shape (n, 2)."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X):
        """Log-probabilities of ``classes_``, shape (n, 2) (computed stably)."""
        z = self.decision_function(X)
        return np.column_stack([log_expit(-z), log_expit(z)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags


# -- Poisson / Gamma / Tweedie -------------------------------------------------------------

class _GeneralizedLinearRegressor(RegressorMixin, _FastNewtonGLM):
    """Shared fit/predict/score of the log-link (and normal) GLM regressors."""

    # the constructor of PoissonRegressor and GammaRegressor (scikit-learn reads the
    # parameter names from it); TweedieRegressor adds power and link
    def __init__(self, *, alpha=1.0, fit_intercept=True, solver="lbfgs", max_iter=100,
                 tol=1e-4, warm_start=False, verbose=0, method="auto", random_state=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose
        self.method = method
        self.random_state = random_state

    def _family(self):  # pragma: no cover - abstract
        """(family, power, link, d2_power) of the model."""
        raise NotImplementedError

    def fit(self, X, y, sample_weight=None):
        """Fit the GLM to (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Targets in the family's domain.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        alpha = _check_real(self, "alpha", low=0.0)
        _check_common(self, _GLM_SOLVERS, 1)
        _check_real(self, "tol", low=0.0, low_open=True)
        family, power, _, _ = self._family()
        X, y = _validate_data(self, X, y, accept_sparse="csr", dtype=_DTYPES, y_numeric=True,
                              multi_output=False)
        y = check_array(y, dtype=np.float64, ensure_2d=False)
        if sample_weight is not None:
            sample_weight = np.array(_check_sample_weight(sample_weight, X, dtype=np.float64),
                                     dtype=np.float64)
        sw_sum = float(X.shape[0] if sample_weight is None else sample_weight.sum())
        n_features = X.shape[1]
        x0 = self._warm_start_x0(n_features)  # None: GLMRegression.initial_point()
        (coef, intercept), res = self._solve(X, y, sample_weight, family, power,
                                             alpha * sw_sum, x0)
        self.coef_ = coef.astype(X.dtype, copy=False)
        self.intercept_ = float(intercept) if self.fit_intercept else 0.0
        self.n_iter_ = int(res.nit)
        return self

    def _linear_predictor(self, X):
        check_is_fitted(self)
        X = _validate_data(self, X, accept_sparse="csr", dtype=_DTYPES, reset=False)
        return np.asarray(X @ self.coef_, dtype=np.float64) + self.intercept_

    def predict(self, X):
        """Predicted mean: ``exp(X @ coef_ + intercept_)`` (identity link: without exp)."""
        z = self._linear_predictor(X)
        if self._family()[2] == "identity":
            return z
        with np.errstate(over="ignore"):
            return np.exp(z)

    def score(self, X, y, sample_weight=None):
        """D^2, the fraction of deviance explained (scikit-learn's ``d2_tweedie_score``
        with the model's power; R^2 for the normal family)."""
        pred = self.predict(X)
        y = check_array(y, dtype=np.float64, ensure_2d=False)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, pred[:, None], dtype=np.float64)
        try:
            return float(d2_tweedie_score(y, pred, sample_weight=sample_weight,
                                          power=self._family()[3]))
        except ZeroDivisionError:  # constant y: the null deviance is 0 (scikit-learn: nan)
            warnings.warn("D^2 is undefined where y is constant (the deviance of the null "
                          "model is 0); returning nan", RuntimeWarning, stacklevel=2)
            return float("nan")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        try:
            tags.target_tags.positive_only = self._family()[2] == "log"
        except (ValueError, TypeError):  # invalid power/link: default tags
            pass
        return tags


_GLM_PARAMS = """alpha : float >= 0, default=1.0
        Ridge strength on the coefficients (the mean-deviance scale of scikit-learn).
    fit_intercept : bool, default=True
        Fit an unpenalized intercept (an implicit column of ones; X is not copied).
    solver : {"lbfgs", "newton-cholesky"}, default="lbfgs"
        Accepted for compatibility and ignored: the solve is fastnewton's ``method``.
    max_iter : int >= 1, default=100
        Maximum number of Newton steps.
    tol : float > 0, default=1e-4
        Stop when the gradient norm of the mean objective is at most ``tol`` (see
        :mod:`fastnewton.sklearn`).
    warm_start : bool, default=False
        Start from the previous fit's ``coef_`` and ``intercept_``.
    verbose : int, default=0
        Print per-step progress of :func:`fastnewton.minimize` when > 0.
    method : {"auto", "exact", "sketch", "sample", "pcg", "wide"}, default="auto"
        Step model of :func:`fastnewton.minimize` (``"wide"``: matrix-free Newton-CG, for
        many features; ``"auto"`` picks by an estimate of time and memory).
    random_state : int, Generator, RandomState or None
        Seed of the sketches of the sketched methods.

    Attributes
    ----------
    coef_ : ndarray (n_features,)
    intercept_ : float
    n_iter_ : int
        Newton steps taken.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has feature names.
    result_ : fastnewton.NewtonResult
        The result of the solve (objective on the sum scale, history, timings)."""


class PoissonRegressor(_GeneralizedLinearRegressor):
    __doc__ = r"""Poisson GLM with log link, scikit-learn's API, fastnewton's solver.

    Minimizes :math:`\frac{1}{\sum_i s_i}\sum_i s_i\, \tfrac12 D(y_i, e^{x_i^T w + b})
    + \tfrac{\alpha}{2}\|w\|^2` (D the Poisson unit deviance), as
    ``sklearn.linear_model.PoissonRegressor``.

    Parameters
    ----------
    """ + _GLM_PARAMS

    def _family(self):
        return "poisson", None, "log", 1.0


class GammaRegressor(_GeneralizedLinearRegressor):
    __doc__ = r"""Gamma GLM with log link, scikit-learn's API, fastnewton's solver.

    Minimizes :math:`\frac{1}{\sum_i s_i}\sum_i s_i\, \tfrac12 D(y_i, e^{x_i^T w + b})
    + \tfrac{\alpha}{2}\|w\|^2` (D the Gamma unit deviance), as
    ``sklearn.linear_model.GammaRegressor``; y must be positive.

    Parameters
    ----------
    """ + _GLM_PARAMS

    def _family(self):
        return "gamma", None, "log", 2.0


class TweedieRegressor(_GeneralizedLinearRegressor):
    __doc__ = r"""Tweedie GLM, scikit-learn's API, fastnewton's solver.

    Minimizes :math:`\frac{1}{\sum_i s_i}\sum_i s_i\, \tfrac12 D_p(y_i, \mu_i)
    + \tfrac{\alpha}{2}\|w\|^2` (D_p the Tweedie unit deviance of power p), as
    ``sklearn.linear_model.TweedieRegressor``. Supported: ``power=0`` with the identity
    link (``link="auto"`` or ``"identity"``: ridge regression, half squared error) and
    ``power >= 1`` with the log link (``"auto"`` or ``"log"``; 1 is Poisson, 2 Gamma,
    3 inverse Gaussian). Other combinations (0 < power < 1, which has no distribution,
    power < 0, power = 0 with the log link, power > 0 with the identity link) raise a
    ValueError. For power > 2 the loss is non-convex in the linear predictor where
    the prediction is far above y; fastnewton's globalization handles it.

    Parameters
    ----------
    power : float, default=0.0
        Tweedie power.
    link : {"auto", "identity", "log"}, default="auto"
        "auto": identity for power <= 0, log otherwise.
    """ + _GLM_PARAMS

    def __init__(self, *, power=0.0, alpha=1.0, fit_intercept=True, link="auto", solver="lbfgs",
                 max_iter=100, tol=1e-4, warm_start=False, verbose=0, method="auto",
                 random_state=None):
        self.power = power
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.link = link
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose
        self.method = method
        self.random_state = random_state

    def _family(self):
        power = _check_real(self, "power")
        link = _check_choice(self, "link", ("auto", "identity", "log"))
        if link == "auto":
            link = "identity" if power <= 0 else "log"
        if 0.0 < power < 1.0:
            raise ValidationError(f"TweedieRegressor: power must be <= 0 or >= 1 (no Tweedie "
                                  f"distribution exists for 0 < power < 1), got {power!r}")
        if link == "identity":
            if power != 0.0:
                hint = ("power < 0 is not supported: use power=0 (normal) or power >= 1"
                        if power < 0 else "use link='log' (or 'auto') for power >= 1")
                raise ValidationError(
                    "TweedieRegressor: the identity link is supported for power=0 (normal) only, "
                    f"got power={power!r}; {hint}")
            return "normal", None, "identity", 0.0
        if power < 1.0:
            raise ValidationError(
                "TweedieRegressor: the log link is supported for power >= 1 only, got "
                f"power={power!r}; use link='identity' (or 'auto') for power=0")
        return "tweedie", power, "log", power
