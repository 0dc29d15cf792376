"""The sample-space Hessian B = diag(beta) + U C U^T of a loss in z = A x."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..exceptions import ValidationError

__all__ = ["DiagLowRank"]


class DiagLowRank:
    r"""Diagonal-plus-low-rank symmetric matrix :math:`B = \mathrm{diag}(\beta) + U C U^T`.

    Every problem family returns its Hessian in z = A x in this form, so that the
    Hessian in x is :math:`A^T B A` (plus a ridge), see ``MATH.md``.

    Parameters
    ----------
    beta : array_like, shape (n,)
        Diagonal part; entries may be negative (non-convex losses).
    U : array_like, shape (n, k), optional
        Low-rank factor (``None`` for a purely diagonal B).
    C : array_like, shape (k, k), optional
        Symmetric core of the low-rank part; required with ``U``.

    Examples
    --------
    >>> import numpy as np
    >>> B = DiagLowRank(np.ones(3))
    >>> B.matvec(np.arange(3.0))
    array([0., 1., 2.])
    """

    def __init__(self, beta, U=None, C=None):
        beta = np.ascontiguousarray(_as_float_array(beta, "beta"))
        if beta.ndim != 1:
            raise ValidationError(f"beta must be 1-D, got shape {beta.shape}")
        if not np.isfinite(beta).all():
            raise ValidationError("beta contains NaN or infinite values")
        if (U is None) != (C is None):
            raise ValidationError("U and C must be given together (or both be None)")
        if U is not None:
            U = _as_float_array(U, "U")
            C = _as_float_array(C, "C")
            if U.ndim == 1:
                U = U[:, None]
            if U.ndim != 2 or U.shape[0] != beta.shape[0]:
                raise ValidationError(f"U must have shape ({beta.shape[0]}, k), got {U.shape}")
            k = U.shape[1]
            if C.ndim == 0 and k == 1:
                C = C.reshape(1, 1)
            if C.shape != (k, k):
                raise ValidationError(f"C must have shape ({k}, {k}) to match U, got {C.shape}")
            if not np.isfinite(U).all():
                raise ValidationError("U contains NaN or infinite values")
            if not np.isfinite(C).all():
                raise ValidationError("C contains NaN or infinite values")
            asym = float(np.abs(C - C.T).max()) if k else 0.0
            if asym > 1e-12 * max(1.0, float(np.abs(C).max())):
                raise ValidationError(f"C must be symmetric, got max |C - C^T| = {asym:.3e}")
            U = np.ascontiguousarray(U)
            C = np.ascontiguousarray(C)
        self.beta = beta
        self.U = U
        self.C = C

    @property
    def n(self):
        return self.beta.shape[0]

    @property
    def rank(self):
        """Rank bound of the low-rank part (number of columns of U)."""
        return 0 if self.U is None else self.U.shape[1]

    def matvec(self, t):
        """Return ``B @ t`` for a length-n vector."""
        t = np.asarray(t, dtype=np.float64)
        if t.shape != (self.n,):
            raise ValidationError(f"t must have shape ({self.n},), got {t.shape}")
        out = self.beta * t
        if self.U is not None:
            out += self.U @ (self.C @ (self.U.T @ t))
        return out

    def psd_split(self):
        """Return ``(beta_plus, beta_minus)`` with beta = beta_plus - beta_minus, both >= 0.

        ``diag(beta_plus)`` is the part a sketch can square-root; the rest is handled
        exactly or dropped (see :func:`fastnewton.hessian.sketched_gram`).
        """
        return self.beta_plus(), np.maximum(-self.beta, 0.0)

    def beta_plus(self):
        """``max(beta, 0)``: the first half of :meth:`psd_split` (one pass, for sketches)."""
        return np.maximum(self.beta, 0.0)

    def to_dense(self):
        """The n x n matrix (for tests on small n)."""
        B = np.diag(self.beta)
        if self.U is not None:
            B += self.U @ self.C @ self.U.T
        return B

    def check_rows(self, n, name="A"):
        """Raise a ``ValidationError`` unless B is n x n (``name`` is the matrix it must match)."""
        if self.n != n:
            raise ValidationError(f"parts has n = {self.n} (length of beta) but {name} has {n} rows")
        return self

    def __repr__(self):
        return f"DiagLowRank(n={self.n}, rank={self.rank})"


def _as_float_array(a, name):
    if sp.issparse(a):
        raise TypeError(f"{name} must be a dense array, got a scipy.sparse matrix")
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be converted to a float64 array: {exc}") from None
