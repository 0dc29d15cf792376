"""The exact Hessian A^T B A + ridge I as a matrix-free scipy ``LinearOperator``."""

from __future__ import annotations

import copy

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .._threads import blas_for
from ..exceptions import ValidationError
from ..linalg._design import as_design, check_ridge, n_row_blocks, ridge_scalar
from . import _kernels
from ._gram import _check_parts

__all__ = ["HessianOperator", "SymmetricOperator", "check_operand"]

#: Columns per pass of the sparse ``_matmat`` kernel (bounds its (blocks, d, k) buffer).
MATMAT_CHUNK = 16


def check_operand(op, x, what):
    """Raise a ValidationError unless x is a vector or matrix with op.shape[1] rows."""
    d = op.shape[1]
    shape = np.shape(x)
    if len(shape) not in (1, 2) or shape[0] != d:
        raise ValidationError(f"{what} is {op.shape[0]} x {d} but was applied to an operand "
                              f"of shape {shape}; expected ({d},) or ({d}, k)")


class SymmetricOperator(LinearOperator):
    """A symmetric float64 ``LinearOperator`` whose size errors name the operator."""

    _what = "the operator"

    def matvec(self, x):
        check_operand(self, x, self._what)
        return super().matvec(x)

    def matmat(self, X):
        check_operand(self, X, self._what)
        return super().matmat(X)

    def rmatvec(self, x):
        return self.matvec(x)

    def _adjoint(self):
        return self


class HessianOperator(SymmetricOperator):
    r"""Matrix-free Hessian :math:`H = A^T (\mathrm{diag}(\beta) + U C U^T) A + \text{ridge}\, I`.

    A symmetric scipy ``LinearOperator`` (``dtype`` float64, shape (d, d)) for CG,
    ``scipy.sparse.linalg.eigsh`` or any other solver. One product

    .. math:: H p = A^T\bigl(\beta \circ (A p)\bigr) + (A^T U)\, C\, \bigl(U^T (A p)\bigr) + \text{ridge}\, p

    costs one fused pass over a sparse A (``t = A p`` and ``A^T (beta * t)`` row by row,
    with ``A^T U`` computed once at construction, k passes) plus O(n k + d k) work; it
    allocates O(n + d) memory. For a sparse A the reduction over rows runs over a fixed
    number of row blocks, so products are bitwise identical for any thread count.

    Parameters
    ----------
    A : sparse matrix, ndarray (n, d) or ``fastnewton.linalg.Design``
    parts : DiagLowRank
        Sample-space Hessian ``B = diag(beta) + U C U^T`` (beta may be negative: H is
        then symmetric but possibly indefinite).
    ridge : float or ndarray (d,)
        Multiple of the identity added (the ``lam`` of the problems), or a
        per-coordinate diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnewton.hessian import DiagLowRank, HessianOperator
    >>> A = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> H = HessianOperator(A, DiagLowRank(np.ones(3)), ridge=1.0)
    >>> H @ np.array([1.0, 0.0])
    array([3., 1.])
    """

    def __init__(self, A, parts, ridge=0.0):
        design = as_design(A)
        _check_parts(design, parts)
        self.design = design
        self.parts = parts
        self.ridge = check_ridge(ridge, design.d)
        self._AU = None if parts.U is None else design.rmatmat(parts.U)
        super().__init__(dtype=np.dtype(np.float64), shape=(design.d, design.d))

    _what = "the Hessian operator"

    def _low_rank(self, T):
        """(A^T U) C (U^T T) for T = A P of shape (n, k'); numpy loops, no threaded BLAS."""
        s = np.einsum("ik,ic->kc", self.parts.U, T)
        return np.einsum("jk,kc->jc", self._AU, np.einsum("kl,lc->kc", self.parts.C, s))

    def matvec_image(self, p):
        """``(H p, A p)``: the product and the image of p under the design, from the same
        fused pass over A (``A p`` includes the intercept column of an intercept design)."""
        p = np.ascontiguousarray(p, dtype=np.float64).reshape(-1)
        out, t = self.design.normal_matvec(self.parts.beta, p)
        if self._AU is not None:
            out += self._low_rank(t[:, None])[:, 0]
        if isinstance(self.ridge, np.ndarray) or self.ridge:
            out += self.ridge * p
        return out, t

    def _matvec(self, p):
        return self.matvec_image(p)[0]

    def _rmatvec(self, p):
        return self._matvec(p)

    def _matmat(self, P):
        P = np.asarray(P, dtype=np.float64)
        design, beta = self.design, self.parts.beta
        if design.intercept:  # [A, 1]: two passes (matmat, rmatmat), no copy of A
            T = design.matmat(P)
            out = design.rmatmat(beta[:, None] * T)
        elif not design.sparse:
            with blas_for(4 * design.n * design.d * P.shape[1]):
                T = design.A @ P
                out = design.A.T @ (beta[:, None] * T)
        else:
            Ac = design.A
            k = P.shape[1]
            out = np.empty((design.d, k))
            T = np.empty((design.n, k))
            nb = n_row_blocks(design.n)
            for c0 in range(0, k, MATMAT_CHUNK):
                c1 = min(k, c0 + MATMAT_CHUNK)
                Pc = np.ascontiguousarray(P[:, c0:c1])
                Tc = np.empty((design.n, c1 - c0))
                oc = np.empty((design.d, c1 - c0))
                buf = np.empty((nb, design.d, c1 - c0))
                _kernels.csr_normal_matmat(Ac.indptr, Ac.indices, Ac.data, beta, Pc, buf, oc, Tc)
                out[:, c0:c1] = oc
                T[:, c0:c1] = Tc
        if self._AU is not None:
            out += self._low_rank(T)
        if isinstance(self.ridge, np.ndarray):
            out += self.ridge[:, None] * P
        elif self.ridge:
            out += self.ridge * P
        return out

    def with_ridge(self, ridge):
        """The same operator with another ridge (shares A, the parts and A^T U)."""
        new = copy.copy(self)
        new.ridge = check_ridge(ridge, self.shape[0])
        return new

    def __repr__(self):
        return (f"HessianOperator(d={self.shape[0]}, n={self.design.n}, "
                f"rank={self.parts.rank}, ridge={ridge_scalar(self.ridge):g})")
