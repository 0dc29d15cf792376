"""Overflow-safe partial statistics shared by the softmax-type families.

A block's statistics are ``[m, sum(e), sum(e**2), sum(b e), ...]`` with ``m`` the block's
largest entry of z and ``e = exp(z - m)``; blocks are combined by rescaling every sum to
the global maximum ``M`` (a factor ``exp(p (m - M))`` for a sum of p-th powers), the
log-sum-exp trick, in the given (fixed) order.
"""

from __future__ import annotations

import numpy as np

from ..hessian import DiagLowRank
from ..linalg._design import n_row_blocks
from . import _kernels

__all__ = ["combine_shifted", "rows_index", "softmax_partial", "SoftmaxStats", "FusedShifted"]

_EMPTY, _EMPTY_U = np.empty(0), np.empty((0, 2))


def rows_index(rows, n):
    """The global row indices of ``rows`` (a slice or an integer array) as an array."""
    if isinstance(rows, slice):
        return np.arange(n)[rows]
    return np.asarray(rows)


def combine_shifted(partials, powers):
    """Combine max-shifted partial sums.

    Parameters
    ----------
    partials : list of 1-D arrays ``[m, s_1, ..., s_k]``
        ``m`` is the block's shift (``-inf`` for an empty block), ``s_j`` a sum of
        ``p_j``-th powers of ``exp(z - m)`` times per-row data.
    powers : sequence of k numbers
        The powers ``p_j`` (0 for sums that do not involve the shift).

    Returns
    -------
    ndarray ``[M, S_1, ..., S_k]`` with ``M = max m`` and ``S_j = sum exp(p_j (m - M)) s_j``.
    """
    P = np.asarray([np.asarray(p, dtype=np.float64) for p in partials])
    m = P[:, 0]
    M = float(m.max())
    out = np.zeros(P.shape[1])
    out[0] = M
    powers = np.asarray(powers, dtype=np.float64)
    for row in P:  # fixed order
        if row[0] == -np.inf:
            continue
        scale = np.exp(powers * (row[0] - M)) if np.isfinite(M) else np.ones_like(powers)
        out[1:] += scale * row[1:]
    return out


def softmax_partial(z_blk, b_blk):
    """``[m, sum e, sum e^2, sum b e, sum b^2]`` of one block, ``e = exp(z - m)``."""
    if z_blk.shape[0] == 0:
        return np.array([-np.inf, 0.0, 0.0, 0.0, 0.0])
    m = float(z_blk.max())
    e = np.exp(z_blk - m)
    return np.array([m, e.sum(), e @ e, b_blk @ e, b_blk @ b_blk])


#: powers of the entries of softmax_partial after the shift
SOFTMAX_POWERS = (1, 2, 1, 0)


class SoftmaxStats:
    """Global statistics of ``s = softmax(z)`` against a target ``b``.

    Attributes: ``M`` (max of z), ``S`` (sum exp(z - M)), ``ss = <s, s>``,
    ``bs = <b, s>``, ``bb = <b, b>``, ``sc = <s, s - b>``.
    """

    __slots__ = ("M", "S", "ss", "bs", "bb", "sc")

    def __init__(self, combined):
        M, S, S2, Sb, Sbb = combined
        self.M, self.S = M, S
        self.ss = S2 / (S * S)
        self.bs = Sb / S
        self.bb = Sbb
        self.sc = self.ss - self.bs

    def s(self, z_blk):
        """The block of softmax(z)."""
        return np.exp(z_blk - self.M) / self.S

    def loss(self):
        """½‖s - b‖² from the statistics alone (cancels when s ≈ b; used for γ/ℓ)."""
        return 0.5 * (self.ss - 2.0 * self.bs + self.bb)

    def C(self):
        """The 2 x 2 core [[<3s − 2b, s>, −1], [−1, 0]] of the low-rank Hessian part."""
        return np.array([[3.0 * self.ss - 2.0 * self.bs, -1.0], [-1.0, 0.0]])


def softmax_block(stats, z_blk, b_blk):
    """Partial loss, gradient block and parts of ½‖softmax(z) − b‖² on one row block.

    Returns ``(loss_blk, grad_blk, beta_blk, U_blk, C)`` with (MATH.md)
    grad = s∘c − <s,c> s, c = s − b; beta = s∘(2s − b) + <b − s, s> s;
    U = [s, s∘(2s − b)]; C = [[<3s − 2b, s>, −1], [−1, 0]].
    """
    s = stats.s(z_blk)
    c = s - b_blk
    loss = 0.5 * float(c @ c)
    grad = s * c - stats.sc * s
    v = s * (2.0 * s - b_blk)
    beta = v - stats.sc * s
    U = np.column_stack([s, v])
    return loss, grad, beta, U, stats.C()


class FusedShifted:
    """Mixin: the driver's z-space calls of a softmax-type family in fused numba passes.

    The whole-z ``loss_z``, ``loss_grad_z``, ``parts_z`` and ``loss_grad_parts_z`` make
    two parallel passes over z (:mod:`._kernels`): block statistics (max shift, shifted
    values kept in the output array), combined in block order by the family's own
    ``combine_stats``, then loss, gradient and/or Hessian parts; the w term is fused in.
    Fixed row blocks (``n_row_blocks(n)``) make the results bitwise identical for any
    thread count, and ``loss_z`` and ``loss_grad_z`` share one kernel, so their losses
    are bitwise equal. The block methods (distributed backend) keep the numpy formulas;
    both agree to rounding.

    A family sets ``_fused_kind`` (the kernel's family code) and implements
    ``_fused_constants(part) -> (scale, k, C)`` (see :mod:`._kernels`), or ``None`` when
    z is outside the domain (loss ``inf``).
    """

    _fused_kind = -1
    fused_z = True  # loss_grad_parts_z is one fused pass (see Problem.fused_z)
    _fused_w2 = None  # w**2, or zeros without w (set on first use)
    _fused_scratch = None  # loss_z's buffer for the shifted values (not thread safe)

    def _fused_pass(self, z, e):
        z = np.ascontiguousarray(z, dtype=np.float64)
        if z.shape != (self.n,):
            raise ValueError(f"z must have shape ({self.n},), got {z.shape}")
        part = np.empty((n_row_blocks(self.n), 5))
        _kernels.shifted_partials(z, self.b, self._fused_kind, part, e)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fixed = self._fused_constants(part)
        if self._fused_w2 is None:
            self._fused_w2 = np.zeros(self.n) if self._w2 is None else self._w2
        return z, fixed

    def loss_z(self, z):
        if self._fused_scratch is None:  # reused: the line search calls loss_z repeatedly
            self._fused_scratch = np.empty(self.n)
        val, _ = self._fused_loss_grad(z, self._fused_scratch, np.empty(0))
        return val

    def loss_grad_z(self, z):
        grad = np.empty(self.n)
        return self._fused_loss_grad(z, grad, grad)

    def _fused_loss_grad(self, z, e, grad):
        z, fixed = self._fused_pass(z, e)
        if fixed is None:
            grad[:] = np.nan
            return np.inf, grad
        scale, k, _ = fixed
        val = _kernels.shifted_loss_grad(self._fused_kind, z, self.b, self._fused_w2, e, scale,
                                         k, np.empty(scale.shape[0]), grad, _EMPTY, _EMPTY_U)
        return (val if np.isfinite(val) else np.inf), grad

    def loss_grad_parts_z(self, z):
        e, grad = np.empty(self.n), np.empty(self.n)
        z, fixed = self._fused_pass(z, e)
        if fixed is None:  # outside the domain: loss inf, no parts
            grad[:] = np.nan
            return np.inf, grad, None
        scale, k, C = fixed
        beta, U = e, np.empty((self.n, 2))  # beta overwrites e[i] after reading it
        val = _kernels.shifted_loss_grad(self._fused_kind, z, self.b, self._fused_w2, e, scale,
                                         k, np.empty(scale.shape[0]), grad, beta, U)
        if not np.isfinite(val):
            return np.inf, grad, None
        return val, grad, DiagLowRank(beta, U, C)

    def parts_z(self, z):
        beta = np.empty(self.n)
        z, fixed = self._fused_pass(z, beta)
        if fixed is None:  # outside the domain: the numpy path raises the family's error
            return super().parts_z(z)
        scale, k, C = fixed
        U = np.empty((self.n, 2))
        _kernels.shifted_parts(self._fused_kind, z, self.b, self._fused_w2, beta, scale, k,
                               beta, U)
        return DiagLowRank(beta, U, C)
