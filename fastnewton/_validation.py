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
        Sparse input comes back as CSR with sorted, unique indices; dense input as a
        C-contiguous 2-D array.

    Raises
    ------
    TypeError
        Non-numeric or complex values, or an unsupported container.
    ValidationError
        Empty matrix, non-finite values, or a malformed CSR/CSC structure (indptr not
        monotone or of the wrong length, indices out of range, unsorted or duplicate
        indices within a row).
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
    if not np.isfinite(arr).all():
        raise ValidationError(f"{name} contains NaN or infinite values")
    return arr


def _check_nonempty(shape, name):
    if shape[0] == 0 or shape[1] == 0:
        raise ValidationError(f"{name} is empty: shape {shape[0]} x {shape[1]}")


def _check_sparse(A, name, copy=False):
    fmt = A.format
    _value_dtype(A.dtype, name)  # type check before any conversion
    _check_nonempty(A.shape, name)
    if fmt in ("csr", "csc"):
        _check_compressed_structure(A, name)
        if fmt == "csc":
            # Conversion is safe now that the structure is known to be valid.
            A = A.tocsr()
            copy = False
    elif fmt == "coo":
        row, col = A.coords if hasattr(A, "coords") else (A.row, A.col)
        if row.size and (row.min() < 0 or row.max() >= A.shape[0]):
            raise ValidationError(f"{name} (COO) has row indices outside [0, {A.shape[0]})")
        if col.size and (col.min() < 0 or col.max() >= A.shape[1]):
            raise ValidationError(f"{name} (COO) has column indices outside [0, {A.shape[1]})")
        A = A.tocsr()  # sums duplicate entries, the documented COO meaning
        copy = False
    else:
        A = A.tocsr()
        copy = False
    dtype = _value_dtype(A.dtype, name)
    indptr, indices, data = A.indptr, A.indices, A.data
    if data.dtype != dtype:
        data = data.astype(dtype)
    idx_dtype = np.int64 if indices.dtype == np.int64 or indptr.dtype == np.int64 else np.int32
    indptr = np.ascontiguousarray(indptr, dtype=idx_dtype)
    indices = np.ascontiguousarray(indices, dtype=idx_dtype)
    data = np.ascontiguousarray(data)
    if copy:
        indptr, indices, data = indptr.copy(), indices.copy(), data.copy()
    if not np.isfinite(data).all():
        raise ValidationError(f"{name} contains NaN or infinite values")
    out = sp.csr_array((data, indices, indptr), shape=A.shape)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


def _check_compressed_structure(A, name):
    """Check indptr/indices of a CSR or CSC matrix before anything reads through them."""
    fmt = A.format.upper()
    n_major, n_minor = (A.shape if A.format == "csr" else A.shape[::-1])
    indptr, indices = np.asarray(A.indptr), np.asarray(A.indices)
    for arr, what in ((indptr, "indptr"), (indices, "indices")):
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name}.{what} ({fmt}) must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValidationError(f"{name}.{what} ({fmt}) must be 1-D")
    if indptr.size != n_major + 1:
        raise ValidationError(
            f"{name}.indptr ({fmt}) has {indptr.size} entries, expected {n_major + 1} for shape {A.shape}"
        )
    if indptr[0] != 0:
        raise ValidationError(f"{name}.indptr ({fmt}) must start at 0, got {indptr[0]}")
    steps = np.diff(indptr)
    if steps.size and steps.min() < 0:
        raise ValidationError(f"{name}.indptr ({fmt}) is not monotone non-decreasing")
    nnz = int(indptr[-1])
    if nnz > indices.size or nnz > np.asarray(A.data).size:
        raise ValidationError(
            f"{name}.indptr ({fmt}) ends at {nnz} but indices/data hold only "
            f"{min(indices.size, np.asarray(A.data).size)} entries"
        )
    ind = indices[:nnz]
    if nnz:
        lo, hi = ind.min(), ind.max()
        if lo < 0 or hi >= n_minor:
            raise ValidationError(
                f"{name}.indices ({fmt}) has entries outside [0, {n_minor}): min {lo}, max {hi}"
            )
        # Within each row, indices must increase strictly (sorted, no duplicates).
        d = np.diff(ind.astype(np.int64))
        row_start = np.zeros(nnz, dtype=bool)
        row_start[indptr[:-1][steps > 0]] = True
        bad = (d <= 0) & ~row_start[1:]
        if bad.any():
            k = int(np.flatnonzero(bad)[0]) + 1
            what = "duplicate" if d[k - 1] == 0 else "unsorted"
            raise ValidationError(
                f"{name}.indices ({fmt}) has {what} entries within a row/column (at position {k}); "
                f"call {name}.sum_duplicates() (which also sorts) before passing it"
            )


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
    if not np.isfinite(arr).all():
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
