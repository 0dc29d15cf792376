"""The interface every sketch shares: ``S @ A``, ``apply``, ``T``, ``as_linear_operator``.

A sketch S is an immutable m x n matrix drawn once from a seed. Subclasses implement
``_apply(inp, out)`` (fill ``out`` with S diag(sqrt(w)) A for a validated input) and
``_rmatmat(Y)`` (return S^T Y); row-separable sketches derive from :class:`RowSketch`
and only say which entries S has in a range of its columns.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._validation import check_scalar, check_vector
from ..exceptions import ValidationError
from ..linalg._design import Design
from . import _kernels

__all__ = ["Sketch", "RowSketch", "SketchInput"]

_EMPTY = np.empty(0)


class SketchInput:
    """A validated input of a sketch: a :class:`Design` (CSR or dense float64) and sqrt(w).

    ``vector`` records that a 1-D input was given (the result is then 1-D too);
    ``sqrt_w`` is an empty array when there are no row weights. For an
    :class:`~fastnewton.linalg.InterceptDesign` ``design`` is the design of A alone,
    ``ones`` is True and ``d`` counts the ones column: sketches fill the first
    ``design.d`` columns of the output from A, and :meth:`Sketch.apply` the last one
    with the sketch of ``sqrt_w`` (one O(n) pass, no copy of A).
    """

    def __init__(self, A, n_rows, row_weights, name="A"):
        self.vector = False
        self.ones = False
        self.from_design = isinstance(A, Design)
        if self.from_design and A.intercept:
            self.ones = True
            design = A.base
        elif self.from_design:
            design = A
        elif not sp.issparse(A) and np.ndim(A) == 1:
            self.vector = True
            design = Design(np.asarray(A).reshape(-1, 1), name)
        else:
            design = Design(A, name)
        if design.n != n_rows:
            raise ValidationError(f"{name} has {design.n} rows but the sketch expects {n_rows}")
        self.design = design
        self.d = design.d + self.ones
        if row_weights is None:
            self.sqrt_w = _EMPTY
            return
        w = row_weights
        if isinstance(w, np.ndarray) and w.dtype == np.float64 and w.shape == (n_rows,):
            # the common case (a Newton step's weights): check and sqrt in one parallel pass
            self.sqrt_w = np.empty(n_rows)
            if _kernels.sqrt_weights(np.ascontiguousarray(w), self.sqrt_w) == 0:
                return
        w = check_vector(row_weights, n_rows, "row_weights")
        if (w < 0).any():
            raise ValidationError(
                f"row_weights must be non-negative, got a minimum of {w.min():g}")
        self.sqrt_w = np.sqrt(w)


def _output(out, m, d, vector):
    if out is None:
        return np.zeros((m, d))
    if vector and isinstance(out, np.ndarray) and out.shape == (m,):
        out = out.reshape(m, 1)
    if not isinstance(out, np.ndarray) or out.shape != (m, d) or out.dtype != np.float64 \
            or not out.flags.c_contiguous:
        raise ValidationError(f"out must be a C-contiguous float64 array of shape ({m}, {d})")
    return out


class Sketch:
    """Base class of the sketches: an m x n matrix S with fast products.

    Attributes
    ----------
    sketch_size : int
        m, the number of rows of S.
    n : int
        The number of columns of S (rows of the inputs).
    shape : tuple (m, n)
    dtype : numpy.dtype
        float64; results are float64 whatever the input's dtype (float32 inputs are
        accumulated in float64).
    """

    dtype = np.dtype(np.float64)

    def _init_shape(self, sketch_size, n, *, max_size=None):
        check_scalar(n, "n", low=1, integer=True)
        check_scalar(sketch_size, "sketch_size", low=1, integer=True, high=max_size)
        self.sketch_size = int(sketch_size)
        self.n = int(n)
        self.shape = (self.sketch_size, self.n)

    # -- products --------------------------------------------------------------------
    def apply(self, A, row_weights=None, out=None):
        r"""Return :math:`S\,\mathrm{diag}(\sqrt{w})\,A` (float64, shape (m, d), or (m,) for a vector).

        Parameters
        ----------
        A : scipy.sparse matrix/array (any format), ndarray (n, d), vector (n,) or ``Design``
            The rows of A are the columns of S; CSC and COO are converted to CSR once.
        row_weights : array_like (n,), optional
            Non-negative, finite weights w; their square roots scale the rows of A in
            the same pass (diag(sqrt(w)) A is never formed).
        out : ndarray (m, d), optional
            A reused float64 output buffer (overwritten).
        """
        inp = SketchInput(A, self.n, row_weights)
        out = _output(out, self.sketch_size, inp.d, inp.vector)
        out[...] = 0.0
        self._apply(inp, out)
        if inp.ones:
            out[:, -1] = self.apply(self._ones_column(inp))
        return out[:, 0] if inp.vector else out

    @staticmethod
    def _ones_column(inp):
        """diag(sqrt(w)) 1: the weighted column of ones of an intercept design."""
        return inp.sqrt_w if inp.sqrt_w.size else np.ones(inp.design.n)

    def __matmul__(self, A):
        return self.apply(A)

    def rmatmat(self, Y):
        """Return ``S.T @ Y`` for Y of shape (m,) or (m, k) (float64)."""
        Y = np.asarray(Y, dtype=np.float64)
        vector = Y.ndim == 1
        Y2 = np.ascontiguousarray(Y.reshape(-1, 1) if vector else Y)
        if Y2.ndim != 2 or Y2.shape[0] != self.sketch_size:
            raise ValidationError(
                f"Y must have {self.sketch_size} rows (the sketch size), got shape {Y.shape}")
        out = self._rmatmat(Y2)
        return out[:, 0] if vector else out

    @property
    def T(self):
        """S^T as a scipy ``LinearOperator`` (so ``S.T @ Y`` works for vectors and matrices)."""
        return self.as_linear_operator().T

    def as_linear_operator(self):
        """S as a scipy ``LinearOperator`` with ``_matvec``, ``_matmat`` and ``_adjoint``."""
        return SketchOperator(self)

    def to_dense(self):
        """S as a dense (m, n) float64 array (tests and small problems only)."""
        return self.rmatmat(np.eye(self.sketch_size)).T.copy()

    def __repr__(self):
        return f"{type(self).__name__}(sketch_size={self.sketch_size}, n={self.n})"


class SketchOperator(spla.LinearOperator):
    """A sketch as a scipy ``LinearOperator`` (shape (m, n), dtype float64)."""

    def __init__(self, sketch):
        self.sketch = sketch
        super().__init__(dtype=np.float64, shape=sketch.shape)

    def _matvec(self, x):
        return self.sketch.apply(np.ravel(x))

    def _matmat(self, X):
        return self.sketch.apply(np.asarray(X))

    def _rmatvec(self, y):
        return self.sketch.rmatmat(np.ravel(y))

    def _rmatmat(self, Y):
        return self.sketch.rmatmat(Y)

    def _adjoint(self):
        return _AdjointSketchOperator(self)


class _AdjointSketchOperator(spla.LinearOperator):
    def __init__(self, op):
        self.op = op
        super().__init__(dtype=np.float64, shape=op.shape[::-1])

    def _matvec(self, y):
        return self.op._rmatvec(y)

    def _matmat(self, Y):
        return self.op._rmatmat(Y)

    def _rmatvec(self, x):
        return self.op._matvec(x)

    def _rmatmat(self, X):
        return self.op._matmat(X)

    def _adjoint(self):
        return self.op


class RowSketch(Sketch):
    r"""A row-separable sketch: :math:`S A = \sum_i S_{:, i} A_{i, :}`, column i of S from (seed, i).

    Subclasses implement ``_columns(row_start, n_rows) -> (ptr, cols, vals)``: the
    columns ``row_start .. row_start + n_rows`` of S in CSR form (``ptr`` of length
    m + 1, ``cols`` local row indices, increasing within each row of S, ``vals``).
    """

    def _full_columns(self):
        if getattr(self, "_csr_cache", None) is None:
            self._csr_cache = self._columns(0, self.n)
        return self._csr_cache

    def _apply(self, inp, out):
        self._apply_block(inp, self._full_columns(), out)

    @staticmethod
    def _apply_block(inp, cols, out):
        ptr, idx, vals = cols
        A = inp.design.A
        if inp.design.sparse:
            _kernels.row_sketch_csr(A.indptr, A.indices, A.data, ptr, idx, vals, inp.sqrt_w, out)
        else:
            _kernels.row_sketch_dense(A, ptr, idx, vals, inp.sqrt_w, out)

    def apply_rows(self, A_block, row_start, row_weights=None, out=None, accumulate=False):
        r"""Partial sketch :math:`S_{:, r_0:r_1} \mathrm{diag}(\sqrt{w}) A_{\text{block}}`.

        Rows of ``A_block`` are rows ``row_start .. row_start + A_block.shape[0]`` of the
        full input; they keep their global hashes, so the partial sketches of any
        partition of the rows sum to ``S @ A`` (up to the order of the additions).

        Bitwise: with ``accumulate=True`` the block's contributions are added into
        ``out`` instead of overwriting it. Accumulating the blocks of a partition into
        one buffer in increasing row order performs exactly the operations of
        ``S @ A`` for the same input format, so the result is bitwise identical.
        Independently computed partials summed afterwards agree to rounding (bitwise
        when each output entry receives contributions from one block only).

        Parameters
        ----------
        A_block : sparse matrix, ndarray (rows, d) or vector (rows,)
        row_start : int
            Global index of the block's first row.
        row_weights : array_like (rows,), optional
            Weights of the block's rows.
        out : ndarray (m, d), optional
        accumulate : bool
            Add into ``out`` (required then) instead of overwriting it.
        """
        check_scalar(row_start, "row_start", low=0, integer=True)
        n_rows = A_block.shape[0]
        if row_start + n_rows > self.n:
            raise ValidationError(
                f"rows {row_start}..{row_start + n_rows} exceed the sketch's n = {self.n}")
        inp = SketchInput(A_block, n_rows, row_weights, name="A_block")
        if accumulate and out is None:
            raise ValidationError("accumulate=True needs an out buffer to add into")
        out = _output(out, self.sketch_size, inp.d, inp.vector)
        if not accumulate:
            out[...] = 0.0
        if row_start == 0 and n_rows == self.n:
            cols = self._full_columns()
        else:
            cols = self._columns(int(row_start), n_rows)
        self._apply_block(inp, cols, out)
        if inp.ones:  # the block's share of S diag(sqrt(w)) 1
            col = np.zeros((self.sketch_size, 1))
            self._apply_block(SketchInput(self._ones_column(inp), n_rows, None), cols, col)
            out[:, -1] += col[:, 0]
        return out[:, 0] if inp.vector else out

    def to_sparse(self):
        """S as a scipy CSR array (m x n)."""
        ptr, idx, vals = self._full_columns()
        return sp.csr_array((vals, idx, ptr), shape=self.shape)

    def to_dense(self):
        return self.to_sparse().toarray()

    def _rmatmat(self, Y):
        return np.asarray(self.to_sparse().T @ Y)


def group_entries(bucket, local_col, vals, m):
    """CSR form of S from its entries (bucket, column, value), stable in entry order."""
    ptr, order = _kernels.group_by_bucket(np.ascontiguousarray(bucket, dtype=np.int64), m)
    return ptr, np.ascontiguousarray(local_col[order], dtype=np.int64), \
        np.ascontiguousarray(vals[order], dtype=np.float64)

