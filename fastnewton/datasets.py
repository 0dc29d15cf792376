"""Seeded problem generators for the demo, the tests and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._datasets_glm import GLM_FAMILIES, GLMData, make_glm
from ._validation import check_rng, check_scalar

__all__ = ["make_regression", "RegressionData", "FAMILIES", "SOFTMAX_FAMILY",
           "make_glm", "GLMData", "GLM_FAMILIES"]

#: The f of the exp-type families (``ExpRegression(..., f=family)``).
FAMILIES = ("exp", "cosh", "sinh")
#: The softmax family of :func:`make_regression` (``SoftmaxRegression(A, b, w)``).
SOFTMAX_FAMILY = "softmax"


@dataclass(frozen=True)
class RegressionData:
    """A generated problem instance: ``A`` (n x d), targets ``b``, weights ``w``, ``x_true``."""

    A: object
    b: np.ndarray
    w: np.ndarray
    x_true: np.ndarray
    family: str


def make_regression(n, d, *, nnz_per_row=None, density=None, cond=1.0, family="exp",
                    noise=0.01, w="convex", dense=False, dtype=np.float64, seed=None):
    """Generate a seeded exp/cosh/sinh or softmax regression instance.

    Rows of A have ``nnz_per_row`` nonzeros (default ``min(d, 20)``; or ``density * d``)
    at uniformly random columns, values N(0, 1/nnz_per_row); then column j is scaled by
    ``cond ** (-j / (d - 1))``, so cond(A) is about ``cond`` times that of the unscaled
    matrix. Every column gets at least one nonzero. With ``x_true`` ~ N(0, 1),
    ``z = A x_true`` is about N(0, <=1) and ``b = f(z) + noise * N(0, 1)``; for
    ``family="softmax"``, ``b = softmax(z + noise * N(0, 1))`` (a probability vector).

    Parameters
    ----------
    n, d : int
        Shape of A.
    nnz_per_row, density : int or float, optional
        Row sparsity (give at most one).
    cond : float >= 1
        Ratio of the largest to the smallest column scale.
    family : {"exp", "cosh", "sinh", "softmax"}
        Which f generates b (and sets the convexity bound for ``w``). The data of
        "softmax" is for :class:`~fastnewton.SoftmaxRegression` (``A, b, w``), the others
        for :class:`~fastnewton.ExpRegression` with ``f=family``.
    noise : float
        Standard deviation of the additive noise on b.
    w : "convex", float or array
        ``"convex"``: ``1.05 * sqrt(max(bound, 0)) + 0.05`` per row, with ``bound`` the
        exact convexity bound of ``fastnewton.problems.convexity_bound``; softmax: the
        same w on every row, ``w**2 = SOFTMAX_CONVEXITY_W2 * max(b)**2`` (the numerical
        bound for ``max(b) = 1`` scaled to b; it keeps the Hessian in z positive
        definite around the data and the start z = 0 in practice, not a proven
        global bound).
    dense : bool
        Return A as a dense ndarray instead of CSR.
    dtype : float32 or float64
        Dtype of A's values.
    seed : None, int or Generator

    Returns
    -------
    RegressionData
    """
    from .problems.exp import convexity_bound
    from .problems.softmax import SOFTMAX_CONVEXITY_W2

    check_scalar(n, "n", low=1, integer=True)
    check_scalar(d, "d", low=1, integer=True)
    check_scalar(cond, "cond", low=1.0)
    check_scalar(noise, "noise", low=0.0)
    if family not in FAMILIES + (SOFTMAX_FAMILY,):
        raise ValueError(f"family must be one of {FAMILIES + (SOFTMAX_FAMILY,)}, got {family!r}")
    if nnz_per_row is not None and density is not None:
        raise ValueError("give nnz_per_row or density, not both")
    if density is not None:
        check_scalar(density, "density", low=0.0, high=1.0, low_inclusive=False)
        k = max(1, int(round(density * d)))
    else:
        k = min(d, 20) if nnz_per_row is None else int(check_scalar(nnz_per_row, "nnz_per_row", low=1, integer=True))
    k = min(k, d)
    rng = check_rng(seed)

    cols = np.sort(rng.integers(0, d, size=(n, k)), axis=1)
    vals = rng.standard_normal((n, k)) / np.sqrt(k)
    rows = np.repeat(np.arange(n), k)
    A = sp.csr_array((vals.ravel(), (rows, cols.ravel())), shape=(n, d))
    A.sum_duplicates()
    empty = np.flatnonzero(np.bincount(A.indices, minlength=d) == 0)
    if empty.size:
        extra = sp.csr_array((rng.standard_normal(empty.size) / np.sqrt(k),
                              (rng.integers(0, n, size=empty.size), empty)), shape=(n, d))
        A = (A + extra).tocsr()
        A.sum_duplicates()
    scale = cond ** (-np.arange(d) / max(d - 1, 1))
    A = (A @ sp.diags_array(scale)).tocsr().astype(dtype)
    A.sort_indices()
    if A.nnz < 2**31 - 1 and A.indices.dtype != np.int32:  # scipy may hand back int64
        A = sp.csr_array((A.data, A.indices.astype(np.int32), A.indptr.astype(np.int32)),
                         shape=A.shape)

    x_true = rng.standard_normal(d)
    z = A @ x_true
    if family == SOFTMAX_FAMILY:
        b = z + noise * rng.standard_normal(n)
        b = np.exp(b - b.max())
        b /= b.sum()
    else:
        f = {"exp": np.exp, "cosh": np.cosh, "sinh": np.sinh}[family]
        b = f(z) + noise * rng.standard_normal(n)
    if isinstance(w, str):
        if w != "convex":
            raise ValueError(f"w must be 'convex', a number or an array, got {w!r}")
        if family == SOFTMAX_FAMILY:
            w = np.full(n, np.sqrt(SOFTMAX_CONVEXITY_W2) * b.max())
        else:
            w = 1.05 * np.sqrt(np.maximum(convexity_bound(b, family), 0.0)) + 0.05
    else:
        w = np.broadcast_to(np.asarray(w, dtype=np.float64), (n,)).copy()
    if dense:
        A = A.toarray()
    return RegressionData(A=A, b=b, w=w, x_true=x_true, family=family)
