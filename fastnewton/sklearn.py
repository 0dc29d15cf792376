"""scikit-learn estimators over the fastnewton problem families (optional extra ``sklearn``).

``pip install "fastnewton[sklearn]"``. Importing ``fastnewton`` never imports this module
or scikit-learn; importing this module needs scikit-learn.

>>> import numpy as np
>>> from fastnewton.sklearn import ExpRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 4)) / 2
>>> y = np.exp(X @ np.array([0.5, -0.3, 0.2, 0.1]))
>>> est = ExpRegressor(w=0.0).fit(X, y)
>>> bool(est.score(X, y) > 0.99)
True

Notes
-----
The models have no intercept (the papers' losses have none): append a column of ones
to ``X`` for one. Every estimator passes scikit-learn's ``check_estimator`` except the
checks it declares, with the reason for each, in its ``_expected_failed_checks``
(:func:`expected_failed_checks` returns them, in the form
``check_estimator(..., expected_failed_checks=...)`` and ``parametrize_with_checks``
take; ``tests/test_interop.py`` runs the checks on every estimator of
:data:`ESTIMATORS`).
"""

from __future__ import annotations

import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastnewton.sklearn needs scikit-learn: pip install 'fastnewton[sklearn]'") from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(est, X="no_validation", y="no_validation", **kw):
        return est._validate_data(X, y, **kw)

from ._sklearn_glm import GammaRegressor, LogisticRegression, PoissonRegressor, TweedieRegressor
from ._validation import check_matrix
from .exceptions import ConvergenceWarning
from .newton import minimize
from .problems import PROBLEMS
from .problems.exp import _FUNCS, convexity_bound

__all__ = ["ExpRegressor", "SoftmaxRegressor", "LogisticRegression", "PoissonRegressor",
           "GammaRegressor", "TweedieRegressor", "ESTIMATORS", "expected_failed_checks"]

_ACCEPT_SPARSE = ("csr", "csc", "coo")


def _not_matrix(X):
    """``np.matrix`` as a plain array (scikit-learn refuses the subclass; it is valid data)."""
    return np.asarray(X) if isinstance(X, np.matrix) else X


class _NewtonRegressor(RegressorMixin, BaseEstimator):
    """Shared fit/predict: build the family's problem from (X, y), minimize, keep x."""

    #: ``{check name: reason}`` of the scikit-learn estimator checks this estimator
    #: fails by construction (see :func:`expected_failed_checks`).
    _expected_failed_checks = {}

    def _build_problem(self, X, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _link(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _start(self, X, y):
        """Start point of the solve (None: zeros)."""
        return None

    def fit(self, X, y):
        """Fit ``coef_`` by :func:`fastnewton.minimize` on ``(X, y)``; returns self."""
        X, y = _validate_data(self, _not_matrix(X), y, accept_sparse=_ACCEPT_SPARSE,
                              dtype=[np.float64, np.float32], y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        problem = self._build_problem(X, y)
        with warnings.catch_warnings():
            # reported through n_iter_ / result_.success; re-issued below once
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = minimize(problem, self._start(X, y), method=self.method, tol=self.tol, maxiter=self.max_iter,
                           seed=self.random_state)
        if not res.success:
            warnings.warn(f"{type(self).__name__} did not converge in {res.nit} Newton steps: "
                          f"{res.message}; increase max_iter or lam", ConvergenceWarning,
                          stacklevel=2)
        self.coef_ = res.x
        self.n_iter_ = int(res.nit)
        self.result_ = res
        return self

    def predict(self, X):
        """Model prediction ``link(X @ coef_)``, shape (n_samples,)."""
        check_is_fitted(self)
        X = _validate_data(self, _not_matrix(X), accept_sparse=_ACCEPT_SPARSE,
                           dtype=[np.float64, np.float32], reset=False)
        # on the canonical form (CSR with sorted, summed entries; C-ordered dense), so the
        # prediction is the same whatever X's format, order or duplicate entries
        X = check_matrix(X, "X")
        with np.errstate(over="ignore"):
            return self._link(np.asarray(X @ self.coef_, dtype=np.float64))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # The models are f(X coef) without intercept; on linear targets they can fit
        # poorly by design (see check_regressors_train).
        tags.regressor_tags.poor_score = True
        return tags


class ExpRegressor(_NewtonRegressor):
    r"""exp / cosh / sinh regression :math:`y \approx f(X\,\mathrm{coef})` as an estimator.

    Fits :class:`fastnewton.ExpRegression`:
    :math:`\min_x \tfrac12\|f(Xx) - y\|^2 + \tfrac12\|w\circ(Xx)\|^2 + \tfrac12\lambda\|x\|^2`.

    Parameters
    ----------
    f : {"exp", "cosh", "sinh"}
    w : "convex", float or array_like (n_samples,)
        Weights of the ½‖w∘(X x)‖² term; ``"convex"`` (default) uses the smallest weights
        that make the loss convex row by row (plus 5% and 0.05), computed from y.
    lam : float, default 1e-8
        Ridge; a small positive value keeps rank-deficient X well-posed.
    method : {"auto", "exact", "sketch", ...}
        Step model of :func:`fastnewton.minimize`.
    tol : float
        Relative gradient-norm tolerance.
    max_iter : int
        Maximum Newton steps.
    random_state : None or int
        Seed of the sketch (sketched methods).

    Attributes
    ----------
    coef_ : ndarray (n_features,)
    n_iter_ : int
    result_ : fastnewton.NewtonResult
    n_features_in_ : int
    """

    def __init__(self, f="exp", w="convex", lam=1e-8, method="auto", tol=1e-8, max_iter=100,
                 random_state=None):
        self.f = f
        self.w = w
        self.lam = lam
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _build_problem(self, X, y):
        from .problems import ExpRegression

        w = self.w
        if isinstance(w, str):
            if w != "convex":
                raise ValueError(f"w must be 'convex', a number or an array, got {w!r}")
            if self.f not in _FUNCS:
                raise ValueError(f"f must be one of {sorted(_FUNCS)}, got {self.f!r}")
            w = 1.05 * np.sqrt(np.maximum(convexity_bound(y, self.f), 0.0)) + 0.05
        return ExpRegression(X, y, w, f=self.f, lam=self.lam)

    def _link(self, z):
        return _FUNCS[self.f][0](z)

    def _start(self, X, y):
        """cosh: x = 0 is always stationary (L is even), so start from the least-squares
        fit of X x to arccosh(max(y, 1)) (a few LSQR iterations, sparse-friendly)."""
        if self.f != "cosh":
            return None
        from scipy.sparse.linalg import lsqr

        target = np.arccosh(np.maximum(y, 1.0))
        return lsqr(X, target, iter_lim=50)[0] if target.any() else None


class SoftmaxRegressor(_NewtonRegressor):
    r"""Softmax regression :math:`y \approx \mathrm{softmax}(X\,\mathrm{coef})` (y: n weights).

    Fits ``fastnewton.SoftmaxRegression(X, y, w=w, lam=lam)``; ``predict`` returns the
    softmax over the rows of the X it is given. Needs the softmax family in
    ``fastnewton.problems.PROBLEMS``.

    Notes
    -----
    The prediction of a row depends on the other rows given with it (the softmax
    normalizes over all of them), so predicting a subset of rows is not the subset of
    the prediction: scikit-learn's ``check_methods_subset_invariance`` fails by
    construction and is declared in ``_expected_failed_checks``.
    """

    _expected_failed_checks = {
        "check_methods_subset_invariance":
            "predict is the softmax over the rows it is given: the rows are coupled by "
            "the normalizer, so a prediction on a subset is not the subset of the "
            "prediction (by construction)",
    }

    def __init__(self, w=None, lam=1e-8, method="auto", tol=1e-8, max_iter=100,
                 random_state=None):
        self.w = w
        self.lam = lam
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _build_problem(self, X, y):
        cls = PROBLEMS.get("softmax")
        if cls is None:
            raise NotImplementedError("this fastnewton has no SoftmaxRegression family yet")
        return cls(X, y, w=self.w, lam=self.lam)

    def _link(self, z):
        e = np.exp(z - z.max())
        return e / e.sum()


#: The estimators of this module (check_estimator runs on each, see tests/test_interop.py).
#: Every estimator of this module (each one is run through scikit-learn's check_estimator
#: in the test suite, with the failures its class declares as expected).
ESTIMATORS = (ExpRegressor, SoftmaxRegressor, LogisticRegression, PoissonRegressor,
              GammaRegressor, TweedieRegressor)


def expected_failed_checks(estimator):
    """``{check name: reason}`` of the estimator checks ``estimator`` fails by
    construction (its class's ``_expected_failed_checks``), for scikit-learn's
    ``check_estimator(estimator, expected_failed_checks=...)`` and
    ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``."""
    return dict(getattr(type(estimator), "_expected_failed_checks", {}))
