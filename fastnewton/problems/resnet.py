"""ResNet + softmax regression (arXiv 2309.13482): ½‖v/α − b‖², v = e^z + z, α = <v, 1>."""

from __future__ import annotations

import numpy as np

from .._validation import check_vector
from ..exceptions import ValidationError
from ._base import Problem
from ._softmax import FusedShifted, combine_shifted

__all__ = ["ResNetSoftmaxRegression"]


class ResNetSoftmaxRegression(FusedShifted, Problem):
    r"""ResNet-softmax regression.

    .. math::
        L(x) = \tfrac12 \|v / \alpha - b\|^2 + \tfrac12\|w\circ z\|^2 + \tfrac12\lambda\|x\|^2,
        \quad v = e^{z} + z,\ \alpha = \langle v, 1\rangle,\ z = A x.

    With :math:`q = e^z + 1`, :math:`s = v/\alpha`, :math:`c = s - b`:
    :math:`\nabla_z\ell = (q\circ c - \langle s, c\rangle q)/\alpha`,
    :math:`\beta = q\circ q/\alpha^2 + e^z\circ(c - \langle c,s\rangle 1)/\alpha`,
    :math:`U = [q, q\circ(2s - b)]/\alpha`, :math:`C = [[3\|s\|^2 - 2\langle b,s\rangle, -1], [-1, 0]]`
    (MATH.md's α⁻² moved into U).

    Everything is computed with v scaled by :math:`e^{-M}`, M = max(max z, 0), so large z
    does not overflow.

    Parameters
    ----------
    A : sparse matrix or array, shape (n, d)
    b : array_like, shape (n,)
    w : None, float or array_like (n,)
    lam : float

    Notes
    -----
    :math:`e^t + t < 0` for t < −0.567, so α can be zero or negative: the loss has poles.
    The problem is restricted to the region α > 0: :meth:`check_point` (called by
    ``minimize`` on the start) raises a ``ValidationError`` outside it, and every point
    with α <= 0 has loss ``inf``, so the line search never leaves the region.
    x = 0 (α = n) is always a valid start.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 5)) / 2
    >>> v = np.exp(A @ rng.standard_normal(5)) + A @ rng.standard_normal(5)
    >>> res = fn.minimize(fn.ResNetSoftmaxRegression(A, v / v.sum(), w=0.6))
    >>> bool(res.success)
    True
    """

    _fused_kind = 1

    def __init__(self, A, b, w=None, lam=0.0):
        super().__init__(A, w=w, lam=lam)
        self.b = check_vector(b, self.n, "b")

    def _fused_constants(self, part):
        stats = self.combine_stats(part[:, :4])
        M, a, ss, bs = stats
        if not a > 0:
            return None
        scale = np.exp(part[:, 0] - M) / a  # block shift -> e^z / alpha
        return scale, np.array([ss - bs, np.exp(-M) / a]), self._C(stats)

    @staticmethod
    def _C(stats):
        return np.array([[3.0 * stats[2] - 2.0 * stats[3], -1.0], [-1.0, 0.0]])

    def partial_stats(self, z_blk, rows):
        b = self.b[rows]
        if z_blk.shape[0] == 0:
            return np.array([-np.inf, 0.0, 0.0, 0.0])
        M = max(float(z_blk.max()), 0.0)
        v = np.exp(z_blk - M) + z_blk * np.exp(-M)  # v e^{-M}
        return np.array([M, v.sum(), v @ v, b @ v])

    def combine_stats(self, partials):
        M, a, vv, bv = combine_shifted(partials, (1, 2, 1))
        if not (np.isfinite(a) and a > 0):
            return np.array([M, a, np.nan, np.nan])
        return np.array([M, a, vv / (a * a), bv / a])  # M, alpha e^{-M}, <s,s>, <b,s>

    def check_point(self, z):
        M, a = self.stats(z)[:2]
        if not (np.isfinite(a) and a > 0):
            alpha = a * np.exp(M) if np.isfinite(M) else a
            raise ValidationError(
                f"ResNetSoftmaxRegression needs alpha = sum(exp(A x) + A x) > 0 at the start, "
                f"got alpha = {alpha:.6g}: the loss has a pole at alpha = 0 (entries of A x "
                f"below -0.567 make exp(t) + t negative). Start from x0 = 0 (alpha = n) or "
                f"another point with alpha > 0.")

    def _scaled(self, z_blk, stats):
        M, a = stats[0], stats[1]
        ez = np.exp(z_blk - M) / a  # e^z / alpha
        qa = ez + np.exp(-M) / a  # q / alpha
        s = ez + z_blk * (np.exp(-M) / a)  # v / alpha
        return ez, qa, s

    def block_loss(self, z_blk, rows, stats):
        if not stats[1] > 0:
            return np.inf
        c = self._scaled(z_blk, stats)[2] - self.b[rows]
        return 0.5 * float(c @ c)

    def block_loss_grad(self, z_blk, rows, stats):
        if not stats[1] > 0:
            return np.inf, np.full(z_blk.shape[0], np.nan)
        _, qa, s = self._scaled(z_blk, stats)
        c = s - self.b[rows]
        sc = stats[2] - stats[3]
        return 0.5 * float(c @ c), qa * (c - sc)

    def block_parts(self, z_blk, rows, stats):
        if not stats[1] > 0:
            raise ValidationError("ResNetSoftmaxRegression Hessian requested at a point "
                                  "with alpha <= 0 (outside the domain)")
        ez, qa, s = self._scaled(z_blk, stats)
        b = self.b[rows]
        c = s - b
        sc = stats[2] - stats[3]
        beta = qa * qa + ez * (c - sc)
        U = np.column_stack([qa, qa * (2.0 * s - b)])
        return beta, U, self._C(stats)
