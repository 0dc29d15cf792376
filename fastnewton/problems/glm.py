r"""Generalized linear models: binomial (logit), Poisson, Gamma, Tweedie (log) and normal.

The pointwise losses of z (the linear predictor), in the manner of scikit-learn's
``sklearn._loss``: per sample, with :math:`\eta = a_i^T \text{coef} + \text{intercept}
+ \text{offset}_i` and :math:`\mu = e^\eta` (log link),

========== ======================================================= ==================
family     :math:`\ell(\eta, y)`                                    domain of y
========== ======================================================= ==================
normal     :math:`\tfrac12 (\eta - y)^2`                             real
binomial   :math:`\log(1 + e^\eta) - y \eta` (log-loss)              [0, 1]
poisson    :math:`\mu - y \eta + y \log y - y`                       y >= 0
gamma      :math:`\eta + y/\mu - \log y - 1`                         y > 0
tweedie p  :math:`\frac{\mu^{2-p}}{2-p} - \frac{y \mu^{1-p}}{1-p}
           + \frac{y^{2-p}}{(1-p)(2-p)}`                           y >= 0 (1 < p < 2), y > 0 (p > 2)
========== ======================================================= ==================

Poisson, Gamma and Tweedie are the exact half unit deviances (0 at :math:`\mu = y`),
so ``fun`` is directly comparable with the (half) deviance of scikit-learn and glum;
the binomial loss is the exact log-loss (for y in {0, 1} also the half deviance).
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from .._validation import check_scalar
from ..exceptions import ValidationError
from ..linalg._design import n_row_blocks
from . import _glm_kernels
from ._linear_model import LinearModelProblem

__all__ = ["GLMRegression", "FAMILIES", "FAMILY_CODES"]

#: The families of :class:`GLMRegression`.
FAMILIES = ("binomial", "poisson", "gamma", "tweedie", "normal")
#: Kernel codes of the families (``_glm_kernels``).
FAMILY_CODES = {"normal": 0, "binomial": 1, "poisson": 2, "gamma": 3, "tweedie": 4}


def _resolve_family(family, power):
    """(family, power) with Tweedie powers 0, 1, 2 mapped to normal, Poisson, Gamma."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if family != "tweedie":
        if power is not None:
            raise ValueError(f"power applies to family='tweedie' only, got power={power!r} "
                             f"with family={family!r}")
        return family, None
    if power is None:
        raise ValueError("family='tweedie' needs a power (0: normal, 1: poisson, 2: gamma, "
                         "1 < power < 2: compound Poisson-Gamma, power > 2)")
    power = float(check_scalar(power, "power"))
    if power == 0.0:
        return "normal", None
    if power == 1.0:
        return "poisson", None
    if power == 2.0:
        return "gamma", None
    if power < 1.0:
        raise ValueError(f"power must be 0 or at least 1 for the Tweedie family with log link "
                         f"(no Tweedie distribution has 0 < power < 1), got {power!r}")
    return "tweedie", power


def _check_domain(family, power, y):
    """Raise a ValidationError naming y unless every y is in the family's domain."""
    checks = {
        "normal": (lambda v: np.ones(v.shape, bool), "real"),
        "binomial": (lambda v: (v >= 0) & (v <= 1), "in [0, 1]"),
        "poisson": (lambda v: v >= 0, "non-negative"),
        "gamma": (lambda v: v > 0, "positive"),
    }
    if family == "tweedie":
        checks["tweedie"] = ((lambda v: v >= 0, "non-negative") if power < 2
                             else (lambda v: v > 0, "positive"))
    ok, what = checks[family]
    good = ok(y)
    if not good.all():
        i = int(np.flatnonzero(~good)[0])
        name = family if family != "tweedie" else f"tweedie with power={power:g}"
        raise ValidationError(f"y must be {what} for family {name!r}, got y[{i}] = {y[i]!r} "
                              f"({int((~good).sum())} of {y.size} samples outside the domain)")


def _deviance_constant(family, power, y):
    """c_i so that l + c is the half unit deviance (None where it is 0)."""
    if family == "poisson":
        return xlogy(y, y) - y
    if family == "gamma":
        return -np.log(y) - 1.0
    if family == "tweedie":
        return np.power(y, 2.0 - power) / ((1.0 - power) * (2.0 - power))
    return None


class GLMRegression(LinearModelProblem):
    r"""A generalized linear model: weighted half deviance plus a ridge on the coefficients.

    .. math::
        L(x) = \sum_{i=1}^n s_i\, \ell(a_i^T \text{coef} + \text{intercept} + o_i,\; y_i)
               + \tfrac12 \lambda \|\text{coef}\|^2,
        \qquad x = [\text{coef}, \text{intercept}],

    with :math:`\ell` the family's loss (see :mod:`fastnewton.problems.glm`), :math:`s`
    the sample weights and :math:`o` the offsets. The loss is a **sum** over samples,
    not a mean: scikit-learn's ``LogisticRegression(C)`` is ``lam = 1 / C``, its
    ``PoissonRegressor(alpha)`` / ``GammaRegressor`` / ``TweedieRegressor`` are
    ``lam = alpha * sum(sample_weight)`` (same minimizer, objective scaled by
    ``sum(s)``). The intercept is never penalized.

    Parameters
    ----------
    A : sparse matrix or array, shape (n, p)
        Features. With ``fit_intercept`` the intercept is an implicit column of ones
        handled inside the design's kernels (:class:`~fastnewton.linalg.InterceptDesign`):
        A is never copied to append it.
    y : array_like (n,)
        Targets, in the family's domain (binomial: [0, 1]; poisson: >= 0; gamma: > 0;
        tweedie: >= 0 for 1 < power < 2, > 0 for power > 2).
    family : {"binomial", "poisson", "gamma", "tweedie", "normal"}
        Binomial uses the logit link, poisson / gamma / tweedie the log link, normal the
        identity.
    power : float, optional
        Tweedie power (``family="tweedie"`` only): 0, 1 and 2 are the normal, Poisson
        and Gamma families; 0 < power < 1 is refused. For power > 2 the loss is
        non-convex in z where :math:`\mu > y (p-1)/(p-2)`: the Hessian may be
        indefinite there; ``minimize`` handles it as for the other non-convex families
        (shifted factorizations, sketches of the non-negative part, line search).
    sample_weight : float or array_like (n,), optional
        Non-negative weights :math:`s_i` of the samples' losses (default 1).
    offset : array_like (n,), optional
        Fixed shifts :math:`o_i` of the linear predictor (e.g. log exposure).
    fit_intercept : bool
        Append an unpenalized intercept: then ``x = [coef, intercept]``, ``d = p + 1``.
    lam : float, non-negative
        Ridge :math:`\tfrac12 \lambda \|\text{coef}\|^2`. The attribute ``lam`` is this
        float without an intercept, else the per-coordinate vector ``[lam, ..., lam, 0]``.

    Attributes
    ----------
    d : int
        Length of x (``n_features + 1`` with an intercept).
    n_features : int
    family, power : the resolved family (a Tweedie power 0/1/2 becomes its family)

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((500, 4))
    >>> y = rng.poisson(np.exp(A @ [0.3, -0.2, 0.1, 0.0] + 0.5))
    >>> prob = fn.GLMRegression(A, y, family="poisson", lam=1.0)
    >>> res = fn.minimize(prob, method="exact")
    >>> coef, intercept = prob.split(res.x)
    >>> bool(res.success), coef.shape, round(intercept, 1)
    (True, (4,), 0.5)
    """

    def __init__(self, A, y, family="binomial", power=None, sample_weight=None, offset=None,
                 fit_intercept=True, lam=0.0):
        family, power = _resolve_family(family, power)
        super().__init__(A, y, sample_weight=sample_weight, offset=offset,
                         fit_intercept=fit_intercept, lam=lam)
        self.family = family
        self.power = power
        _check_domain(family, power, self.y)
        self._code = FAMILY_CODES[family]
        self._const = _deviance_constant(family, power, self.y)
        #: True where the loss is convex in z for every y (Tweedie power > 2 is not).
        self.convex = not (family == "tweedie" and power > 2)

    def initial_point(self):
        r"""The start of :func:`~fastnewton.minimize` when no ``x0`` is given: coef = 0 and
        the intercept at the link of the weighted mean of y, as scikit-learn and glum start.

        With an intercept: :math:`\bar y = \sum_i s_i y_i / \sum_i s_i`, intercept
        :math:`g(\bar y) - \bar o` with g the link (identity for normal, logit for
        binomial with :math:`\bar y` clipped to :math:`[10^{-10}, 1 - 10^{-10}]`, log
        otherwise; 0 when :math:`\bar y = 0`) and :math:`\bar o` the weighted mean of
        the offsets (0 without). Without offsets (and :math:`\bar y` inside the domain)
        this is the exact minimizer over the intercept at coef = 0 for every family (each
        family's mean is :math:`g^{-1}(z)`). Without an intercept: zeros.

        Returns
        -------
        ndarray (d,)
        """
        x = np.zeros(self.d)
        if not self.fit_intercept:
            return x
        w = self.sample_weight
        ybar = float(np.mean(self.y) if w is None else np.dot(w, self.y) / w.sum())
        if self.family == "normal":
            b = ybar
        elif self.family == "binomial":
            p = min(max(ybar, 1e-10), 1.0 - 1e-10)
            b = float(np.log(p / (1.0 - p)))
        else:
            b = float(np.log(ybar)) if ybar > 0 else 0.0
        if self.offset is not None:
            b -= float(np.mean(self.offset) if w is None else np.dot(w, self.offset) / w.sum())
        x[-1] = b
        return x

    def _run(self, z, rows, grad, beta):
        val = _glm_kernels.glm_loss_grad(
            self._code, 0.0 if self.power is None else self.power, z, self._take(self.y, rows),
            self._take(self.offset, rows), self._take(self.sample_weight, rows),
            self._take(self._const, rows), np.empty(n_row_blocks(z.shape[0])), grad, beta)
        return val, -1

    def _repr_extra(self):
        power = "" if self.power is None else f", power={self.power:g}"
        return f", family={self.family!r}{power}"
