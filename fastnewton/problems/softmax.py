"""Softmax regression (arXiv 2304.10411, 2304.13276): ½‖softmax(A x) − b‖² + ½‖w∘(A x)‖² + ½λ‖x‖²."""

from __future__ import annotations

import numpy as np

from .._validation import check_vector
from ._base import Problem
from ._softmax import (SOFTMAX_POWERS, FusedShifted, SoftmaxStats, combine_shifted,
                       softmax_block, softmax_partial)

__all__ = ["SoftmaxRegression", "SOFTMAX_CONVEXITY_W2"]

#: w**2 that makes ½‖softmax(z) − b‖² + ½ w²‖z‖² convex in z for ‖b‖ <= 1 (numerical,
#: not proven: the eigenvalues of the softmax loss's Hessian in z were found in
#: [−0.3125, 0.36]; tests/test_families.py re-checks the lower bound on random points).
SOFTMAX_CONVEXITY_W2 = 0.3125


class SoftmaxRegression(FusedShifted, Problem):
    r"""Softmax regression.

    .. math::
        L(x) = \tfrac12 \|\mathrm{softmax}(A x) - b\|^2 + \tfrac12 \|w \circ (A x)\|^2
        + \tfrac12 \lambda \|x\|^2, \qquad \mathrm{softmax}(z) = e^{z} / \langle e^{z}, 1\rangle

    Its Hessian in z is :math:`B = \mathrm{diag}(\beta) + U C U^T` of rank-2 low-rank
    part (MATH.md): with :math:`s = \mathrm{softmax}(z)`, :math:`c = s - b`,
    :math:`\beta = s\circ(2s - b) + \langle b - s, s\rangle s + w^2`,
    :math:`U = [s, s\circ(2s - b)]`, :math:`C = [[\langle 3s - 2b, s\rangle, -1], [-1, 0]]`.

    Parameters
    ----------
    A : sparse matrix or array, shape (n, d)
    b : array_like, shape (n,)
        Target (typically a probability vector).
    w : None, float or array_like (n,)
        Weights of ½‖w∘(A x)‖². ``w**2 >= SOFTMAX_CONVEXITY_W2`` (0.3125) makes the loss
        convex in z for ‖b‖ <= 1 (a numerical bound, see the module constant).
    lam : float
        Ridge ½·lam·‖x‖².

    Notes
    -----
    softmax is shift invariant, so :math:`\nabla_z^2 \ell \cdot 1 = 0`: with an intercept
    column (1 in the range of A) and ``w = lam = 0`` the Hessian is singular along that
    direction; the driver's shifted Cholesky then takes a regularized step and the
    solve still converges in the gradient (the minimizer is not unique). Everything is
    computed with the max shift, so no z overflows.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 5))
    >>> b = np.exp(A @ rng.standard_normal(5)); b /= b.sum()
    >>> res = fn.minimize(fn.SoftmaxRegression(A, b, w=0.6))
    >>> bool(res.success)
    True
    """

    _fused_kind = 0

    def __init__(self, A, b, w=None, lam=0.0):
        super().__init__(A, w=w, lam=lam)
        self.b = check_vector(b, self.n, "b")

    def _fused_constants(self, part):
        st = self.combine_stats(part)
        scale = np.exp(part[:, 0] - st.M) / st.S  # block shift -> global: s = e * scale
        return scale, np.array([st.sc]), st.C()

    def partial_stats(self, z_blk, rows):
        return softmax_partial(z_blk, self.b[rows])

    def combine_stats(self, partials):
        return SoftmaxStats(combine_shifted(partials, SOFTMAX_POWERS))

    def block_loss(self, z_blk, rows, stats):
        c = stats.s(z_blk) - self.b[rows]
        return 0.5 * float(c @ c)

    def block_loss_grad(self, z_blk, rows, stats):
        loss, grad, *_ = softmax_block(stats, z_blk, self.b[rows])
        return loss, grad

    def block_parts(self, z_blk, rows, stats):
        _, _, beta, U, C = softmax_block(stats, z_blk, self.b[rows])
        return beta, U, C
