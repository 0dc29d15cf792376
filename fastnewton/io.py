"""Files in and out: loading inputs without pickle, atomic writes, checkpoints.

Readers
-------
:func:`load_array` reads a matrix or vector from

- ``.npz``: a scipy sparse matrix saved by ``scipy.sparse.save_npz``, or plain arrays
  saved by ``np.savez`` (one array, or pick one with ``path.npz:key``);
- ``.npy``: loaded with ``allow_pickle=False``;
- ``.mtx`` (also ``.mtx.gz``): Matrix Market, by ``scipy.io.mmread``;
- ``.svm``, ``.svmlight``, ``.libsvm``: svmlight / libsvm text (:func:`load_svmlight`);
  the matrix, or its labels with ``path.svm:labels``.

Nothing is ever unpickled. A missing file raises ``FileNotFoundError``; a file that
cannot be parsed (truncated, wrong format, object arrays) raises :class:`InputFileError`
(a ``ValueError``); both name the argument and the path.

Writers
-------
Every writer goes through :func:`atomic_write`: the data is written to a temporary
file in the destination's directory, flushed and ``fsync``-ed, then renamed over the
destination with ``os.replace`` (atomic on POSIX), and the directory is ``fsync``-ed.
A process killed at any point leaves either the old file or the new one, never a
partial one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np
import scipy.io
import scipy.sparse as sp

from .exceptions import ValidationError

__all__ = [
    "InputFileError",
    "CheckpointMismatchError",
    "MATRIX_SUFFIXES",
    "load_array",
    "load_svmlight",
    "save_array",
    "save_svmlight",
    "atomic_write",
    "write_json",
    "save_npz",
    "sha256_file",
    "save_checkpoint",
    "load_checkpoint",
]

#: Recognized file suffixes and their formats.
MATRIX_SUFFIXES = {
    ".npz": "npz",
    ".npy": "npy",
    ".mtx": "mtx",
    ".mtx.gz": "mtx",
    ".svm": "svmlight",
    ".svmlight": "svmlight",
    ".libsvm": "svmlight",
}
CHECKPOINT_VERSION = 1
# What reading a damaged file can raise, besides our own errors.
_READ_ERRORS = (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, IndexError,
                UnicodeDecodeError, OverflowError, TypeError)


class InputFileError(ValidationError):
    """An input file exists but cannot be read as the format its suffix names."""


class CheckpointMismatchError(ValidationError):
    """A checkpoint was written by a different problem or different solver options."""


def file_format(path):
    """The format of ``path`` from its suffix (``"npz"``, ``"npy"``, ``"mtx"``, ``"svmlight"``)."""
    name = os.fspath(path).lower()
    for suffix in sorted(MATRIX_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return MATRIX_SUFFIXES[suffix]
    return None


def split_key(spec):
    """Split ``"file.npz:key"`` into ``("file.npz", "key")`` (key None when absent)."""
    spec = os.fspath(spec)
    head, sep, tail = spec.rpartition(":")
    if sep and file_format(head) is not None and tail and "/" not in tail and "\\" not in tail:
        return head, tail
    return spec, None


def load_array(spec, name="array"):
    """Load a matrix or vector from a file (see the module docstring for the formats).

    Parameters
    ----------
    spec : str or path
        ``path`` or ``path:key`` (a member of a plain ``.npz``; ``labels`` or ``matrix``
        of an svmlight file).
    name : str
        The argument this file is for (used in error messages).

    Returns
    -------
    scipy.sparse matrix or ndarray
        Not validated beyond parsing: pass it through the problem constructor.
    """
    path, key = split_key(spec)
    fmt = file_format(path)
    if fmt is None:
        raise InputFileError(
            f"{name}: cannot tell the format of {path!r} from its suffix; use one of "
            f"{', '.join(MATRIX_SUFFIXES)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such file {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path!r} is a directory, expected a {fmt} file")
    try:
        if fmt == "npz":
            return _load_npz(path, key, name)
        if key is not None and fmt != "svmlight":
            raise InputFileError(f"{name}: a key (':{key}') only applies to .npz and svmlight files")
        if fmt == "npy":
            return np.load(path, allow_pickle=False)
        if fmt == "mtx":
            A = scipy.io.mmread(path)
            return sp.csr_array(A) if sp.issparse(A) else np.asarray(A)
        X, y = load_svmlight(path)
        if key in (None, "matrix", "X", "A"):
            return X
        if key in ("labels", "y", "b"):
            return y
        raise InputFileError(f"{name}: unknown svmlight member {key!r}; use 'matrix' or 'labels'")
    except InputFileError:
        raise
    except PermissionError as exc:
        raise PermissionError(f"{name}: cannot read {path!r}: {exc.strerror}") from None
    except (OSError, *_READ_ERRORS) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{name}: cannot read {path!r} as {fmt} (truncated or not a "
                             f"{fmt} file?): {reason}") from None


def _load_npz(path, key, name):
    with np.load(path, allow_pickle=False) as npz:
        files = list(npz.files)
        if "format" in files and key is None:
            return sp.load_npz(path)
        if key is not None:
            if key not in files:
                raise InputFileError(f"{name}: {path!r} has no array {key!r}; it holds {files}")
            return npz[key]
        if len(files) != 1:
            raise InputFileError(f"{name}: {path!r} holds {len(files)} arrays {files}; "
                                 f"pick one with {path}:KEY")
        return npz[files[0]]


def load_svmlight(path, n_features=None, *, zero_based="auto", dtype=np.float64):
    """Read an svmlight / libsvm text file into ``(X, y)`` without scikit-learn.

    Each line is ``label index:value index:value ... [# comment]``; ``qid:...`` tokens
    are ignored. Indices are 1-based (libsvm) unless ``zero_based`` is True, or
    ``"auto"`` finds an index 0.

    Returns
    -------
    X : scipy.sparse.csr_array, shape (n_samples, n_features)
        Duplicate indices within a line are an error; indices are sorted per row.
    y : ndarray (n_samples,)
    """
    labels, rows, cols, vals = [], [], [], []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.split(b"#", 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            try:
                labels.append(float(tokens[0]))
            except ValueError:
                raise InputFileError(f"{path}: line {lineno}: label {tokens[0][:30]!r} is not a number") from None
            row = len(labels) - 1
            for tok in tokens[1:]:
                idx, sep, val = tok.partition(b":")
                if not sep:
                    raise InputFileError(f"{path}: line {lineno}: expected index:value, got {tok[:30]!r}")
                if idx == b"qid":
                    continue
                try:
                    cols.append(int(idx))
                    vals.append(float(val))
                except ValueError:
                    raise InputFileError(f"{path}: line {lineno}: bad entry {tok[:30]!r}") from None
                rows.append(row)
    if not labels:
        raise InputFileError(f"{path}: no data lines")
    cols = np.asarray(cols, dtype=np.int64)
    if zero_based == "auto":
        zero_based = bool(cols.size and cols.min() == 0)
    if not zero_based:
        cols -= 1
    if cols.size and cols.min() < 0:
        raise InputFileError(f"{path}: feature indices must be >= {0 if zero_based else 1}")
    width = int(cols.max()) + 1 if cols.size else 0
    if n_features is None:
        n_features = width
    elif width > n_features:
        raise InputFileError(f"{path}: feature index {width - 1} >= n_features={n_features}")
    rows = np.asarray(rows, dtype=np.int64)
    if np.unique(rows * max(n_features, 1) + cols).size != cols.size:
        raise InputFileError(f"{path}: a line repeats a feature index")
    X = sp.csr_array(sp.coo_array((np.asarray(vals, dtype=dtype), (rows, cols)),
                                  shape=(len(labels), n_features)))
    X.sort_indices()
    if X.shape[1] < 2**31 - 1 and X.nnz < 2**31 - 1:
        X.indices = X.indices.astype(np.int32)
        X.indptr = X.indptr.astype(np.int32)
    return X, np.asarray(labels, dtype=np.float64)


# -- writing --------------------------------------------------------------------------------
def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. not permitted on this platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Context manager yielding a file object whose content replaces ``path`` atomically.

    The file appears at ``path`` only when the ``with`` body finishes without error (and
    after its data is on disk); on error the temporary file is removed and ``path`` is
    untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def save_npz(path, **arrays):
    """``np.savez(path, **arrays)`` atomically (no object arrays: nothing to unpickle)."""
    for key, val in arrays.items():
        if np.asarray(val).dtype.hasobject:
            raise TypeError(f"{key} is an object array; only numeric/string arrays are saved")
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def write_json(path, obj):
    """Write ``obj`` as indented JSON atomically (NaN/inf are written as null)."""
    text = json.dumps(_jsonable(obj), indent=1, allow_nan=False)
    with atomic_write(path, "w") as fh:
        fh.write(text + "\n")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def save_array(path, array, labels=None):
    """Write a matrix or vector atomically in the format of ``path``'s suffix.

    ``labels`` is required for (and only used by) svmlight files.
    """
    fmt = file_format(path)
    if fmt == "npy":
        with atomic_write(path) as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
    elif fmt == "npz":
        if sp.issparse(array):
            with atomic_write(path) as fh:
                sp.save_npz(fh, sp.csr_array(array), compressed=False)
        else:
            save_npz(path, array=np.asarray(array))
    elif fmt == "mtx":
        buf = io.BytesIO()
        scipy.io.mmwrite(buf, array, precision=17)
        with atomic_write(path) as fh:
            fh.write(buf.getvalue())
    elif fmt == "svmlight":
        if labels is None:
            raise ValueError("labels are required to write an svmlight file")
        save_svmlight(path, array, labels)
    else:
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r} from its suffix; "
                         f"use one of {', '.join(MATRIX_SUFFIXES)}")


def save_svmlight(path, X, y):
    """Write ``(X, y)`` as a 1-based svmlight file atomically (values in full precision)."""
    X = sp.csr_array(X)
    X.sort_indices()
    y = np.asarray(y, dtype=np.float64)
    with atomic_write(path, "w") as fh:
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j + 1}:{v!r}" for j, v in
                             zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist()))
            fh.write(f"{float(y[i])!r} {feats}\n")


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# -- checkpoints ----------------------------------------------------------------------------
def save_checkpoint(path, state, fingerprint):
    """Save a :class:`~fastnewton.newton.NewtonState` with the problem's fingerprint, atomically."""
    arrays = dict(state.to_arrays())
    arrays["fingerprint"] = np.str_(fingerprint)
    arrays["checkpoint_version"] = np.int64(CHECKPOINT_VERSION)
    save_npz(path, **arrays)


def load_checkpoint(path, fingerprint):
    """Load a checkpoint written by :func:`save_checkpoint` for the same problem.

    Raises
    ------
    CheckpointMismatchError
        The checkpoint's fingerprint differs (another problem, other inputs or options).
    InputFileError
        The file is not a checkpoint or cannot be read.
    """
    from .newton import NewtonState

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, *_READ_ERRORS) as exc:
        raise InputFileError(f"checkpoint: cannot read {path!r}: {exc}") from None
    if "fingerprint" not in arrays or "checkpoint_version" not in arrays:
        raise InputFileError(f"checkpoint: {path!r} is not a fastnewton checkpoint")
    if str(arrays["fingerprint"]) != fingerprint:
        raise CheckpointMismatchError(
            f"checkpoint: {path!r} was written for a different problem or different solver "
            f"options (fingerprint {str(arrays['fingerprint'])[:12]}... != {fingerprint[:12]}...); "
            f"delete it or point --checkpoint elsewhere")
    return NewtonState.from_arrays(arrays)
