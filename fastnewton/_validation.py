"""Input validation: the only place that turns user input into what kernels may see.

Kernels never check anything, so everything that could make a kernel read out of
bounds (index ranges, ``indptr`` monotonicity and length) is checked here, in Python,
before any kernel is called.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from .exceptions import ValidationError

__all__ = [
    "check_matrix",
    "check_vector",
    "check_weights",
    "check_scalar",
    "check_rng",
    "check_x",
]

_FLOAT_DTYPES = (np.float32, np.float64)


def _value_dtype(dtype, name):
    """Return the float dtype values of ``dtype`` are stored in, or raise TypeError."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fiub":
        if dtype in (np.dtype(np.float32), np.dtype(np.float64)):
            return dtype
        return np.dtype(np.float64)
    if dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {dtype}")
    raise TypeError(f"{name} must have a numeric dtype, got dtype {dtype}")


def check_matrix(A, name="A", *, accept_dense=True, copy=False):
    """Validate a design matrix and return it as canonical CSR or a C-contiguous ndarray.

    Parameters
    ----------
    A : scipy.sparse matrix or array (CSR, CSC, COO, any other format), or array_like
        The matrix. float32 and float64 values are kept; other real dtypes are upcast
        to float64. int32 and int64 sparse indices are kept.
    name : str
        The argument's name, used in error messages.
    accept_dense : bool
        Whether a dense array is allowed (it is returned as a 2-D ndarray).

    Returns
    -------
    scipy.sparse.csr_array or numpy.ndarray
        Sparse input comes back as CSR with sorted, unique indices (on the caller's
        arrays when they already are; a copy otherwise); dense input as a C-contiguous
        2-D array.

    Raises
    ------
    TypeError
        Non-numeric or complex values, or an unsupported container.
    ValidationError
        Empty matrix, non-finite values, or a malformed CSR/CSC structure (indptr not
        monotone or of the wrong length, indices out of range).

    Notes
    -----
    Any valid scipy matrix is accepted: unsorted indices and duplicate entries (summed,
    as scipy sums them) are canonicalized into a copy, never in the caller's arrays. A
    CSR whose rows are already sorted and unique is wrapped without copying its arrays;
    other formats are converted by scipy (one copy). Duplicates are summed in their
    original order, left to right, as ``sum_duplicates`` does after a stable sort (which
    scipy's sort is for rows of up to 16 entries; for longer rows with 3 or more copies of
    an index scipy's own order, hence its last bits, may differ).
    """
    if sp.issparse(A):
        return _check_sparse(A, name, copy=copy)
    if not accept_dense:
        raise TypeError(f"{name} must be a scipy.sparse matrix, got {type(A).__name__}")
    if isinstance(A, (str, bytes)) or A is None:
        raise TypeError(f"{name} must be a 2-D numeric array or scipy.sparse matrix, got {type(A).__name__}")
    try:
        arr = np.asarray(A)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to a numeric array: {exc}") from None
    dtype = _value_dtype(arr.dtype, name)
    if arr.ndim != 2:
        raise ValidationError(f"{name} must be 2-D, got an array with {arr.ndim} dimension(s)")
    _check_nonempty(arr.shape, name)
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if copy and np.shares_memory(arr, A):
        arr = arr.copy()
    if not _all_finite(arr.reshape(-1)):
        raise ValidationError(f"{name} contains NaN or infinite values")
    return arr


def _check_nonempty(shape, name):
    if shape[0] == 0 or shape[1] == 0:
        raise ValidationError(f"{name} is empty: shape {shape[0]} x {shape[1]}")


def _check_sparse(A, name, copy=False):
    fmt = A.format
    dtype = _value_dtype(A.dtype, name)  # type check before any conversion
    _check_nonempty(A.shape, name)
    if fmt in ("csr", "csc"):
        indptr, indices, data = _compressed_arrays(A, name)
        canonical = _check_compressed_structure(indptr, indices, data, A.shape, fmt, name)
        if fmt == "csc":
            # Safe now that the structure is known to be valid; scipy's conversion keeps
            # duplicates (summed below) and sorts the indices of every row.
            A = sp.csc_array((data, indices, indptr), shape=A.shape).tocsr()
            indptr, indices, data = _compressed_arrays(A, name)
            canonical = _check_compressed_structure(indptr, indices, data, A.shape, "csr", name)
            copy = False
    else:
        if fmt == "coo":
            row, col = A.coords if hasattr(A, "coords") else (A.row, A.col)
            if row.size and (row.min() < 0 or row.max() >= A.shape[0]):
                raise ValidationError(f"{name} (COO) has row indices outside [0, {A.shape[0]})")
            if col.size and (col.min() < 0 or col.max() >= A.shape[1]):
                raise ValidationError(f"{name} (COO) has column indices outside [0, {A.shape[1]})")
        # scipy's own conversion (COO duplicates are summed, its documented meaning);
        # the result is a fresh copy, canonicalized below if scipy left it unsorted.
        A = A.tocsr()
        indptr, indices, data = _compressed_arrays(A, name)
        canonical = _check_compressed_structure(indptr, indices, data, A.shape, "csr", name)
        copy = False
    if data.dtype != dtype:
        data = data.astype(dtype)
        copy = False
    if canonical:
        if not _all_finite(data):
            raise ValidationError(f"{name} contains NaN or infinite values")
        if copy:
            indptr, indices, data = indptr.copy(), indices.copy(), data.copy()
    else:  # the values are checked while they are copied
        indptr, indices, data, nonfinite = _canonicalize(indptr, indices, data, A.shape[1])
        if nonfinite:
            raise ValidationError(f"{name} contains NaN or infinite values")
    return wrap_csr(data, indices, indptr, A.shape)


def wrap_csr(data, indices, indptr, shape):
    """A ``scipy.sparse.csr_array`` on the given canonical arrays, without copying them.

    scipy's constructor may copy or downcast index arrays; the arrays here have been
    validated already, so they are attached as they are and flagged canonical.
    """
    out = sp.csr_array(tuple(int(s) for s in shape), dtype=data.dtype)
    out.data, out.indices, out.indptr = data, indices, indptr
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


def _compressed_arrays(A, name):
    """``(indptr, indices, data)`` of a CSR/CSC matrix as contiguous 1-D arrays of one
    integer dtype (int32, or int64 when either array is int64 or holds other integers).
    No copy when they already are."""
    fmt = A.format.upper()
    indptr, indices, data = np.asarray(A.indptr), np.asarray(A.indices), np.asarray(A.data)
    for arr, what in ((indptr, "indptr"), (indices, "indices"), (data, "data")):
        if what != "data" and arr.dtype.kind not in "iu":
            raise TypeError(f"{name}.{what} ({fmt}) must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValidationError(f"{name}.{what} ({fmt}) must be 1-D, got shape {arr.shape}")
    if indptr.dtype == np.int32 and indices.dtype == np.int32:
        idx_dtype = np.int32
    else:
        idx_dtype = np.int64
    return (np.ascontiguousarray(indptr, dtype=idx_dtype),
            np.ascontiguousarray(indices, dtype=idx_dtype), np.ascontiguousarray(data))


def _check_compressed_structure(indptr, indices, data, shape, fmt, name):
    """Check indptr/indices of a CSR or CSC matrix before anything reads through them.

    ``indptr`` first (length, start, monotone, end within ``indices`` and ``data``),
    then, in one pass over the indices, their range and whether every row is sorted
    without duplicates. Returns that last property (True: canonical); unsorted and
    duplicate indices are valid (scipy sums duplicates) and are canonicalized later.
    """
    from .linalg import _canon_kernels as _canon

    fmt = fmt.upper()
    n_major, n_minor = (shape if fmt == "CSR" else shape[::-1])
    if indptr.size != n_major + 1:
        raise ValidationError(
            f"{name}.indptr ({fmt}) has {indptr.size} entries, expected {n_major + 1} for shape {shape}"
        )
    if indptr[0] != 0:
        raise ValidationError(f"{name}.indptr ({fmt}) must start at 0, got {indptr[0]}")
    if n_major and (indptr[1:] < indptr[:-1]).any():
        raise ValidationError(f"{name}.indptr ({fmt}) is not monotone non-decreasing")
    nnz = int(indptr[-1])
    if nnz > indices.size or nnz > data.size:
        raise ValidationError(
            f"{name}.indptr ({fmt}) ends at {nnz} but indices/data hold only "
            f"{min(indices.size, data.size)} entries"
        )
    if nnz == 0:
        return True
    nb = int(min(1024, max(1, n_major // 1024)))
    part = np.empty((nb, 3), dtype=np.int64)
    _canon.compressed_structure_blocks(indptr, indices, nb, part)
    lo, hi = int(part[:, 0].min()), int(part[:, 1].max())
    if lo < 0 or hi >= n_minor:
        raise ValidationError(
            f"{name}.indices ({fmt}) has entries outside [0, {n_minor}): min {lo}, max {hi}"
        )
    # chunk counts and row-boundary corrections fall in different chunks: sum them all
    return int(part[:, 2].sum()) == 0


def _all_finite(data):
    """Whether every value of a 1-D array is finite (no temporary of A's size).

    A finite sum proves it in one read (a NaN or infinity makes the sum NaN or
    infinite); a sum that is not finite (a non-finite value, or an overflow of finite
    ones) is settled by the exact test, in chunks."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(data)):
            return True
    chunk = 1 << 20
    for s in range(0, data.size, chunk):
        if not np.isfinite(data[s:s + chunk]).all():
            return False
    return True


def _canonicalize(indptr, indices, data, n_cols):
    """A canonical copy (rows sorted, duplicates summed as scipy sums them) of valid CSR
    arrays, and the number of NaN and infinite values among ``data``; never writes into
    the arguments.

    Two passes over fixed row blocks, each in parallel: the first sorts the rows that
    need it and counts each row's distinct indices, the second writes every row at its
    final place in arrays of the final size (no compaction, no oversized buffer) and
    checks the values it reads.
    """
    from .linalg import _canon_kernels as _canon

    n = indptr.size - 1
    nnz = int(indptr[-1])
    nb = -(-n // _canon.CANON_BLOCK_ROWS)
    new_indptr = np.empty(n + 1, dtype=indptr.dtype)
    new_indptr[0] = 0
    kind = np.empty(n, dtype=np.uint8)
    slot = np.empty(nnz, dtype=np.uint8)  # written for the unsorted short rows only
    block_nnz = np.empty(nb, dtype=np.int64)
    # sort keys index * 2**7 + position: int32 where they fit (twice the lanes)
    small_max = _canon.SMALL_ROW if n_cols < 2**56 else 0
    pad = np.int32(2**31 - 1) if n_cols < 2**24 else np.int64(2**63 - 1)
    _canon.plan_canonical_rows(indptr, indices, pad, small_max, new_indptr[1:], kind, slot,
                                 block_nnz)
    block_start = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(block_nnz, out=block_start[1:])
    new_nnz = int(block_start[-1])
    new_indices = np.empty(new_nnz, dtype=indices.dtype)
    new_data = np.empty(new_nnz, dtype=data.dtype)
    nonfinite = np.empty(nb, dtype=np.int64)
    _canon.write_canonical_rows(indptr, indices, data, kind, slot, block_start, new_indptr,
                                  new_indices, new_data, nonfinite)
    return new_indptr, new_indices, new_data, int(nonfinite.sum())


def check_vector(v, n, name, *, allow_none=False):
    """Validate a 1-D float vector of length ``n`` (returned as a float64 array)."""
    if v is None:
        if allow_none:
            return None
        raise TypeError(f"{name} is required, got None")
    if sp.issparse(v):
        raise TypeError(f"{name} must be a dense 1-D array, got a scipy.sparse matrix")
    if isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be a numeric vector, got {type(v).__name__}")
    try:
        arr = np.asarray(v)
    except Exception as exc:
        raise TypeError(f"{name} could not be converted to a numeric array: {exc}") from None
    _value_dtype(arr.dtype, name)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValidationError(f"{name} has {arr.shape[0]} entries, expected {n}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not _all_finite(arr.reshape(-1)):
        raise ValidationError(f"{name} contains NaN or infinite values")
    return arr


def check_x(x, d, name="x"):
    """Validate a point in parameter space (length ``d``)."""
    return check_vector(x, d, name)


def check_weights(w, n, name="w", *, allow_none=True):
    """Validate non-negative row weights: a scalar or an n-vector; returns an n-vector or None."""
    if w is None:
        if allow_none:
            return None
        raise TypeError(f"{name} is required, got None")
    if np.isscalar(w) or (isinstance(w, np.ndarray) and w.ndim == 0):
        if isinstance(w, (str, bytes)) or isinstance(w, bool):
            raise TypeError(f"{name} must be a real number or an array, got {type(w).__name__}")
        val = float(check_scalar(w, name, low=0.0))
        return np.full(n, val)
    arr = check_vector(w, n, name)
    if (arr < 0).any():
        raise ValidationError(f"{name} must be non-negative, got a minimum of {arr.min():g}")
    return arr


def check_scalar(value, name, *, low=None, high=None, low_inclusive=True, integer=False):
    """Validate a finite real (or integer) scalar within optional bounds."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.number)):
        kind = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    if integer and not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be real, got {value!r}")
    if not np.isfinite(value):
        raise ValidationError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValidationError(f"{name} must be {op} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValidationError(f"{name} must be <= {high}, got {value!r}")
    return value


def check_rng(seed):
    """Normalize ``seed`` (None, int, SeedSequence or Generator) to a numpy Generator."""
    if isinstance(seed, np.random.RandomState):
        raise TypeError("seed must be None, an int, a SeedSequence or a numpy Generator; "
                        "legacy RandomState is not supported")
    if isinstance(seed, bool):
        raise TypeError("seed must be None, an int, a SeedSequence or a numpy Generator, got bool")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"seed must be None, an int, a SeedSequence or a numpy Generator: {exc}") from None
