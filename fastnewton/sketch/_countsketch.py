"""CountSketch: one signed entry per column of S (per row of A)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._validation import check_rng, check_scalar, check_vector
from ..exceptions import ValidationError
from ..linalg._design import Design
from . import _kernels
from ._hashing import bucket_of, key_from_seed, row_hash, sign_of

__all__ = ["CountSketch"]


class CountSketch:
    r"""CountSketch :math:`S \in \mathbb{R}^{m \times n}`: row i of A goes to bucket h(i) with sign s(i).

    ``S @ A`` costs one pass over A. The bucket and sign of row i are a hash of
    ``(key, i)``, the key drawn once from ``seed``: the sketch of any row block, computed
    anywhere, adds up to the sketch of the whole matrix (see :meth:`apply_rows`).

    For a (1 ± eps) subspace embedding of a d-dimensional subspace with probability
    1 - delta, CountSketch needs m = O(d^2 / (eps^2 delta)) rows (Clarkson-Woodruff,
    Nelson-Nguyen); in Newton methods m of a few times d already gives a useful
    preconditioner or approximate Hessian, and the globalization makes up for the rest.

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
        check_scalar(sketch_size, "sketch_size", low=1, integer=True)
        check_scalar(n, "n", low=1, integer=True)
        self.sketch_size = int(sketch_size)
        self.n = int(n)
        self.key = key_from_seed(check_rng(seed))
        self.shape = (self.sketch_size, self.n)
        self.dtype = np.dtype(np.float64)
        h = row_hash(self.key, np.arange(self.n))
        self._bucket = bucket_of(h, self.sketch_size)
        self._sign = sign_of(h)
        # Layout for bucket-parallel accumulation: rows grouped by bucket, in row order.
        self._order, self._bucket_ptr = _group_by_bucket(self._bucket, self.sketch_size)
        self.reorder = bool(reorder)
        self._layout = None  # (design, reordered indptr, indices, data)

    def _rows_hash(self, row_start, n_rows):
        if row_start == 0 and n_rows == self.n:
            return self._bucket, self._sign, self._order, self._bucket_ptr
        h = row_hash(self.key, np.arange(row_start, row_start + n_rows))
        bucket = bucket_of(h, self.sketch_size)
        order, ptr = _group_by_bucket(bucket, self.sketch_size)
        return bucket, sign_of(h), order, ptr

    def apply(self, A, row_weights=None, out=None):
        r"""Return :math:`S\,\mathrm{diag}(\sqrt{w})\,A` (dense, float64, shape (m, d) or (m,)).

        Parameters
        ----------
        A : sparse matrix, ndarray (n, d) or vector (n,), or a validated ``Design``
        row_weights : array_like (n,), optional
            Non-negative weights w; their square roots scale the rows of A in the same pass.
        out : ndarray (m, d), optional
            Reused output buffer (overwritten).
        """
        return self._apply(A, row_weights, 0, self.n, out)

    def apply_rows(self, A_block, row_start, row_weights=None, out=None):
        """Partial sketch of rows ``row_start .. row_start + A_block.shape[0]`` of the full input.

        Summed over any partition of the rows it equals ``S @ A``: rows keep their
        global bucket and sign, so only the order of the final additions differs.
        """
        check_scalar(row_start, "row_start", low=0, integer=True)
        n_rows = A_block.shape[0]
        if row_start + n_rows > self.n:
            raise ValidationError(
                f"rows {row_start}..{row_start + n_rows} exceed the sketch's n = {self.n}")
        return self._apply(A_block, row_weights, int(row_start), n_rows, out)

    def _apply(self, A, row_weights, row_start, n_rows, out):
        vector = False
        if isinstance(A, Design):
            design = A
        elif not sp.issparse(A) and np.ndim(A) == 1:
            vector = True
            design = Design(np.asarray(A).reshape(-1, 1), "A")
        else:
            design = Design(A, "A")
        if design.n != n_rows:
            raise ValidationError(f"A has {design.n} rows but the sketch expects {n_rows}")
        bucket, sign, order, ptr = self._rows_hash(row_start, n_rows)
        coef = sign
        if row_weights is not None:
            w = check_vector(row_weights, n_rows, "row_weights")
            if (w < 0).any():
                raise ValidationError("row_weights must be non-negative")
            coef = sign * np.sqrt(w)
        m, d = self.sketch_size, design.d
        if out is None:
            out = np.zeros((m, d))
        else:
            if out.shape != (m, d) or out.dtype != np.float64:
                raise ValidationError(f"out must be a float64 array of shape ({m}, {d})")
            out[...] = 0.0
        if design.sparse and self.reorder and isinstance(A, Design) and n_rows == self.n:
            indptr, indices, data = self._reordered(design)
            _kernels.countsketch_sorted_csr(indptr, indices, data, ptr, coef[order], out)
        elif design.sparse:
            Ac = design.A
            _kernels.countsketch_csr(Ac.indptr, Ac.indices, Ac.data, order, ptr, coef, out)
        else:
            np.add.at(out, bucket, coef[:, None] * design.A)
        return out[:, 0] if vector else out

    def _reordered(self, design):
        """A's rows grouped by bucket (built on first use for this design, then reused)."""
        if self._layout is None or self._layout[0] is not design:
            Ap = design.A[self._order]
            self._layout = (design, Ap.indptr, Ap.indices, Ap.data)
        return self._layout[1:]

    def __matmul__(self, A):
        return self.apply(A)

    @property
    def T(self):
        return self.as_linear_operator().T

    def to_sparse(self):
        """S as a scipy CSR array (m x n)."""
        return sp.csr_array((self._sign, (self._bucket, np.arange(self.n))), shape=self.shape)

    def to_dense(self):
        """S as a dense (m, n) array (tests and small problems only)."""
        return self.to_sparse().toarray()

    def as_linear_operator(self):
        """S as a scipy ``LinearOperator`` (matvec, matmat and adjoint)."""
        return spla.aslinearoperator(self.to_sparse())

    def __repr__(self):
        return f"CountSketch(sketch_size={self.sketch_size}, n={self.n})"


def _group_by_bucket(bucket, m):
    order = np.argsort(bucket, kind="stable")
    ptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(bucket, minlength=m), out=ptr[1:])
    return order.astype(np.int64), ptr
