"""Worker side of the distributed backend: one row block of the problem per object.

Everything here runs inside Dask tasks. The functions are module-level (picklable,
and the numba kernels they call come from the on-disk cache on every worker). A block
keeps a small cache of products with A (z = A x, A p), keyed by the bytes of the
vector: a block rebuilt after a worker failure simply recomputes them, with the same
bits, so recovery never changes the answer.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._threads import thread_limit
from ..hessian import gram
from ..problems import PROBLEMS
from ..sketch import CountSketch, make_sketch
from ..sketch import _kernels as sketch_kernels

__all__ = ["Block", "load_source", "source_shape", "build_block", "block_info", "block_stats",
           "block_combine",
           "block_derivatives", "block_curvatures", "block_trial_stats", "block_trial_loss"]

_CACHE_SIZE = 6


def _worker_threads():
    """Threads of the Dask worker running this task (None outside a worker)."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None


def _load_array(path):
    path = str(path)
    if path.endswith(".npz"):
        try:
            return sp.load_npz(path).tocsr()
        except (ValueError, KeyError):
            with np.load(path, allow_pickle=False) as data:
                keys = list(data.keys())
                if len(keys) != 1:
                    raise ValueError(f"{path}: expected a sparse matrix or a single array, "
                                     f"found arrays {keys}") from None
                return data[keys[0]]
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if path.endswith(".mtx"):
        import scipy.io

        return sp.csr_array(scipy.io.mmread(path))
    raise ValueError(f"unsupported file type for {path!r} (use .npz, .npy or .mtx)")


def load_source(source):
    """Materialize a block source: a dict of arrays, or of file paths loaded here."""
    out = {}
    for key, val in source.items():
        out[key] = _load_array(val) if isinstance(val, (str, bytes)) or hasattr(val, "__fspath__") \
            else val
    return out


def source_shape(source):
    """(rows, columns) of a block's A (loads the block; used once to compute offsets)."""
    return tuple(int(s) for s in load_source(source)["A"].shape)


class Block:
    """A row block: the family's problem on the block's rows, and its row offset."""

    def __init__(self, problem, row_start):
        self.problem = problem
        self.row_start = int(row_start)
        self.n = problem.n
        self._cache = {}
        self._sketches = {}
        self._layouts = {}

    def product(self, v):
        """A_block @ v, cached by the bytes of v."""
        key = v.tobytes()
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            hit = self.problem.design.matvec(v)
            self._cache[key] = hit
        return hit

    def sketch(self, spec):
        """The global sketch (identical on every worker: built from the same seed)."""
        if spec not in self._sketches:
            kind, m, n_total, seed = spec
            self._sketches[spec] = make_sketch(kind, m, n_total, seed=seed)
        return self._sketches[spec]

    def partial_sketch(self, spec, beta_plus):
        """S[:, block rows] diag(sqrt(beta+)) A_block, the block's share of the sketch.

        For CountSketch the block keeps a copy of its rows grouped by bucket, made on
        first use, so that every step streams the block once (as the single-process
        CountSketch does with its layout); other kinds go through ``apply_rows``.
        """
        sk = self.sketch(spec)
        design = self.problem.design
        if not (isinstance(sk, CountSketch) and design.sparse):
            return sk.apply_rows(design, self.row_start, row_weights=beta_plus)
        ones = design.intercept  # [A, 1]: the ones column's share is S_block sqrt(beta+)
        design = design.base
        if spec not in self._layouts:
            ptr, order, signs = sk._columns(self.row_start, self.n)
            A = design.A
            indptr = np.zeros(self.n + 1, dtype=A.indptr.dtype)
            np.cumsum(np.diff(A.indptr)[order], out=indptr[1:])
            indices, data = np.empty_like(A.indices), np.empty_like(A.data)
            sketch_kernels.scatter_csr_rows(A.indptr, A.indices, A.data, order, indptr,
                                            indices, data)
            self._layouts[spec] = (ptr, order, signs, indptr, indices, data)
        ptr, order, signs, indptr, indices, data = self._layouts[spec]
        coef = np.empty(self.n)
        sketch_kernels.sorted_row_coef(signs, order, np.sqrt(beta_plus), coef)
        out = np.zeros((sk.sketch_size, design.d + ones))
        sketch_kernels.countsketch_sorted_csr(indptr, indices, data, ptr, coef, out)
        if ones:
            out[:, -1] = sk.apply_rows(np.sqrt(beta_plus), self.row_start)
        return out


def build_block(source, row_start, family, kwargs):
    """Build the block object on a worker (the family sees only the block's rows)."""
    with thread_limit(_worker_threads()):
        data = load_source(source)
        cls = PROBLEMS[family]
        args = {k: v for k, v in data.items()}
        args.update(kwargs)
        args["lam"] = 0.0  # the ridge is global: the client adds it once
        return Block(cls(**args), row_start)


def block_info(block):
    """(length of x, the ridge of lam = 1 as the family lays it out: a float or a (d,)
    vector, e.g. 0 on an unpenalized intercept)."""
    ridge_of = getattr(block.problem, "ridge_of", None)
    return int(block.problem.d), (1.0 if ridge_of is None else ridge_of(1.0))


def _rows(block):
    return slice(0, block.n)


def _stats(block, z):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.asarray(block.problem.partial_stats(z, _rows(block)), dtype=np.float64)


def _loss_grad(block, z, stats):
    return block.problem.block_loss_grad_z(z, _rows(block), stats)


def _parts(block, z, stats):
    from ..hessian import DiagLowRank

    return DiagLowRank(*block.problem.block_parts_z(z, _rows(block), stats))


def block_combine(block, partials):
    """Global statistics from the partials (fixed order) and the loss term they carry.

    Runs on a worker because ``combine_stats`` is a method of the family (any block's
    instance will do: it only uses the family's global parameters).
    """
    stats = block.problem.combine_stats(partials)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return stats, float(block.problem.stats_loss(stats))


def block_stats(block, x):
    """Partial statistics of z = A_block x (empty for row-separable losses)."""
    with thread_limit(_worker_threads()):
        return _stats(block, block.product(x))


def block_derivatives(block, x, stats, model):
    """Loss, gradient A^T g and the Hessian-model pieces of the block at x.

    ``model`` is None (loss and gradient only), ``("exact",)`` (the block's exact
    Gram A^T B A, d x d) or ``("sketch", spec)`` (the block's partial sketch
    S_block diag(sqrt(beta+)) A_block, m x d, with the global row offset), plus the
    low-rank products A^T U and C where the family has them.
    """
    with thread_limit(_worker_threads()):
        z = block.product(x)
        loss, gz = _loss_grad(block, z, stats)
        if not np.isfinite(loss):
            return {"loss": np.inf, "grad": np.full(block.problem.d, np.nan)}
        out = {"loss": float(loss), "grad": block.problem.design.rmatvec(gz)}
        if model is None:
            return out
        parts = _parts(block, z, stats)
        design = block.problem.design
        if model[0] == "exact":
            from ..hessian import DiagLowRank

            out["H"] = gram(design, DiagLowRank(parts.beta))
        else:
            beta_plus = parts.beta_plus()
            out["SA"] = block.partial_sketch(model[1], beta_plus)
        if parts.U is not None:
            out["AU"] = design.rmatmat(parts.U)
            out["C"] = parts.C
        return out


def block_curvatures(block, x, stats, p, s):
    """Partial sums for p^T H p, p^T H s, s^T H s (without the ridge) and U^T A p, U^T A s."""
    with thread_limit(_worker_threads()):
        z = block.product(x)
        parts = _parts(block, z, stats)
        Ap = block.product(p)
        out = {"pp": float(parts.beta @ (Ap * Ap))}
        if parts.U is not None:
            out["UAp"] = parts.U.T @ Ap
        if s is not None:
            As = block.product(s)
            out["ps"] = float(parts.beta @ (Ap * As))
            out["ss"] = float(parts.beta @ (As * As))
            if parts.U is not None:
                out["UAs"] = parts.U.T @ As
        return out


def _trial_z(block, x, dirs, coefs, t):
    """A (x + t * sum_k coefs[k] dirs[k]) from cached products (no pass over A on a hit)."""
    Aq = coefs[0] * block.product(dirs[0])
    for v, c in zip(dirs[1:], coefs[1:]):
        Aq = Aq + c * block.product(v)
    return block.product(x) + t * Aq


def block_trial_stats(block, x, dirs, coefs, t):
    """Partial statistics at x + t q, q = sum coefs[k] dirs[k] (global normalizers)."""
    with thread_limit(_worker_threads()):
        return _stats(block, _trial_z(block, x, dirs, coefs, t))


def block_trial_loss(block, x, dirs, coefs, t, stats):
    """Partial loss at x + t q, q = sum coefs[k] dirs[k], given the global statistics."""
    with thread_limit(_worker_threads()):
        z = _trial_z(block, x, dirs, coefs, t)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss = float(_loss_grad(block, z, stats)[0])
        return loss if np.isfinite(loss) else np.inf


def block_hessp(block, x, stats, v):
    """The block's share of the Hessian-vector product: A_k^T (beta_k * (A_k v))."""
    with thread_limit(_worker_threads()):
        parts = _parts(block, block.product(x), stats)
        return block.problem.design.normal_matvec(parts.beta, v)[0]
