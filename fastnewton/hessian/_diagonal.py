"""Preconditioners for wide problems that never form a d x d matrix.

:func:`hessian_diagonal` is the diagonal of :math:`A^T B A + \\text{ridge}\\, I` in one
pass over A; :class:`DiagonalPreconditioner` (Jacobi) inverts it;
:class:`ScaledNystromPreconditioner` adds a rank-k randomized Nyström correction of the
Jacobi-scaled Hessian (memory O(k d), applied in O(k d)).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .._validation import check_scalar
from ..linalg._design import as_design, check_ridge
from ..linalg._nystrom import NystromPreconditioner
from ._gram import _check_parts
from ._operator import HessianOperator, SymmetricOperator
from ._parts import DiagLowRank

__all__ = ["hessian_diagonal", "DiagonalPreconditioner", "ScaledNystromPreconditioner"]


def hessian_diagonal(A, parts, ridge=0.0, *, AU=None, out=None):
    r"""Diagonal of :math:`H = A^T (\mathrm{diag}(\beta) + U C U^T) A + \text{ridge}\, I`.

    .. math:: H_{jj} = \sum_i \beta_i A_{ij}^2 + (A^T U)_j\, C\, (A^T U)_j^T + \text{ridge}_j

    One pass over A, sparse or dense (a fixed-block reduction: the same bits for any thread
    count); an intercept design's ones column contributes :math:`\sum_i \beta_i`.
    Memory O(d) plus the reduction buffer of the design.

    Parameters
    ----------
    A : sparse matrix, ndarray (n, d) or ``fastnewton.linalg.Design``
    parts : DiagLowRank
    ridge : float or ndarray (d,)
    AU : ndarray (d, k), optional
        ``A^T U`` when already computed (e.g. by a :class:`HessianOperator`).
    out : ndarray (d,), optional

    Returns
    -------
    ndarray (d,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastnewton.hessian import DiagLowRank, hessian_diagonal
    >>> A = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> hessian_diagonal(A, DiagLowRank(np.array([1.0, 2.0])), ridge=0.5)
    array([19.5,  4.5])
    """
    design = as_design(A)
    _check_parts(design, parts)
    ridge = check_ridge(ridge, design.d)
    out = design.weighted_col_sq(parts.beta, out=out)
    if parts.U is not None:
        AU = design.rmatmat(parts.U) if AU is None else AU
        out += np.einsum("jk,kl,jl->j", AU, parts.C, AU)
    out += ridge
    return out


def _positive(diag):
    """The diagonal made safely positive: entries <= tiny * max (empty columns without a
    ridge, or negative curvature) become the largest entry (a unit-scale step there)."""
    top = float(np.max(diag)) if diag.size else 1.0
    top = top if np.isfinite(top) and top > 0 else 1.0
    floor = 1e-12 * top
    return np.where(diag > floor, diag, top)


class DiagonalPreconditioner(SymmetricOperator):
    r"""Jacobi preconditioner :math:`M = \mathrm{diag}(H)^{-1}` of the Hessian.

    Built from :func:`hessian_diagonal` with the non-negative part
    :math:`\beta_+ = \max(\beta, 0)` (one pass over A); entries that are not safely
    positive (an empty column without ridge, negative low-rank curvature) are replaced
    by the largest entry, so M is symmetric positive definite.

    Parameters
    ----------
    A : sparse matrix, ndarray (n, d) or ``fastnewton.linalg.Design``
    parts : DiagLowRank
    ridge : float or ndarray (d,)
    AU : ndarray (d, k), optional
        ``A^T U`` when already computed.

    Attributes
    ----------
    diagonal : ndarray (d,)
        The (positive) diagonal that M inverts.
    build_time : float
        Seconds to build.
    """

    _what = "the preconditioner"

    def __init__(self, A, parts, ridge=0.0, *, AU=None):
        t0 = time.perf_counter()
        design = as_design(A)
        _check_parts(design, parts)
        plus = DiagLowRank(parts.beta_plus(), parts.U, parts.C)
        self.diagonal = _positive(hessian_diagonal(design, plus, ridge, AU=AU))
        self._inv = 1.0 / self.diagonal
        self.build_time = time.perf_counter() - t0
        super().__init__(dtype=np.dtype(np.float64), shape=(design.d, design.d))

    @classmethod
    def from_diagonal(cls, diagonal, build_time=0.0):
        """The preconditioner inverting ``diagonal`` (the diagonal of :math:`H_+`, ridge
        included, e.g. from :meth:`~fastnewton.linalg.Design.rmatvec_diag` in the
        gradient's pass over A), made safely positive as in the constructor."""
        diagonal = np.asarray(diagonal, dtype=np.float64)
        if diagonal.ndim != 1:
            raise ValueError(f"diagonal must be 1-D, got shape {diagonal.shape}")
        new = object.__new__(cls)
        new.diagonal = _positive(diagonal)
        new._inv = 1.0 / new.diagonal
        new.build_time = float(build_time)
        SymmetricOperator.__init__(new, dtype=np.dtype(np.float64),
                                   shape=(diagonal.shape[0], diagonal.shape[0]))
        return new

    def with_shift(self, shift):
        """The preconditioner of ``H + shift I`` (no pass over A)."""
        new = object.__new__(type(self))
        new.diagonal = self.diagonal + float(shift)
        new._inv = 1.0 / new.diagonal
        new.build_time = 0.0
        SymmetricOperator.__init__(new, dtype=self.dtype, shape=self.shape)
        return new

    def _matvec(self, r):
        return self._inv * np.asarray(r, dtype=np.float64).reshape(-1)

    def _matmat(self, R):
        return self._inv[:, None] * np.asarray(R, dtype=np.float64)

    def __repr__(self):
        return f"DiagonalPreconditioner(d={self.shape[0]})"


class _ScaledOperator(LinearOperator):
    """:math:`D^{-1/2} H D^{-1/2}`, column by column (one fused pass over A each)."""

    def __init__(self, H, inv_sqrt):
        self._op, self._s = H, inv_sqrt
        super().__init__(np.float64, H.shape)

    def _matvec(self, v):
        return self._s * self._op.matvec(self._s * np.asarray(v, dtype=np.float64).reshape(-1))

    def _matmat(self, V):
        return np.column_stack([self._matvec(V[:, j]) for j in range(V.shape[1])])

    def _adjoint(self):
        return self


class ScaledNystromPreconditioner(SymmetricOperator):
    r"""Low-rank-plus-diagonal preconditioner: Nyström on the Jacobi-scaled Hessian.

    With :math:`D = \mathrm{diag}(H_+)` (:class:`DiagonalPreconditioner`) and the rank-k
    randomized Nyström approximation :math:`\hat K = V \Lambda V^T` of
    :math:`K = D^{-1/2} H_+ D^{-1/2}` (:class:`~fastnewton.linalg.NystromPreconditioner`,
    a Gaussian test matrix of k columns: k Hessian products, one fused pass over A each),

    .. math:: M = D^{-1/2} \bigl(\lambda_k V \Lambda^{-1} V^T + I - V V^T\bigr) D^{-1/2},

    which deflates the k largest eigenvalues of the Jacobi-preconditioned Hessian.
    :math:`H_+` uses :math:`\beta_+ = \max(\beta, 0)` and includes the ridge. Memory
    O(k d); one application costs O(k d).

    Parameters
    ----------
    A : sparse matrix, ndarray (n, d) or ``fastnewton.linalg.Design``
    parts : DiagLowRank
    rank : int
        Columns k of the test matrix (1 <= k <= d).
    ridge : float or ndarray (d,)
    seed : None, int, SeedSequence or Generator
        Randomness of the test matrix.

    Attributes
    ----------
    diagonal : ndarray (d,); rank : int (eigenpairs kept); build_time : float
    """

    _what = "the preconditioner"

    def __init__(self, A, parts, rank, ridge=0.0, *, seed=None):
        t0 = time.perf_counter()
        design = as_design(A)
        _check_parts(design, parts)
        rank = int(check_scalar(rank, "rank", low=1, high=design.d, integer=True))
        plus = DiagLowRank(parts.beta_plus(), parts.U, parts.C)
        H = HessianOperator(design, plus, ridge=ridge)
        jac = DiagonalPreconditioner(design, plus, ridge, AU=H._AU)
        self.diagonal = jac.diagonal
        self._s = 1.0 / np.sqrt(self.diagonal)
        nys = NystromPreconditioner(_ScaledOperator(H, self._s), rank, mu=0.0, seed=seed)
        self._V, self._scale = nys.U, nys.eigenvalues[-1] / nys.eigenvalues - 1.0
        self.rank = nys.rank
        self.build_time = time.perf_counter() - t0
        super().__init__(dtype=np.dtype(np.float64), shape=(design.d, design.d))

    def _matvec(self, r):
        v = self._s * np.asarray(r, dtype=np.float64).reshape(-1)
        v = v + self._V @ (self._scale * (self._V.T @ v))
        return self._s * v

    def __repr__(self):
        return f"ScaledNystromPreconditioner(d={self.shape[0]}, rank={self.rank})"

