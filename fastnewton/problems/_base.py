"""The problem protocol: losses of z = A x with diagonal-plus-low-rank Hessians.

Every family minimizes

.. math:: L(x) = \\ell(A x) + \\tfrac12 \\|w \\circ (A x)\\|^2 + \\tfrac12 \\lambda \\|x\\|^2

and supplies only three things about :math:`\\ell` as a function of z: its value, its
gradient :math:`\\nabla_z \\ell` and its Hessian parts ``(beta, U, C)``. This base class
turns them into ``fun``, ``jac``, ``hessp`` and ``hessian_parts`` in x, compatible with
``scipy.optimize.minimize``, and into the z-space interface the Newton driver uses.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_scalar, check_weights, check_x
from ..hessian import DiagLowRank, gram
from ..linalg import as_design
from ..linalg._design import fixed_dot

__all__ = ["Problem", "REQUIRED_METHODS"]

#: What the Newton driver needs from a problem object.
REQUIRED_METHODS = ("loss_z", "loss_grad_z", "parts_z", "design", "lam")


class Problem:
    """Base class of the problem families (see the module docstring for the template).

    Subclasses implement ``_loss(z)``, ``_loss_grad(z) -> (loss, grad)`` and
    ``_parts(z) -> (beta, U, C)`` for the family's own :math:`\\ell` (without the w and
    lam terms), with overflow producing ``inf`` loss rather than an exception.
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

    # -- family hooks ----------------------------------------------------------------
    def _loss(self, z):
        return self._loss_grad(z)[0]

    def _loss_grad(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _parts(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def check_point(self, z):
        """Raise if z = A x lies outside the family's domain (default: every z is fine)."""

    # -- z-space interface (used by the driver) -----------------------------------------
    def loss_z(self, z):
        """Loss without the ridge term, as a function of z = A x; ``inf`` on overflow."""
        with np.errstate(over="ignore", invalid="ignore"):
            val = float(self._loss(z))
            if self._w2 is not None:
                val += 0.5 * fixed_dot(self._w2, z * z)
        return val if np.isfinite(val) else np.inf

    def loss_grad_z(self, z):
        """``(loss_z(z), gradient in z)``; the gradient includes the ``w`` term."""
        with np.errstate(over="ignore", invalid="ignore"):
            val, g = self._loss_grad(z)
            val = float(val)
            if self._w2 is not None:
                val += 0.5 * fixed_dot(self._w2, z * z)
                g = g + self._w2 * z
        if not np.isfinite(val):
            val = np.inf
        return val, g

    def parts_z(self, z):
        """Hessian in z of ``loss_z`` as a :class:`~fastnewton.hessian.DiagLowRank`."""
        with np.errstate(over="ignore", invalid="ignore"):
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
        return self.loss_z(z) + 0.5 * self.lam * float(x @ x)

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
        return f"{type(self).__name__}(n={self.n}, d={self.d}, lam={self.lam:g})"
