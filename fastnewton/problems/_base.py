"""The problem protocol: losses of z = A x with diagonal-plus-low-rank Hessians.

Every family minimizes

.. math:: L(x) = \\ell(A x) + \\tfrac12 \\|w \\circ (A x)\\|^2 + \\tfrac12 \\lambda \\|x\\|^2

and supplies only three things about :math:`\\ell` as a function of z: its value, its
gradient :math:`\\nabla_z \\ell` and its Hessian parts ``(beta, U, C)``. This base class
turns them into ``fun``, ``jac``, ``hessp`` and ``hessian_parts`` in x, compatible with
``scipy.optimize.minimize``, and into the z-space interface the Newton driver uses.

Block-separable form
--------------------
Every family computes on a block of rows of z plus a few global statistics (a softmax
normalizer, a sum of f(z), ...). Families are written in that form, so that a
distributed backend holding z in row blocks can evaluate them with one reduction:

1. ``partial_stats(z_blk, rows)`` on each block -> a 1-D float array of partial
   statistics (empty for a separable loss);
2. ``combine_stats([partials...])`` -> the global statistics (combined in the given,
   fixed order; softmax-type normalizers are combined by log-sum-exp with a max shift,
   so nothing overflows);
3. per block, ``block_loss_grad(z_blk, rows, stats)`` -> ``(partial loss, grad block)``
   and ``block_parts(z_blk, rows, stats)`` -> ``(beta_blk, U_blk, C)``; the rows of the
   blocks of ``beta`` and ``U`` stack to the full ones, ``C`` is global.

The loss is ``stats_loss(stats) + sum of the partial losses`` (``stats_loss`` is the
part of the loss that only depends on the statistics, 0 for most families). ``rows``
is a ``slice`` or an integer index array of the block's global row indices; families use
it to pick their per-row data (``b[rows]`` ...). The full-z hooks ``_loss``,
``_loss_grad`` and ``_parts`` default to the one-block case; the tests check that any
partition gives the same loss, gradient and parts.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_scalar, check_weights, check_x
from ..hessian import DiagLowRank, gram
from ..linalg import as_design
from ..linalg._design import fixed_dot, ridge_scalar, ridge_value

__all__ = ["Problem", "REQUIRED_METHODS"]

#: What the Newton driver needs from a problem object.
REQUIRED_METHODS = ("loss_z", "loss_grad_z", "parts_z", "design", "lam")


class Problem:
    """Base class of the problem families (see the module docstring for the template).

    Subclasses implement the block form (``partial_stats``, ``combine_stats``,
    ``block_loss_grad``, ``block_parts``, optionally ``block_loss`` and ``stats_loss``)
    for the family's own :math:`\\ell` (without the w and lam terms), with overflow
    producing ``inf`` loss rather than an exception; the full-z hooks ``_loss(z)``,
    ``_loss_grad(z) -> (loss, grad)`` and ``_parts(z) -> (beta, U, C)`` follow from it
    (a family may override them with a faster one-block version).
    """

    def __init__(self, A, *, w=None, lam=0.0):
        self.design = as_design(A)
        self.lam = float(check_scalar(lam, "lam", low=0.0))
        w = check_weights(w, self.design.n, "w")
        self.w = w
        self._w2 = None if w is None or not w.any() else w * w
        self._cache_x = None
        self._cache_z = None

    # -- shapes ----------------------------------------------------------------------
    @property
    def A(self):
        """The validated design matrix (CSR array or float64 ndarray)."""
        return self.design.A

    @property
    def n(self):
        return self.design.n

    @property
    def d(self):
        return self.design.d

    # -- block-separable family hooks (see the module docstring) ----------------------
    def partial_stats(self, z_blk, rows):
        """Partial statistics of one row block: a 1-D float array (empty: separable)."""
        return np.empty(0)

    def combine_stats(self, partials):
        """Global statistics from the blocks' partial statistics (fixed order)."""
        return None

    def stats_loss(self, stats):
        """The part of the loss that depends on the global statistics only (default 0)."""
        return 0.0

    def block_loss(self, z_blk, rows, stats):
        """Partial loss of one block (default: from :meth:`block_loss_grad`)."""
        return self.block_loss_grad(z_blk, rows, stats)[0]

    def block_loss_grad(self, z_blk, rows, stats):  # pragma: no cover - abstract
        """``(partial loss, gradient block)`` of one row block."""
        raise NotImplementedError

    def block_parts(self, z_blk, rows, stats):  # pragma: no cover - abstract
        """``(beta_blk, U_blk or None, C or None)`` of one row block."""
        raise NotImplementedError

    def block_loss_grad_z(self, z_blk, rows, stats):
        """:meth:`block_loss_grad` plus the block's share of the ½‖w∘z‖² term."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val, g = self.block_loss_grad(z_blk, rows, stats)
            if self._w2 is not None:
                w2 = self._w2[rows]
                val = float(val) + 0.5 * float(np.dot(w2, z_blk * z_blk))
                g = g + w2 * z_blk
        return float(val), g

    def block_parts_z(self, z_blk, rows, stats):
        """:meth:`block_parts` with the w term added to the diagonal."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            beta, U, C = self.block_parts(z_blk, rows, stats)
        if self._w2 is not None:
            beta = beta + self._w2[rows]
        return beta, U, C

    def stats(self, z):
        """Global statistics of the full z (the one-block case)."""
        rows = slice(0, z.shape[0])
        return self.combine_stats([self.partial_stats(z, rows)])

    def _loss(self, z):
        stats = self.stats(z)
        return self.stats_loss(stats) + self.block_loss(z, slice(0, z.shape[0]), stats)

    def _loss_grad(self, z):
        stats = self.stats(z)
        val, g = self.block_loss_grad(z, slice(0, z.shape[0]), stats)
        return self.stats_loss(stats) + val, g

    def _parts(self, z):
        return self.block_parts(z, slice(0, z.shape[0]), self.stats(z))

    def check_point(self, z):
        """Raise if z = A x lies outside the family's domain (default: every z is fine)."""

    # -- z-space interface (used by the driver) -----------------------------------------
    def loss_z(self, z):
        """Loss without the ridge term, as a function of z = A x; ``inf`` on overflow."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val = float(self._loss(z))
            if self._w2 is not None:
                val += 0.5 * fixed_dot(self._w2, z, z)
        return val if np.isfinite(val) else np.inf

    def loss_grad_z(self, z):
        """``(loss_z(z), gradient in z)``; the gradient includes the ``w`` term."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val, g = self._loss_grad(z)
            val = float(val)
            if self._w2 is not None:
                val += 0.5 * fixed_dot(self._w2, z, z)
                g = g + self._w2 * z
        if not np.isfinite(val):
            val = np.inf
        return val, g

    #: True where :meth:`loss_grad_parts_z` is one fused pass (costing about one
    #: ``loss_z``): the line search then evaluates its first trial with it.
    fused_z = False

    def loss_grad_parts_z(self, z):
        """``(loss_z(z), gradient in z, parts_z(z))``; the parts are None where the loss is
        not finite. Families with fused kernels compute the three in one pass, with the
        same bits as the separate calls."""
        val, g = self.loss_grad_z(z)
        return val, g, (self.parts_z(z) if np.isfinite(val) else None)

    def parts_z(self, z):
        """Hessian in z of ``loss_z`` as a :class:`~fastnewton.hessian.DiagLowRank`."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            beta, U, C = self._parts(z)
        if self._w2 is not None:
            beta = beta + self._w2
        return DiagLowRank(beta, U, C)

    # -- x-space interface (scipy.optimize compatible) ------------------------------------
    def _z(self, x):
        x = check_x(x, self.d)
        if self._cache_x is not None and np.array_equal(x, self._cache_x):
            return x, self._cache_z
        z = self.design.matvec(x)
        self._cache_x, self._cache_z = x.copy(), z
        return x, z

    def fun(self, x):
        """Objective L(x) (``inf`` where it overflows)."""
        x, z = self._z(x)
        return self.loss_z(z) + ridge_value(self.lam, x)

    def jac(self, x):
        """Gradient of L at x, shape (d,)."""
        x, z = self._z(x)
        _, gz = self.loss_grad_z(z)
        return self.design.rmatvec(gz) + self.lam * x

    def hessian_parts(self, x):
        """The sample-space Hessian B(x), so that the Hessian is ``A.T B A + lam I``."""
        _, z = self._z(x)
        return self.parts_z(z)

    def hessp(self, x, p):
        """Hessian-vector product ``(A.T B(x) A + lam I) p``."""
        _, z = self._z(x)
        p = check_x(p, self.d, "p")
        parts = self.parts_z(z)
        out, t = self.design.normal_matvec(parts.beta, p)
        if parts.U is not None:
            out += self.design.rmatvec(parts.U @ (parts.C @ (parts.U.T @ t)))
        return out + self.lam * p

    def hessian(self, x):
        """The dense d x d Hessian at x (assembled exactly)."""
        return gram(self.design, self.hessian_parts(x), ridge=self.lam)

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n}, d={self.d}, lam={ridge_scalar(self.lam):g})"
