"""The design matrix A as the engine sees it: validated once, immutable, with its buffers.

A :class:`Design` owns a validated CSR (or dense) matrix and the one-off work done on
it (a CSC copy for the exact Gram, reduction buffers), so that Newton steps pay only
for passes over A, never for conversions.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp

from .._threads import blas_for
from .._validation import check_matrix
from ..exceptions import ValidationError
from . import _kernels

__all__ = ["Design", "InterceptDesign", "as_design", "clear_design_cache", "n_row_blocks",
           "fixed_dot", "axpby", "ridge_value", "ridge_dot", "add_ridge", "check_ridge",
           "ridge_scalar"]

#: Upper bound on the number of row blocks of a reduction (buffers are blocks x d).
MAX_ROW_BLOCKS = 64
#: Rows per block below which blocks are merged (keeps small problems serial and cheap).
MIN_BLOCK_ROWS = 4096


def n_row_blocks(n):
    """Number of row blocks of a reduction over ``n`` rows.

    Depends on ``n`` only (never on the thread count), which makes every reduction
    bitwise reproducible across thread counts.
    """
    return int(min(MAX_ROW_BLOCKS, max(1, -(-n // MIN_BLOCK_ROWS))))


def fixed_dot(a, b, c=None):
    """``sum(a * b)`` (or ``sum(a * b * c)``) of 1-D float64 arrays, rounded the same way
    whatever the thread count.

    OpenBLAS splits a long ``ddot`` (n > ~10,000) across its threads, so ``a @ b``
    changes in the last bits with the BLAS thread count; numpy's einsum loop does not
    call BLAS. The three-factor form of long vectors goes through a parallel numba
    reduction over ``n_row_blocks(n)`` fixed blocks summed in order (one pass, no
    temporary for ``b * c``). Use this for the n-length reductions of objectives and
    line searches.
    """
    if c is None:
        return float(np.einsum("i,i->", a, b))
    n = a.shape[0]
    if n < 2 * MIN_BLOCK_ROWS:
        return float(np.einsum("i,i,i->", a, b, c))
    a, b, c = (np.ascontiguousarray(v, dtype=np.float64) for v in (a, b, c))
    if b.shape != (n,) or c.shape != (n,):
        raise ValueError("fixed_dot needs 1-D arrays of one length")
    return float(_kernels.dot_blocks(a, b, c, n_row_blocks(n)))


def curvature_sums(beta, a, b, U=None):
    """``(Σβa², Σβab, Σβb², U^T a, U^T b)`` of 1-D float64 arrays (and an (n, k) U) in
    one parallel pass over fixed row blocks: the same bits whatever the thread count.
    ``U^T a`` and ``U^T b`` are None without U."""
    n = a.shape[0]
    beta, a, b = (np.ascontiguousarray(v, dtype=np.float64) for v in (beta, a, b))
    if beta.shape != (n,) or b.shape != (n,):
        raise ValueError("curvature_sums needs 1-D arrays of one length")
    k = 0 if U is None else U.shape[1]
    U = np.empty((n, 0)) if U is None else np.ascontiguousarray(U, dtype=np.float64)
    t = _kernels.curvature_blocks(beta, a, b, U, n_row_blocks(n))
    if k == 0:
        return t[0], t[1], t[2], None, None
    return t[0], t[1], t[2], t[3:3 + k], t[3 + k:]


def axpby(alpha, x, beta, y):
    """Return ``alpha * x + beta * y`` for 1-D float64 arrays (one parallel pass when long).

    Elementwise, so the result never depends on the thread count; rounded as numpy
    rounds ``alpha * x + beta * y``.
    """
    if x.shape[0] < 2 * MIN_BLOCK_ROWS:
        return alpha * x + beta * y
    out = np.empty(x.shape[0])
    _kernels.axpby(float(alpha), x, float(beta), y, out)
    return out


def axpy_max_abs(alpha, x, y):
    """``y += alpha * x`` in place for 1-D float64 arrays; return ``max |x|`` (one
    parallel pass when long; elementwise, so the bits never depend on the thread count)."""
    if x.shape[0] < 2 * MIN_BLOCK_ROWS:
        y += alpha * x
        return float(np.max(np.abs(x))) if x.size else 0.0
    return float(_kernels.axpy_max_abs(float(alpha), x, y, np.empty(n_row_blocks(x.shape[0]))))


class Design:
    """A validated, immutable design matrix with the products Newton steps need.

    Parameters
    ----------
    A : sparse matrix/array (any scipy format) or 2-D array_like, shape (n, d)
        Sparse input is stored as canonical CSR with its dtype kept (float32 or
        float64); dense input is stored as a C-contiguous float64 array.

    Notes
    -----
    Vectors in and out are float64 whatever A's dtype; kernels accumulate in float64.
    A canonical CSR (sorted, unique indices, int32/int64 indices, float32/float64
    values) is wrapped without copying its arrays; anything else is converted once
    into a canonical copy (see :func:`~fastnewton._validation.check_matrix`). Reduction
    buffers are per thread, so one Design may be used from several threads.
    """

    #: True for a design with an implicit column of ones (:class:`InterceptDesign`).
    intercept = False

    def __init__(self, A, name="A"):
        A = check_matrix(A, name)
        self.sparse = sp.issparse(A)
        if not self.sparse and A.dtype != np.float64:
            A = A.astype(np.float64)
        self.A = A
        self.n, self.d = A.shape
        self.shape = A.shape
        self.dtype = A.dtype
        self._csc = None
        self._local = threading.local()
        #: True when :func:`as_design` made this Design for a scipy matrix and keeps it
        self.cached = False

    def __getstate__(self):  # picklable: the per-thread buffers are not state
        state = self.__dict__.copy()
        del state["_local"]
        state["cached"] = False
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def base(self):
        """The design of the feature matrix itself (``self``; an intercept design's A)."""
        return self

    @property
    def n_features(self):
        """Columns of the feature matrix A (``d``; ``d - 1`` with an intercept column)."""
        return self.d

    # -- one-off layouts -------------------------------------------------------------
    @property
    def nnz(self):
        return int(self.A.nnz) if self.sparse else self.n * self.d

    def _buffer(self):
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = np.empty((n_row_blocks(self.n), self.d))
        return buf

    def csc_arrays(self):
        """(indptr, row indices, data) of A in CSC, built once and cached."""
        if self._csc is None:
            At = self.A.tocsc()
            At.sort_indices()
            self._csc = (At.indptr.astype(self.A.indptr.dtype, copy=False),
                         At.indices.astype(self.A.indices.dtype, copy=False), At.data)
        return self._csc

    # -- products ----------------------------------------------------------------------
    def _vec(self, v, size, name):
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (size,):
            raise ValidationError(f"{name} must have shape ({size},), got {v.shape}")
        return np.ascontiguousarray(v)

    def matvec(self, x, out=None):
        """Return ``A @ x`` (float64, length n)."""
        x = self._vec(x, self.d, "x")
        if out is None:
            out = np.empty(self.n)
        if not x.any():  # A 0 = 0 (A is finite): no pass over A, e.g. a GLM's start
            out.fill(0.0)
        elif self.sparse:
            A = self.A
            _kernels.csr_matvec(A.indptr, A.indices, A.data, x, out)
        else:
            np.dot(self.A, x, out=out)
        return out

    def rmatvec(self, y, out=None):
        """Return ``A.T @ y`` (float64, length d)."""
        y = self._vec(y, self.n, "y")
        if out is None:
            out = np.empty(self.d)
        if self.sparse:
            A = self.A
            _kernels.csr_rmatvec(A.indptr, A.indices, A.data, y, self._buffer(), out)
        elif self._rows_contiguous():
            _kernels.dense_rmatvec(self.A, y, self._buffer(), out)
        else:
            np.dot(self.A.T, y, out=out)
        return out

    def _rows_contiguous(self):
        return not self.sparse and self.A.flags.c_contiguous

    def rmatvec_diag(self, y, w):
        """Return ``(A.T @ y, sum_i w_i A_ij^2)`` (the gradient's product and the diagonal
        of ``A.T diag(w) A``) in one pass over A."""
        y = self._vec(y, self.n, "y")
        w = self._vec(w, self.n, "w")
        nb = n_row_blocks(self.n)
        if self.sparse:
            A = self.A
            out = np.empty((self.d, 2))
            _kernels.csr_rmatvec_diag(A.indptr, A.indices, A.data, y, w,
                                      np.empty((nb, self.d, 2)), out)
            return out[:, 0].copy(), out[:, 1].copy()
        if not self._rows_contiguous():
            return self.rmatvec(y), np.einsum("ij,i,ij->j", self.A, w, self.A)
        out, dout = np.empty(self.d), np.empty(self.d)
        _kernels.dense_rmatvec_diag(self.A, y, w, np.empty((nb, 2, self.d)), out, dout)
        return out, dout

    def weighted_col_sq(self, w, out=None):
        """Return ``sum_i w_i A_ij^2`` (the diagonal of ``A.T diag(w) A``), one pass."""
        w = self._vec(w, self.n, "w")
        out = np.empty(self.d) if out is None else out
        if self.sparse:
            A = self.A
            _kernels.csr_weighted_col_sq(A.indptr, A.indices, A.data, w, self._buffer(), out)
        elif self._rows_contiguous():
            _kernels.dense_weighted_col_sq(self.A, w, self._buffer(), out)
        else:
            np.einsum("ij,i,ij->j", self.A, w, self.A, out=out)
        return out

    def normal_matvec(self, beta, p):
        """Return ``(A.T @ (beta * (A @ p)), A @ p)`` in one pass over a sparse A."""
        beta = self._vec(beta, self.n, "beta")
        p = self._vec(p, self.d, "p")
        t = np.empty(self.n)
        out = np.empty(self.d)
        if self.sparse:
            A = self.A
            _kernels.csr_normal_matvec(A.indptr, A.indices, A.data, beta, p, self._buffer(), out, t)
        elif self._rows_contiguous():
            buf = self._buffer()
            _kernels.dense_normal_matvec(self.A, beta, p, 0.0, buf, np.empty(buf.shape[0]),
                                         out, t)
        else:
            np.dot(self.A, p, out=t)
            np.dot(self.A.T, beta * t, out=out)
        return out, t

    def matmat(self, P):
        """Return ``A @ P`` for a (d, k) array (float64, (n, k))."""
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 2 or P.shape[0] != self.d:
            raise ValidationError(f"P must have shape ({self.d}, k), got {P.shape}")
        if self.sparse:
            return np.column_stack([self.matvec(P[:, j]) for j in range(P.shape[1])])
        with blas_for(2 * self.n * self.d * P.shape[1]):
            return self.A @ P

    def rmatmat(self, U):
        """Return ``A.T @ U`` for an (n, k) array (float64, (d, k))."""
        U = np.asarray(U, dtype=np.float64)
        if U.ndim != 2 or U.shape[0] != self.n:
            raise ValidationError(f"U must have shape ({self.n}, k), got {U.shape}")
        if not self.sparse:
            with blas_for(2 * self.n * self.d * U.shape[1]):
                return self.A.T @ U
        k = U.shape[1]
        out = np.empty((self.d, k))
        A = self.A
        for j in range(0, k - 1, 2):  # columns in pairs: one pass over A per pair
            pair = np.empty((self.d, 2))
            Uj = np.ascontiguousarray(U[:, j:j + 2])
            _kernels.csr_rmatvec2(A.indptr, A.indices, A.data, Uj,
                                  np.empty((n_row_blocks(self.n), self.d, 2)), pair)
            out[:, j:j + 2] = pair
        if k % 2:
            out[:, k - 1] = self.rmatvec(np.ascontiguousarray(U[:, k - 1]))
        return out


#: Most scipy matrices whose Design :func:`as_design` keeps (least recently used dropped).
DESIGN_CACHE_SIZE = 8
_cache = OrderedDict()  # id(A) -> (weakref to A, fingerprint, Design)
_cache_lock = threading.RLock()


def _buffers(A):
    """The arrays that hold a scipy matrix's values and structure, or None where its
    format keeps them in Python containers (lil, dok) or it is not a scipy matrix."""
    if not sp.issparse(A):
        return None
    fmt = A.format
    if fmt in ("csr", "csc", "bsr"):
        return A.data, A.indices, A.indptr
    if fmt == "coo":
        return (A.data, *(A.coords if hasattr(A, "coords") else (A.row, A.col)))
    if fmt == "dia":
        return A.data, A.offsets
    return None


def _fingerprint(A, arrays):
    """What must not change for a cached Design to stand for A: type, shape, dtype and,
    per buffer, its address, shape, strides and dtype (the buffers' identities are
    checked through weak references)."""
    parts = [type(A), tuple(A.shape), np.dtype(A.dtype).str]
    for a in arrays:
        if not isinstance(a, np.ndarray):
            return None
        parts.append((a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str))
    return tuple(parts)


def _drop_entry(key, ref):
    entry = _cache.get(key)
    if entry is not None and entry[0] is ref:
        _cache.pop(key, None)


def clear_design_cache():
    """Forget every Design kept by :func:`as_design` (their copies of A are freed)."""
    with _cache_lock:
        _cache.clear()


def as_design(A, name="A", *, cache=True):
    """Return ``A`` if it already is a :class:`Design`, else validate and wrap it.

    Parameters
    ----------
    A : Design, scipy.sparse matrix/array (any format) or 2-D array_like
    name : str
        The argument's name in error messages.
    cache : bool
        Reuse the Design of a scipy matrix seen before (default). Every public engine
        call goes through here, so repeated calls with the same scipy object validate
        and lay it out once: the Design (with its CSC copy, and the bucket-grouped
        layout a :class:`~fastnewton.sketch.CountSketch` keeps for it) is found again.

    Notes
    -----
    The cache holds a weak reference to the scipy object, never the object itself, and
    at most :data:`DESIGN_CACHE_SIZE` entries: an entry goes when A is garbage
    collected (with the canonical copy the Design may hold). A canonical CSR is not
    copied at all (the Design wraps its arrays). An entry is reused only while A has the
    same type, shape, dtype and the very same ``data``/``indices``/``indptr`` buffers
    (``coords`` for COO, ``offsets`` for DIA); assigning new arrays, ``resize``,
    ``sum_duplicates``, ``eliminate_zeros`` make a new Design. Changing values *inside*
    the same buffers (``A.data *= 2``, ``A.indices[...] = ...``) is not detected: the
    cached Design and its layouts then give stale results. After such a change call
    :func:`clear_design_cache` or pass ``cache=False``. LIL and DOK matrices (Python
    containers) and dense arrays are not cached: they are validated on every call
    (dense: one pass; a C-ordered float64 array is used without a copy).
    """
    if isinstance(A, Design):
        return A
    arrays = _buffers(A) if cache else None
    fp = None if arrays is None else _fingerprint(A, arrays)
    if fp is None:
        return Design(A, name)
    key = id(A)
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry[0]() is A and entry[1] == fp \
                and all(r() is a for r, a in zip(entry[3], arrays)):
            _cache.move_to_end(key)
            return entry[2]
    design = Design(A, name)
    try:
        ref = weakref.ref(A, lambda r, key=key: _drop_entry(key, r))
        refs = tuple(weakref.ref(a) for a in arrays)
    except TypeError:  # pragma: no cover - an object that takes no weak references
        return design
    design.cached = True
    with _cache_lock:
        _cache[key] = (ref, fp, design, refs)
        _cache.move_to_end(key)
        while len(_cache) > DESIGN_CACHE_SIZE:
            _cache.popitem(last=False)
    return design


class InterceptDesign(Design):
    r"""The design ``[A, 1]``: A with an implicit, trailing column of ones.

    The ones column is never stored: every product handles it in the same pass over A
    or in one extra O(n) pass over a vector, so an intercept costs no copy of A. The
    validated A and its one-off layouts (CSC copy, sketch layouts) are those of the
    base :class:`Design` of A (``as_design(A)``), shared with every other user of A.

    Parameters
    ----------
    A : sparse matrix/array, 2-D array_like or :class:`Design` (without intercept), shape (n, p)

    Attributes
    ----------
    base : Design
        The design of A alone.
    A : CSR array or ndarray (n, p)
        The feature matrix, **without** the ones column.
    d : int
        ``p + 1``: the length of x = [coef, intercept].
    n_features : int
        ``p``.

    Notes
    -----
    Sums over the n rows of the ones column (``sum(y)`` in :meth:`rmatvec`) are
    computed in a fixed order (numpy's pairwise summation, or fixed row blocks inside
    the kernels), so results are bitwise the same for any thread count.
    """

    intercept = True

    def __init__(self, A, name="A"):
        if isinstance(A, InterceptDesign):
            raise ValidationError(f"{name} already has an intercept column")
        base = as_design(A, name)
        self._base = base
        self.sparse = base.sparse
        self.A = base.A
        self.n = base.n
        self.d = base.d + 1
        self.shape = (self.n, self.d)
        self.dtype = base.dtype
        self._csc = None
        self._local = threading.local()
        self.cached = False

    @property
    def base(self):
        return self._base

    @property
    def n_features(self):
        return self.d - 1

    @property
    def nnz(self):
        """Stored entries of A plus the n entries of the ones column."""
        return self._base.nnz + self.n

    def csc_arrays(self):
        raise TypeError("an intercept design has no CSC arrays of its own; "
                        "use design.base.csc_arrays() and handle the ones column")

    def matvec(self, x, out=None):
        """Return ``A @ x[:-1] + x[-1]`` (float64, length n)."""
        x = self._vec(x, self.d, "x")
        out = self._base.matvec(x[:-1], out=out)
        out += x[-1]
        return out

    def rmatvec(self, y, out=None):
        """Return ``[A.T @ y, sum(y)]`` (float64, length d)."""
        y = self._vec(y, self.n, "y")
        if out is None:
            out = np.empty(self.d)
        self._base.rmatvec(y, out=out[:-1])
        out[-1] = float(np.sum(y))
        return out

    def normal_matvec(self, beta, p):
        """Return ``([A, 1].T @ (beta * t), t)`` with ``t = A @ p[:-1] + p[-1]``, in one
        pass over a sparse A."""
        beta = self._vec(beta, self.n, "beta")
        p = self._vec(p, self.d, "p")
        if not (self.sparse or self._base._rows_contiguous()):
            t = self.matvec(p)
            return self.rmatvec(beta * t), t
        A = self.A
        t = np.empty(self.n)
        out = np.empty(self.d)
        buf = self._base._buffer()
        sbuf = np.empty(buf.shape[0])
        if self.sparse:
            _kernels.csr_normal_matvec_bias(A.indptr, A.indices, A.data, beta, p[:-1],
                                            float(p[-1]), buf, sbuf, out[:-1], t)
        else:
            _kernels.dense_normal_matvec(A, beta, p[:-1], float(p[-1]), buf, sbuf,
                                         out[:-1], t)
        out[-1] = float(np.sum(sbuf))  # block sums added in block order
        return out, t

    def rmatvec_diag(self, y, w):
        """Return ``([A, 1].T @ y, diag([A, 1].T diag(w) [A, 1]))`` in one pass over A."""
        y = self._vec(y, self.n, "y")
        w = self._vec(w, self.n, "w")
        g, diag = self._base.rmatvec_diag(y, w)
        return np.append(g, float(np.sum(y))), np.append(diag, float(np.sum(w)))

    def weighted_col_sq(self, w, out=None):
        """Return the diagonal of ``[A, 1].T diag(w) [A, 1]`` (one pass over A)."""
        w = self._vec(w, self.n, "w")
        out = np.empty(self.d) if out is None else out
        self._base.weighted_col_sq(w, out=out[:-1])
        out[-1] = float(np.sum(w))
        return out

    def matmat(self, P):
        """Return ``A @ P[:-1] + P[-1]`` for a (d, k) array (float64, (n, k))."""
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 2 or P.shape[0] != self.d:
            raise ValidationError(f"P must have shape ({self.d}, k), got {P.shape}")
        out = self._base.matmat(P[:-1])
        out += P[-1]
        return out

    def rmatmat(self, U):
        """Return ``[A, 1].T @ U`` for an (n, k) array (float64, (d, k))."""
        U = np.asarray(U, dtype=np.float64)
        if U.ndim != 2 or U.shape[0] != self.n:
            raise ValidationError(f"U must have shape ({self.n}, k), got {U.shape}")
        out = np.empty((self.d, U.shape[1]))
        out[:-1] = self._base.rmatmat(U)
        out[-1] = np.sum(U, axis=0)
        return out

    def __repr__(self):
        return f"InterceptDesign(n={self.n}, n_features={self.n_features})"


# -- ridges: a float (every coordinate) or a float64 vector of length d (per coordinate) --

def check_ridge(ridge, d=None, name="ridge"):
    """A ridge as the engine stores it: a float, or a finite non-negative float64 (d,) array."""
    if isinstance(ridge, np.ndarray) and ridge.ndim == 1:
        r = np.ascontiguousarray(ridge, dtype=np.float64)
        if d is not None and r.shape != (d,):
            raise ValidationError(f"{name} must be a float or have shape ({d},), got {r.shape}")
        if not np.isfinite(r).all() or (r < 0).any():
            raise ValidationError(f"{name} must be finite and non-negative")
        return r
    from .._validation import check_scalar
    return float(check_scalar(ridge, name))


def ridge_value(lam, x):
    """``0.5 * sum(lam * x * x)``: the ridge term of an objective (scalar or vector lam)."""
    if isinstance(lam, np.ndarray):
        return 0.5 * float(np.dot(lam * x, x))
    return 0.5 * lam * float(x @ x)


def ridge_dot(lam, u, v):
    """``u^T diag(lam) v`` (scalar or vector lam)."""
    if isinstance(lam, np.ndarray):
        return float(np.dot(lam * u, v))
    return lam * float(u @ v)


def add_ridge(H, lam):
    """Add the ridge to the diagonal of the square array H in place; returns H."""
    if isinstance(lam, np.ndarray) or lam:
        H[np.diag_indices_from(H)] += lam
    return H


def ridge_scalar(lam):
    """One number for a ridge (its largest entry): where only a scalar makes sense
    (ridge leverage scores, reports)."""
    return float(np.max(lam)) if isinstance(lam, np.ndarray) else float(lam)
