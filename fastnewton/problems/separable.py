r"""User losses: any separable loss of the linear predictor, compiled into the fused kernels.

Another solver brings its per-sample loss as a numba function and gets every method of
:func:`fastnewton.minimize` (exact, sketch, sample, pcg) and the toolbox on it::

    import numba, numpy as np, fastnewton as fn

    @numba.njit
    def logcosh(z, y):                  # (loss, d loss/dz, d2 loss/dz2) of one sample
        r = z - y
        t = np.tanh(r)
        return np.abs(r) + np.log1p(np.exp(-2 * np.abs(r))) - np.log(2.0), t, 1.0 - t * t

    prob = fn.SeparableLoss(A, y, logcosh, lam=1e-3)
    res = fn.minimize(prob)
"""

from __future__ import annotations

import numbers

import numpy as np

from ..linalg._design import n_row_blocks
from ._linear_model import LinearModelProblem
from ._separable_kernels import separable_kernel

__all__ = ["SeparableLoss"]


def _is_jitted(loss):
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    return isinstance(loss, CPUDispatcher)


def _loss_name(loss):
    func = getattr(loss, "py_func", loss)
    return getattr(func, "__qualname__", None) or type(loss).__name__


def _check_loss(loss, y0):
    """Raise TypeError naming ``loss`` unless it is a jitted (z, y) -> 3-tuple of finite floats."""
    if not _is_jitted(loss):
        raise TypeError(f"loss must be a numba-jitted function (decorate it with @numba.njit), "
                        f"got {type(loss).__name__} {_loss_name(loss)!r}")
    name = _loss_name(loss)
    try:
        out = loss(0.0, float(y0))
    except Exception as exc:  # numba typing errors, wrong arity, ...
        raise TypeError(f"loss {name!r} could not be called as loss(z, y) with two floats: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        ) from None
    if not isinstance(out, tuple) or len(out) != 3 or not all(
            isinstance(v, (numbers.Real, np.number)) and not isinstance(v, bool) for v in out):
        raise TypeError(f"loss {name!r} must return a tuple (value, d/dz, d2/dz2) of three "
                        f"floats, got {out!r} at (z, y) = (0.0, {float(y0)!r})")
    if not all(np.isfinite(float(v)) for v in out):
        raise TypeError(f"loss {name!r} returned non-finite values {out!r} at (z, y) = "
                        f"(0.0, {float(y0)!r}); it must be finite where the data are")
    return name


class SeparableLoss(LinearModelProblem):
    r"""A user's separable loss of the linear predictor, with every method of ``minimize``.

    .. math::
        L(x) = \sum_{i=1}^n s_i\, \ell(a_i^T \text{coef} + \text{intercept} + o_i,\; y_i)
               + \tfrac12 \lambda \|\text{coef}\|^2,
        \qquad x = [\text{coef}, \text{intercept}] \text{ (with fit_intercept)}.

    Parameters
    ----------
    A : sparse matrix or array, shape (n, p)
    y : array_like (n,)
        Per-sample data handed to ``loss`` (finite).
    loss : numba function ``loss(z, y) -> (value, d value/dz, d2 value/dz2)``
        Jitted with ``@numba.njit``; called with two float64 scalars. It is compiled
        into one fused parallel pass (loss, gradient and curvature of every sample at
        once), built once per function and process (numba cannot cache that kernel on
        disk: expect about 1-2 s of compilation per new function and process). It is
        checked once, at (0.0, y[0]): it must return three finite floats.
    sample_weight : float or array_like (n,), optional
        Non-negative weights of the samples' losses.
    fit_intercept : bool
        Append an unpenalized intercept (an implicit column of ones, no copy of A).
    lam : float
        Ridge :math:`\tfrac12 \lambda \|\text{coef}\|^2` (the intercept is not penalized).
    offset : array_like (n,), optional
        Fixed shifts of the linear predictor.

    Notes
    -----
    Negative second derivatives are allowed (non-convex losses, e.g. robust ones):
    ``minimize`` then handles an indefinite Hessian as for the other non-convex
    families (shifted factorization, sketches of the non-negative part, line search).
    Where ``loss`` returns a non-finite value or derivative for some sample, the
    objective is ``inf`` there (``fun``, and the line search rejects the point);
    asking for the gradient or Hessian at such a point (``jac``, ``hessp``,
    ``loss_grad_z``) raises a :class:`~fastnewton.ValidationError` naming the loss
    and the sample.

    Examples
    --------
    >>> import numba, numpy as np, fastnewton as fn
    >>> @numba.njit
    ... def logcosh(z, y):
    ...     r = z - y
    ...     t = np.tanh(r)
    ...     return np.abs(r) + np.log1p(np.exp(-2 * np.abs(r))) - np.log(2.0), t, 1.0 - t * t
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 3))
    >>> y = A @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(300)
    >>> res = fn.minimize(fn.SeparableLoss(A, y, logcosh), method="exact")
    >>> bool(res.success), np.round(res.x, 1).tolist()
    (True, [1.0, -2.0, 0.5])
    """

    def __init__(self, A, y, loss, sample_weight=None, fit_intercept=False, lam=0.0,
                 offset=None):
        super().__init__(A, y, sample_weight=sample_weight, offset=offset,
                         fit_intercept=fit_intercept, lam=lam)
        self.loss = loss
        self._name = _check_loss(loss, self.y[0])
        try:
            self._kernel = separable_kernel(loss)
            self._run(np.zeros(1), slice(0, 1), np.empty(1), np.empty(1))  # compile now
        except Exception as exc:
            if isinstance(exc, (TypeError, ValueError)) and "loss" in str(exc):
                raise
            raise TypeError(f"loss {self._name!r} could not be compiled into the fused kernel "
                            f"(it must return a tuple of three floats): {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

    def _loss_name(self):
        return f"loss function {self._name!r}"

    def _run(self, z, rows, grad, beta):
        nb = n_row_blocks(z.shape[0])
        bad = np.empty(nb, dtype=np.int64)
        val = self._kernel(z, self._take(self.y, rows), self._take(self.offset, rows),
                           self._take(self.sample_weight, rows), np.empty(nb), bad, grad, beta)
        hits = bad[bad >= 0]
        return val, (int(hits[0]) if hits.size else -1)

    def _repr_extra(self):
        return f", loss={self._name!r}"
