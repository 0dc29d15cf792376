"""Copyright regression (arXiv 2308.12247): ℓ1(x) + γ/ℓ2(x) + ½‖w∘(A x)‖² + ½λ‖x‖²."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_matrix, check_scalar, check_vector
from ..exceptions import ValidationError
from ._base import Problem
from ._softmax import (SOFTMAX_POWERS, SoftmaxStats, combine_shifted, rows_index,
                       softmax_block, softmax_partial)

__all__ = ["CopyrightRegression"]


class CopyrightRegression(Problem):
    r"""Copyright regression: fit ordinary rows, stay away from protected rows.

    .. math::
        L(x) = \ell_1(x) + \frac{\gamma}{\ell_2(x)} + \tfrac12\|w\circ(A x)\|^2
        + \tfrac12\lambda\|x\|^2,\qquad
        \ell_k(x) = \tfrac12\|\mathrm{softmax}(A_k x) - b_k\|^2,\ A = [A_1; A_2],

    each block with its own softmax normalizer. With :math:`B_k` the softmax Hessian
    parts of block k (see :class:`SoftmaxRegression`), :math:`g_2 = \nabla_{z_2}\ell_2`
    and :math:`\kappa = \gamma/\ell_2^2`, the Hessian in z is
    :math:`\mathrm{blockdiag}(B_1, -\kappa B_2) + (2\gamma/\ell_2^3)\, \bar g_2 \bar g_2^T`
    (:math:`\bar g_2` = g_2 padded with zeros): diagonal plus rank 5.

    Parameters
    ----------
    A1 : sparse matrix or array, shape (n1, d)
    b1 : array_like, shape (n1,)
    A2 : sparse matrix or array, shape (n2, d)
    b2 : array_like, shape (n2,)
    gamma : float > 0
    w : float or array_like (n1 + n2,)
        Weights of ½‖w∘(A x)‖² (rows of A1 first).
    lam : float

    Notes
    -----
    The γ/ℓ2 term is non-convex (its curvature grows like ℓ2⁻³) and has a pole where
    ℓ2 = 0 (the loss is ``inf`` there): solve with the regularizer and the globalized
    ``minimize``. ℓ2 is computed from the block statistics
    (½(<s,s> − 2<b,s> + <b,b>)), which loses relative accuracy only where ℓ2 is tiny,
    i.e. where the γ/ℓ2 term is huge anyway.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((200, 4)), rng.standard_normal((50, 4))
    >>> b1, b2 = np.exp(A1 @ np.ones(4) / 2), np.exp(A2 @ np.ones(4) / 2)
    >>> b1, b2 = b1 / b1.sum(), b2 / b2.sum()
    >>> prob = fn.CopyrightRegression(A1, b1, A2, b2, gamma=1e-4, w=0.6)
    >>> bool(fn.minimize(prob).success)
    True
    """

    def __init__(self, A1, b1, A2, b2, gamma, w, lam=0.0):
        A1 = check_matrix(A1, "A1")
        A2 = check_matrix(A2, "A2")
        if A1.shape[1] != A2.shape[1]:
            raise ValidationError(f"A1 has {A1.shape[1]} columns but A2 has {A2.shape[1]}")
        if sp.issparse(A1) or sp.issparse(A2):
            A = sp.vstack([sp.csr_array(A1), sp.csr_array(A2)], format="csr")
        else:
            A = np.vstack([A1, A2])
        super().__init__(A, w=w, lam=lam)
        self.n1 = A1.shape[0]
        b1 = check_vector(b1, self.n1, "b1")
        b2 = check_vector(b2, A2.shape[0], "b2")
        self.b = np.concatenate([b1, b2])
        self.gamma = float(check_scalar(gamma, "gamma", low=0.0, low_inclusive=False))

    def _split(self, z_blk, rows):
        idx = rows_index(rows, self.n)
        first = idx < self.n1
        return first, ~first, self.b[idx]

    def partial_stats(self, z_blk, rows):
        first, second, b = self._split(z_blk, rows)
        return np.concatenate([softmax_partial(z_blk[first], b[first]),
                               softmax_partial(z_blk[second], b[second])])

    def combine_stats(self, partials):
        P = np.asarray(partials, dtype=np.float64)
        s1 = SoftmaxStats(combine_shifted(P[:, :5], SOFTMAX_POWERS))
        s2 = SoftmaxStats(combine_shifted(P[:, 5:], SOFTMAX_POWERS))
        l2 = s2.loss()
        if l2 <= 8.0 * np.finfo(float).eps * (s2.ss + s2.bb):
            l2 = 0.0  # below the rounding level of ½(<s,s> − 2<b,s> + <b,b>): the pole
        return s1, s2, l2

    def check_point(self, z):
        """Raise if ℓ2 = 0 (a pole of γ/ℓ2) at z."""
        if not self.stats(z)[2] > 0:
            raise ValidationError(
                "CopyrightRegression: the protected rows are fitted exactly at the start "
                "(l2 = ½‖softmax(A2 x) − b2‖² = 0), a pole of gamma / l2; start elsewhere "
                "(x0 = 0 gives the uniform softmax, a pole when b2 is uniform).")

    def stats_loss(self, stats):
        l2 = stats[2]
        return self.gamma / l2 if l2 > 0 else np.inf

    def _blocks(self, z_blk, rows, stats):
        first, second, b = self._split(z_blk, rows)
        s1, s2, l2 = stats
        return (first, second, softmax_block(s1, z_blk[first], b[first]),
                softmax_block(s2, z_blk[second], b[second]), l2)

    def block_loss(self, z_blk, rows, stats):
        first, _, b = self._split(z_blk, rows)
        c = stats[0].s(z_blk[first]) - b[first]
        return 0.5 * float(c @ c)

    def block_loss_grad(self, z_blk, rows, stats):
        first, second, blk1, blk2, l2 = self._blocks(z_blk, rows, stats)
        g = np.empty(z_blk.shape[0])
        g[first] = blk1[1]
        g[second] = (-self.gamma / (l2 * l2)) * blk2[1]
        return blk1[0], g

    def block_parts(self, z_blk, rows, stats):
        first, second, blk1, blk2, l2 = self._blocks(z_blk, rows, stats)
        kappa = self.gamma / (l2 * l2)
        beta = np.empty(z_blk.shape[0])
        beta[first] = blk1[2]
        beta[second] = -kappa * blk2[2]
        U = np.zeros((z_blk.shape[0], 5))
        U[first, 0:2] = blk1[3]
        U[second, 2:4] = blk2[3]
        U[second, 4] = blk2[1]
        C = np.zeros((5, 5))
        C[0:2, 0:2] = blk1[4]
        C[2:4, 2:4] = -kappa * blk2[4]
        C[4, 4] = 2.0 * self.gamma / l2 ** 3
        return beta, U, C
