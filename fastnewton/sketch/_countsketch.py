"""CountSketch: one signed entry per column of S (per row of A)."""

from __future__ import annotations

import numpy as np

from .._validation import check_rng
from ..linalg._design import Design
from ..linalg._kernels import sum_blocks
from . import _kernels
from ._base import RowSketch, SketchInput, _output, group_entries
from ._hashing import bucket_of, key_from_seed, row_hash, sign_of

__all__ = ["CountSketch"]

#: Fixed groups of consecutive buckets whose partial sums of A^T y are added in order
#: (:meth:`CountSketch.apply_and_rmatvec`); enough parallel work for 64 threads.
RMATVEC_GROUPS = 64


class CountSketch(RowSketch):
    r"""CountSketch :math:`S \in \mathbb{R}^{m \times n}`: row i of A goes to bucket h(i) with sign s(i).

    ``S @ A`` costs one pass over A. The bucket and sign of row i are a hash of
    ``(key, i)``, the key drawn once from ``seed``: the sketch of any row block, computed
    anywhere, adds up to the sketch of the whole matrix (see :meth:`apply_rows`).

    Sketch size: a (1 ± eps) subspace embedding of a d-dimensional subspace with
    probability 1 - delta needs m = O(d^2 / (eps^2 delta)) rows (Clarkson-Woodruff,
    Nelson-Nguyen), whatever the leverage of the rows. On subspaces without rows of
    leverage near 1, m = 8 d (the Newton default, :meth:`default_size`) keeps the
    singular values of S U within about 1 ± 0.5; two rows of leverage near 1 that
    collide in one bucket can make S U singular, which :class:`SparseSign` avoids.

    Parameters
    ----------
    sketch_size : int
        Number of rows m of S, 1 <= m.
    n : int
        Number of columns of S (rows of the matrices it is applied to).
    seed : None, int, SeedSequence or numpy.random.Generator
        Source of the sketch's key.
    reorder : bool
        When applied to a :class:`~fastnewton.linalg.Design` (as inside ``minimize``),
        keep a copy of its rows grouped by bucket, made on first use, so every later
        application streams A once without gathers (one extra copy of A; about 4x
        faster per application on large A). Set False to save the memory.

    Examples
    --------
    >>> import numpy as np
    >>> S = CountSketch(4, 10, seed=0)
    >>> (S @ np.eye(10)).shape
    (4, 10)
    """

    def __init__(self, sketch_size, n, seed=None, reorder=True):
        self._init_shape(sketch_size, n)
        self.key = key_from_seed(check_rng(seed))
        h = row_hash(self.key, np.arange(self.n))
        self._bucket = bucket_of(h, self.sketch_size)
        self._sign = sign_of(h)
        # Layout for bucket-parallel accumulation: rows grouped by bucket, in row order.
        self._bucket_ptr, self._order = _kernels.group_by_bucket(self._bucket, self.sketch_size)
        self._csr_cache = (self._bucket_ptr, self._order, self._sign[self._order])
        self.reorder = bool(reorder)
        self._layout = None  # (design, reordered indptr, indices, data)

    @staticmethod
    def default_size(n, d):
        """Default sketch size for Newton steps: ``min(n, max(8 d, 64))``."""
        return int(min(n, max(8 * d, 64)))

    def _columns(self, row_start, n_rows):
        h = row_hash(self.key, np.arange(row_start, row_start + n_rows))
        return group_entries(bucket_of(h, self.sketch_size), np.arange(n_rows), sign_of(h),
                             self.sketch_size)

    def _sorted_coef(self, inp):
        """Sign times sqrt(w) of each row of the bucket-grouped copy, in its order."""
        coef = self._csr_cache[2]
        if inp.sqrt_w.size:
            coef = np.empty(self.n)
            _kernels.sorted_row_coef(self._csr_cache[2], self._order, inp.sqrt_w, coef)
        return coef

    def _apply(self, inp, out):
        design = inp.design
        if design.sparse and self.reorder and inp.from_design:
            indptr, indices, data = self._reordered(design)
            _kernels.countsketch_sorted_csr(indptr, indices, data, self._bucket_ptr,
                                            self._sorted_coef(inp), out)
        else:
            super()._apply(inp, out)

    def apply_and_rmatvec(self, design, y, row_weights=None, out=None):
        r"""Return ``(S diag(sqrt(w)) A, A.T @ y)`` with both products in one pass over A.

        For a sparse :class:`~fastnewton.linalg.Design` with ``reorder=True`` the
        bucket-grouped copy of A is read once for both (a Newton step needs the
        gradient :math:`A^T g` and the sketch of its Hessian at the same point); otherwise
        the two products are computed one after the other. The sketch is bitwise equal to
        :meth:`apply`'s; ``A.T @ y`` agrees with ``design.rmatvec(y)`` to rounding (its
        rows are summed in bucket order) and is bitwise the same for any thread count.

        Parameters
        ----------
        design : Design
        y : ndarray (n,), float64
        row_weights, out : as in :meth:`apply`
        """
        if not isinstance(design, Design):
            raise TypeError(f"design must be a fastnewton Design, got {type(design).__name__}")
        y = design._vec(y, self.n, "y")
        if not (design.sparse and self.reorder):
            return self.apply(design, row_weights=row_weights, out=out), design.rmatvec(y)
        inp = SketchInput(design, self.n, row_weights)
        out = _output(out, self.sketch_size, inp.d, False)
        out[...] = 0.0
        base = inp.design  # A itself; an intercept's ones column is added below
        indptr, indices, data = self._reordered(base)
        coef = self._sorted_coef(inp)
        y_sorted = np.empty(self.n)
        _kernels.gather(y, self._order, y_sorted)
        gbuf = np.empty((min(self.sketch_size, RMATVEC_GROUPS), base.d))
        _kernels.countsketch_rmatvec_sorted_csr(indptr, indices, data, self._bucket_ptr, coef,
                                                y_sorted, gbuf, out)
        g = np.empty(inp.d)
        sum_blocks(gbuf, g[:base.d])
        if inp.ones:
            out[:, -1] = self.apply(self._ones_column(inp))
            g[-1] = float(np.sum(y))
        return out, g

    def _reordered(self, design):
        """A's rows grouped by bucket (built on first use for this design, then reused)."""
        design = design.base
        if self._layout is None or self._layout[0] is not design:
            A = design.A
            lengths = np.diff(A.indptr)[self._order]
            indptr = np.zeros(self.n + 1, dtype=A.indptr.dtype)
            np.cumsum(lengths, out=indptr[1:])
            indices = np.empty_like(A.indices)
            data = np.empty_like(A.data)
            _kernels.scatter_csr_rows(A.indptr, A.indices, A.data, self._order, indptr, indices,
                                      data)
            self._layout = (design, indptr, indices, data)
        return self._layout[1:]

    def prepare(self, design):
        """Build the bucket-grouped copy of a :class:`Design` now (else on first apply)."""
        if not isinstance(design, Design):
            raise TypeError(f"design must be a fastnewton Design, got {type(design).__name__}")
        if design.sparse and self.reorder:
            self._reordered(design.base)
        return self
