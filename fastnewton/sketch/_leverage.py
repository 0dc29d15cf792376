"""Leverage scores of diag(sqrt(w)) A and leverage-score row sampling (the papers' SubSample)."""

from __future__ import annotations

import numpy as np

from .._validation import check_rng, check_scalar, check_vector
from ..exceptions import ValidationError
from ..hessian._gram import weighted_gram
from ..linalg import _kernels
from ..linalg._design import as_design
from ._base import RowSketch
from ._sparse_sign import SparseSign

__all__ = ["leverage_scores", "RowSampler", "leverage_sampler", "LEVERAGE_METHODS"]

LEVERAGE_METHODS = ("sketch", "exact")
#: Rows per block when row norms of a dense A M are computed (bounds the n x k temporary).
_NORM_BLOCK = 65536


def _check_weights(row_weights, n):
    if row_weights is None:
        return None
    w = check_vector(row_weights, n, "row_weights")
    if (w < 0).any():
        raise ValidationError(f"row_weights must be non-negative, got a minimum of {w.min():g}")
    return w


def _row_sq_norms(design, M):
    """Squared row norms of A M (never an n x k temporary): a numba pass over sparse A,
    BLAS by row blocks for dense A."""
    out = np.empty(design.n)
    bias = np.zeros(M.shape[1])
    if design.intercept:  # rows [a_i, 1] of [A, 1]: a_i M[:-1] + M[-1]
        M, bias = M[:-1], np.ascontiguousarray(M[-1])
    if design.sparse:
        A = design.A
        _kernels.csr_row_sq_norms(A.indptr, A.indices, A.data, np.ascontiguousarray(M), bias, out)
        return out
    for r0 in range(0, design.n, _NORM_BLOCK):
        r1 = min(design.n, r0 + _NORM_BLOCK)
        B = np.asarray(design.A[r0:r1] @ M) + bias
        out[r0:r1] = np.einsum("ij,ij->i", B, B)
    return out


def _inverse_root(eigval, eigvec, ridge):
    """Columns V_r diag(1/sqrt(lambda_r + ridge)) over the numerically nonzero spectrum."""
    lam = eigval + ridge
    keep = lam > max(eigval.max(initial=0.0), 0.0) * eigval.size * np.finfo(float).eps * 10
    return eigvec[:, keep] / np.sqrt(lam[keep])


def leverage_scores(A, *, row_weights=None, method="sketch", seed=None, sketch_size=None,
                    jl_dim=None, ridge=0.0):
    r"""(Ridge) leverage scores of :math:`B = \mathrm{diag}(\sqrt{w}) A`.

    .. math:: \ell_i = w_i\, a_i^T (A^T W A + \text{ridge}\, I)^{+} a_i, \qquad
              \sum_i \ell_i = \operatorname{rank}(B) \text{ (ridge = 0)}.

    ``method="exact"``: eigendecomposition of the exact Gram (d x d; O(nnz d) to form
    the row norms; for small problems and tests). ``method="sketch"`` (Drineas et al.
    2012): Y = S B with a :class:`SparseSign` of ``sketch_size`` rows (one pass over A),
    the SVD Y = U Σ V^T gives R^{-1} = V Σ^{-1}, then the row norms of B R^{-1} G with
    a Gaussian JL matrix G (r x k) / sqrt(k); each score is within a factor
    (1 ± eps_S)^{∓2} (1 ± eps_JL) of the exact one.

    Parameters
    ----------
    A : sparse matrix, ndarray (n, d) or ``Design``
    row_weights : array_like (n,), optional
        Non-negative weights w (default all ones).
    method : {"sketch", "exact"}
    seed : None, int, SeedSequence or Generator
        Randomness of the sketch and the JL matrix (``method="sketch"``).
    sketch_size : int, optional
        Rows of the sketch; default ``max(16 d, 64)``.
    jl_dim : int, optional
        k, columns of the JL projection; default ``ceil(16 ln n)`` (every score within
        a factor 2 with high probability at the default sketch size). When k is at
        least the rank r, the row norms of B R^{-1} are computed exactly (no projection).
    ridge : float
        Ridge added to the Gram (ridge leverage scores; keeps rank-deficient A stable).

    Returns
    -------
    ndarray (n,)
        Non-negative scores (float64).
    """
    design = as_design(A)
    n, d = design.shape
    w = _check_weights(row_weights, n)
    check_scalar(ridge, "ridge", low=0.0)
    if method not in LEVERAGE_METHODS:
        raise ValidationError(f"method must be one of {LEVERAGE_METHODS}, got {method!r}")
    if method == "exact":
        G = weighted_gram(design, np.ones(n) if w is None else w)
        lam, V = np.linalg.eigh((G + G.T) / 2)
        M = _inverse_root(lam, V, ridge)
    else:
        rng = check_rng(seed)
        m = max(16 * d, 64) if sketch_size is None else sketch_size
        check_scalar(m, "sketch_size", low=1, integer=True)
        S = SparseSign(int(m), n, seed=rng)
        Y = S.apply(design, row_weights=w)
        _, sig, Vt = np.linalg.svd(Y, full_matrices=False)
        M = _inverse_root(sig ** 2, Vt.T, ridge)
        k = int(np.ceil(16 * np.log(max(n, 2)))) if jl_dim is None else jl_dim
        check_scalar(k, "jl_dim", low=1, integer=True)
        if k < M.shape[1]:
            M = M @ (rng.standard_normal((M.shape[1], k)) / np.sqrt(k))
    lev = _row_sq_norms(design, M)
    if w is not None:
        lev *= w
    return lev


class RowSampler(RowSketch):
    r"""Row sampling with replacement: :math:`S_{t, i_t} = 1/\sqrt{m p_{i_t}}` (the papers' SubSample).

    Draws m row indices i.i.d. from the probabilities p, so that
    :math:`E[S^T S] = I` and :math:`A^T S^T S A = \sum_t \text{weights}_t\, a_{i_t} a_{i_t}^T`.
    With p proportional to (factor-2 approximate) leverage scores of a d-dimensional
    subspace, m = O(d log(d/delta) / eps^2) rows give a (1 ± eps) subspace embedding
    (matrix Chernoff); :meth:`default_size` is ``max(64, ceil(4 d ln(d + 1)))``.
    ``S @ A`` reads only the m sampled rows of A.

    Parameters
    ----------
    sketch_size : int
        Number of samples m (may exceed n: sampling is with replacement).
    n : int
    probabilities : array_like (n,), optional
        Non-negative, not all zero; normalized to sum 1. Default uniform.
    seed : None, int, SeedSequence or Generator

    Attributes
    ----------
    indices : ndarray (m,) of int64
        Sampled rows, sorted increasingly (row t of S @ A is a scaled row indices[t]).
    weights : ndarray (m,)
        Rescaling weights 1 / (m p_i) of the sampled rows.
    scales : ndarray (m,)
        Their square roots, the nonzeros of S.
    """

    def __init__(self, sketch_size, n, probabilities=None, seed=None):
        self._init_shape(sketch_size, n)
        if probabilities is None:
            p = np.full(self.n, 1.0 / self.n)
        else:
            p = check_vector(probabilities, self.n, "probabilities")
            if (p < 0).any():
                raise ValidationError(
                    f"probabilities must be non-negative, got a minimum of {p.min():g}")
            total = p.sum()
            if not total > 0:
                raise ValidationError("probabilities must not be all zero")
            p = p / total
        rng = check_rng(seed)
        self.indices = np.sort(rng.choice(self.n, self.sketch_size, p=p)).astype(np.int64)
        self.weights = 1.0 / (self.sketch_size * p[self.indices])
        self.scales = np.sqrt(self.weights)
        self._csr_cache = (np.arange(self.sketch_size + 1, dtype=np.int64), self.indices,
                           self.scales)

    @staticmethod
    def default_size(n, d):
        """Default number of samples for Newton steps: ``max(64, ceil(4 d ln(d + 1)))``."""
        return int(max(64, np.ceil(4 * d * np.log(d + 1))))

    def _columns(self, row_start, n_rows):
        mask = (self.indices >= row_start) & (self.indices < row_start + n_rows)
        ptr = np.zeros(self.sketch_size + 1, dtype=np.int64)
        np.cumsum(mask, out=ptr[1:])
        return ptr, self.indices[mask] - row_start, self.scales[mask]


#: JL dimension of the scores behind :func:`leverage_sampler` (sampling needs O(1) factors).
SAMPLER_JL_DIM = 32


def leverage_sampler(A, sketch_size=None, *, row_weights=None, method="sketch", seed=None,
                     ridge=0.0, jl_dim=SAMPLER_JL_DIM):
    r"""A :class:`RowSampler` with probabilities proportional to the leverage scores of diag(sqrt(w)) A.

    The sampling step of the papers' approximate Newton method: ``S.apply(A,
    row_weights=w)`` then is the sampled, rescaled diag(sqrt(w)) A whose Gram
    approximates :math:`A^T W A`. ``sketch_size`` defaults to
    :meth:`RowSampler.default_size`. Rows with zero score are never sampled; if all
    scores vanish (w = 0), sampling is uniform. The scores use a JL projection of
    ``jl_dim`` = 32 columns by default (each score within about a factor 2.5 of the
    exact one; sampling only needs constant factors, which the oversampling of
    :meth:`RowSampler.default_size` absorbs), so one call costs about 8 + 32
    multiply-adds per nonzero of A plus an SVD of an 8 d x d sketch.
    """
    design = as_design(A)
    rng = check_rng(seed)
    m = RowSampler.default_size(design.n, design.d) if sketch_size is None else sketch_size
    lev = leverage_scores(design, row_weights=row_weights, method=method, seed=rng, ridge=ridge,
                          sketch_size=max(8 * design.d, 64), jl_dim=jl_dim)
    return RowSampler(m, design.n, probabilities=lev if lev.sum() > 0 else None, seed=rng)
