"""exp, cosh and sinh regression (arXiv 2303.15725): ½‖f(A x) − b‖² + ½‖w∘(A x)‖² + ½λ‖x‖²."""

from __future__ import annotations

import warnings

import numpy as np

from .._validation import check_vector
from ..exceptions import NonConvexWarning
from ..linalg._design import fixed_dot
from ..hessian import DiagLowRank
from ..linalg._design import n_row_blocks
from . import _kernels
from ._base import Problem

__all__ = ["ExpRegression", "convexity_bound"]

_EMPTY = np.empty(0)
_KIND = {"exp": 0, "cosh": 1, "sinh": 2}

# f and f' for each choice of f; f'' == f for all three.
_FUNCS = {
    "exp": (np.exp, np.exp),
    "cosh": (np.cosh, np.sinh),
    "sinh": (np.sinh, np.cosh),
}


def convexity_bound(b, f):
    """Smallest w**2 per row that makes the row's loss convex in z (exact, per row).

    exp: max(b, 0)**2 / 8; cosh: b - 1 for b <= 4, else b**2/8 + 1; sinh: b**2/8 - 1.
    (MATH.md's simpler sufficient bounds are upper bounds of these.)
    """
    b = np.asarray(b, dtype=np.float64)
    if f == "exp":
        return np.maximum(b, 0.0) ** 2 / 8.0
    if f == "cosh":
        return np.where(b <= 4.0, b - 1.0, b * b / 8.0 + 1.0)
    if f == "sinh":
        return b * b / 8.0 - 1.0
    raise ValueError(f"unknown f {f!r}; choose one of {sorted(_FUNCS)}")


class ExpRegression(Problem):
    r"""Regularized exp / cosh / sinh regression.

    .. math::
        L(x) = \tfrac12 \|f(A x) - b\|^2 + \tfrac12 \|w \circ (A x)\|^2 + \tfrac12 \lambda \|x\|^2,
        \qquad f \in \{\exp, \cosh, \sinh\}.

    Its Hessian is :math:`A^T \mathrm{diag}(\beta) A + \lambda I` with
    :math:`\beta = f'(z)^2 + f''(z)(f(z) - b) + w^2`, z = A x.

    Parameters
    ----------
    A : sparse matrix or array, shape (n, d)
    b : array_like, shape (n,)
        Targets.
    w : float or array_like (n,), non-negative
        Weights of the ½‖w∘(A x)‖² term. The loss is convex in z row by row when
        ``w**2 >= convexity_bound(b, f)``; below that a :class:`NonConvexWarning` is
        issued (the driver still works: it shifts indefinite Hessians and line-searches).
    f : {"exp", "cosh", "sinh"}
    lam : float, non-negative
        Ridge ½·lam·‖x‖²; needed for a unique minimizer when A is rank-deficient.

    Notes
    -----
    cosh regression is even in x (L(x) = L(−x)), so x = 0 is always stationary; start
    from a non-zero ``x0`` to look for other minimizers in the non-convex regime.
    Points where f(A x) overflows have ``fun = inf`` and are rejected by the line search.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 5)) / 3
    >>> b = np.exp(A @ rng.standard_normal(5))
    >>> prob = fn.ExpRegression(A, b, w=1.0)
    >>> res = fn.minimize(prob)
    >>> bool(res.success)
    True
    """

    fused_z = True  # loss_grad_parts_z is one fused pass (see Problem.fused_z)

    def __init__(self, A, b, w, f="exp", lam=0.0):
        if not isinstance(f, str) or f not in _FUNCS:
            raise ValueError(f"f must be one of {sorted(_FUNCS)}, got {f!r}")
        super().__init__(A, w=w, lam=lam)
        self.f = f
        self.b = check_vector(b, self.n, "b")
        self._f, self._df = _FUNCS[f]
        w2 = np.zeros(self.n) if self._w2 is None else self._w2
        gap = w2 - convexity_bound(self.b, f)
        self.convex = bool(gap.min() >= -1e-12)
        if not self.convex:
            bad = int((gap < -1e-12).sum())
            warnings.warn(
                f"w is below the convexity bound of {f} regression on {bad} of {self.n} rows "
                f"(largest shortfall in w**2: {-gap.min():.3g}); the problem may be non-convex "
                f"and minimize() may find a local minimizer. Raise w to "
                f"sqrt(fastnewton.problems.convexity_bound(b, {f!r})) for a convex problem.",
                NonConvexWarning, stacklevel=2)

    # -- block-separable form: a separable loss, no statistics ---------------------------
    def block_loss(self, z_blk, rows, stats):
        r = self._f(z_blk) - self.b[rows]
        return 0.5 * fixed_dot(r, r)

    def block_loss_grad(self, z_blk, rows, stats):
        fz = self._f(z_blk)
        r = fz - self.b[rows]
        dfz = fz if self.f == "exp" else self._df(z_blk)  # exp' == exp: one exp, not two
        return 0.5 * fixed_dot(r, r), dfz * r

    # -- z-space interface on the whole z: one fused numba pass each ---------------------
    def _fused_args(self, z):
        z = np.ascontiguousarray(z, dtype=np.float64)
        if z.shape != (self.n,):
            raise ValueError(f"z must have shape ({self.n},), got {z.shape}")
        w2 = self._w2 if self._w2 is not None else np.zeros(self.n)
        return z, self.b, w2, _KIND[self.f], np.empty(n_row_blocks(self.n))

    def loss_z(self, z):
        val = _kernels.exp_family_loss_grad(*self._fused_args(z), _EMPTY, _EMPTY)
        return val if np.isfinite(val) else np.inf

    def loss_grad_z(self, z):
        grad = np.empty(self.n)
        val = _kernels.exp_family_loss_grad(*self._fused_args(z), grad, _EMPTY)
        return (val if np.isfinite(val) else np.inf), grad

    def loss_grad_parts_z(self, z):
        grad, beta = np.empty(self.n), np.empty(self.n)
        val = _kernels.exp_family_loss_grad(*self._fused_args(z), grad, beta)
        if not np.isfinite(val):
            return np.inf, grad, None
        return val, grad, DiagLowRank(beta)

    def parts_z(self, z):
        z, b, w2, kind, _ = self._fused_args(z)
        beta = np.empty(self.n)
        _kernels.exp_family_beta(z, b, w2, kind, beta)
        return DiagLowRank(beta)

    def block_parts(self, z_blk, rows, stats):
        fz = self._f(z_blk)
        dfz = fz if self.f == "exp" else self._df(z_blk)
        beta = dfz * dfz + fz * (fz - self.b[rows])  # f'^2 + f''(f - b), with f'' == f
        return beta, None, None
