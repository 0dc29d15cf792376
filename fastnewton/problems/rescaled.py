"""Rescaled exp/cosh/sinh regression (arXiv 2305.00660): ½‖f(A x) − <f(A x), 1> b‖² + ..."""

from __future__ import annotations

import warnings

import numpy as np

from .._validation import check_vector
from ..exceptions import NonConvexWarning
from ._base import Problem
from ._softmax import FusedShifted

__all__ = ["RescaledRegression"]

# f, f', f''
_FUNCS = {
    "exp": (np.exp, np.exp, np.exp),
    "cosh": (np.cosh, np.sinh, np.cosh),
    "sinh": (np.sinh, np.cosh, np.sinh),
}


class RescaledRegression(FusedShifted, Problem):
    r"""Rescaled f regression, f in {exp, cosh, sinh}.

    .. math::
        L(x) = \tfrac12 \|f(z) - \langle f(z), 1\rangle b\|^2 + \tfrac12 \|w\circ z\|^2
        + \tfrac12\lambda\|x\|^2, \qquad z = A x.

    With :math:`q = f'(z)`, :math:`r = f''(z)`, :math:`c = f(z) - \langle f(z),1\rangle b`:
    :math:`\nabla_z \ell = q\circ(c - \langle b, c\rangle 1)`, and the Hessian in z is
    :math:`\mathrm{diag}(q\circ q + r\circ(c - \langle b,c\rangle 1)) + U C U^T` with
    :math:`U = [q, q\circ b]`, :math:`C = [[\|b\|^2, -1], [-1, 0]]` (MATH.md).

    Parameters
    ----------
    A : sparse matrix or array, shape (n, d)
    b : array_like, shape (n,)
    f : {"exp", "cosh", "sinh"}
    w : None, float or array_like (n,)
    lam : float

    Warns
    -----
    NonConvexWarning
        For ``f="exp"`` without a regularizer (``lam == 0`` and some ``w == 0``): the
        loss is scale-covariant (z -> z + t multiplies f by e^t), so its infimum can be
        0 at infinity (whenever some v has A v < 0 entrywise) and no minimizer exists.

    Notes
    -----
    Trivial minima: for ``f="sinh"``, x = 0 gives f(z) = 0 and loss 0, the global
    minimum; ``minimize`` from x0 = 0 returns it at once (zero gradient). Points where
    f(z) overflows have loss ``inf`` and are rejected by the line search.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 4)) / 4
    >>> b = np.cosh(A @ rng.standard_normal(4)); b /= b.sum()
    >>> res = fn.minimize(fn.RescaledRegression(A, b, f="cosh", lam=1e-3), x0=np.full(4, 0.5))
    >>> bool(res.success)
    True
    """

    def __init__(self, A, b, f="exp", w=None, lam=0.0):
        if not isinstance(f, str) or f not in _FUNCS:
            raise ValueError(f"f must be one of {sorted(_FUNCS)}, got {f!r}")
        super().__init__(A, w=w, lam=lam)
        self.f = f
        self.b = check_vector(b, self.n, "b")
        self._f, self._df, self._d2f = _FUNCS[f]
        self._fused_kind = {"exp": 2, "cosh": 3, "sinh": 4}[f]
        if f == "exp" and self.lam == 0.0 and (self.w is None or not (self.w > 0).all()):
            warnings.warn(
                "RescaledRegression(f='exp') without a regularizer (lam == 0 and w not "
                "positive on every row) may be unbounded below: its infimum is 0 at "
                "infinity whenever some direction v has A v < 0 entrywise, so minimize() "
                "can run off to infinity. Pass lam > 0 (or w > 0).",
                NonConvexWarning, stacklevel=2)

    def _fused_constants(self, part):
        stats = self.combine_stats(part[:, [1, 3, 4]])
        F, bc, bb = stats
        return np.ones(part.shape[0]), np.array([bc, F, bb]), self._C(stats)

    @staticmethod
    def _C(stats):
        return np.array([[stats[2], -1.0], [-1.0, 0.0]])

    def partial_stats(self, z_blk, rows):
        # ||b||^2 is a statistic too: a block of rows only knows its own share of it.
        fz = self._f(z_blk)
        b = self.b[rows]
        return np.array([fz.sum(), b @ fz, b @ b])

    def combine_stats(self, partials):
        F, Fb, bb = np.sum(np.asarray(partials, dtype=np.float64), axis=0)  # fixed order
        # <b, c> = <b, f> - F ||b||^2
        return np.array([F, Fb - F * bb, bb])

    def _residual(self, z_blk, rows, stats):
        return self._f(z_blk) - stats[0] * self.b[rows]

    def block_loss(self, z_blk, rows, stats):
        c = self._residual(z_blk, rows, stats)
        return 0.5 * float(c @ c)

    def block_loss_grad(self, z_blk, rows, stats):
        c = self._residual(z_blk, rows, stats)
        return 0.5 * float(c @ c), self._df(z_blk) * (c - stats[1])

    def block_parts(self, z_blk, rows, stats):
        c = self._residual(z_blk, rows, stats)
        q = self._df(z_blk)
        beta = q * q + self._d2f(z_blk) * (c - stats[1])
        U = np.column_stack([q, q * self.b[rows]])
        return beta, U, self._C(stats)
