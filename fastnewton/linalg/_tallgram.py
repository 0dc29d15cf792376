"""Gram matrix X^T X of a tall dense matrix on numba's threads.

The Gram of a sketch, (S A)^T (S A), is the largest dense product of a sketched Newton
step. Left to a multithreaded OpenBLAS it runs fast in isolation but slows the numba
kernels around it: OpenBLAS's worker threads spin for a while after each call, as do
numba's OpenMP threads after theirs, so with as many threads as cores the two pools
take turns on the same cores (measured on 2 cores, n = 1e6, d = 500, m = 4000: sketch +
Gram 49 ms on 2 threads against 50 ms on 1, while the parts alone took 17 + 14 ms). A
pool of Python threads running single-threaded BLAS calls still lost about 8 ms per
call to numba's spinning workers.

:func:`tall_gram` therefore runs on numba's own threads: X is split into a fixed number
of row blocks (chosen from the shape only), each thread calls a single-threaded BLAS
``syrk`` on its blocks (:mod:`._blas`), and the partial Grams are summed in block order.
The blocks, hence the bits of the result, do not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .._threads import blas_for
from ._blas import dsyrk

__all__ = ["tall_gram", "gram_row_blocks"]

#: Fewest rows of X per block. Thinner blocks cost more at one thread (``syrk`` on fewer
#: rows, nb d^2 partial sums): measured for m = 8000, d = 1000 on 1 thread 2 blocks
#: +2 %, 4 blocks +6 %, 8 blocks +11 % over one block; on 2 threads 2 blocks ran 1.95x.
MIN_BLOCK_ROWS = 1024
#: Fewest flops per block (below this, one block: threading would not pay).
MIN_BLOCK_FLOPS = 1e7
#: Most blocks (enough for 16 threads; the partial Grams cost nb d^2 memory).
MAX_BLOCKS = 16

_UPLO_TRANS = np.frombuffer(b"LN", dtype=np.uint8)  # 'L' of column-major = upper of C order
_ALPHA_BETA = np.array([1.0, 0.0])


def gram_row_blocks(m, d):
    """Number of row blocks of :func:`tall_gram` for an ``(m, d)`` X: a power of two, at
    most m / :data:`MIN_BLOCK_ROWS`, m / d (so the partial Grams take no more memory than
    X), m d^2 / :data:`MIN_BLOCK_FLOPS` and :data:`MAX_BLOCKS`; at least 1."""
    cap = min(m // MIN_BLOCK_ROWS, m // max(d, 1), m * d * d / MIN_BLOCK_FLOPS, MAX_BLOCKS)
    nb = 1
    while 2 * nb <= cap:
        nb *= 2
    return nb


@njit(cache=True, parallel=True, nogil=True)
def _syrk_blocks(X, row_edges, ints, uplo_trans, alpha_beta, partial):
    """partial[b] (upper triangle) = X[r_b:r_{b+1}]^T X[r_b:r_{b+1}], one BLAS call per block.

    ``ints[b] = (d, rows of block b, d, d)`` are the n, k, lda, ldc of the call.
    """
    d = X.shape[1]
    xp = np.intp(X.ctypes.data)
    pp = np.intp(partial.ctypes.data)
    ip = np.intp(ints.ctypes.data)
    cp = np.intp(uplo_trans.ctypes.data)
    sp = np.intp(alpha_beta.ctypes.data)
    for b in prange(row_edges.shape[0] - 1):
        ib = ip + 16 * b
        dsyrk(cp, cp + 1, ib, ib + 4, sp, xp + 8 * d * row_edges[b], ib + 8, sp + 8,
              pp + 8 * d * d * b, ib + 12)


@njit(cache=True, parallel=True)
def _sum_upper_and_mirror(partial, G):
    """G = sum of the partials' upper triangles in block order, mirrored to the lower.

    ``partial`` may be ``G[None]`` itself (one block): then only the mirror does work.
    """
    nb, d = partial.shape[0], partial.shape[1]
    for t in prange((d + 1) // 2):  # rows t and d-1-t together: equal work per iteration
        for k in range(1 if 2 * t == d - 1 else 2):
            i = np.int64(t) if k == 0 else d - 1 - np.int64(t)
            row = G[i]
            for j in range(i, d):
                row[j] = partial[0, i, j]
            for b in range(1, nb):
                src = partial[b, i]
                for j in range(i, d):
                    row[j] += src[j]
    for i in prange(d):
        for j in range(i):
            G[i, j] = G[j, i]


def tall_gram(X, n_threads=None):
    r"""Return :math:`X^T X` (d x d, exactly symmetric) of a dense float64 ``(m, d)`` X.

    Parameters
    ----------
    X : ndarray (m, d), float64
        Typically a sketch :math:`S D^{1/2} A` with m >= d (copied if not C-contiguous).
    n_threads : int, optional
        numba threads to use; default numba's current thread count (which
        :func:`fastnewton._threads.thread_limit` and ``minimize(threads=...)`` set).

    Notes
    -----
    With :math:`X_b` the :func:`gram_row_blocks` row blocks,
    :math:`X^T X = \sum_b X_b^T X_b`: one single-threaded ``syrk`` per block (on numba's
    threads), then the upper triangles summed in block order and mirrored. The flops are
    those of one ``syrk``; the result does not depend on the thread count.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    m, d = X.shape
    G = np.empty((d, d))
    if d == 0:
        return G
    if m == 0:
        G.fill(0.0)
        return G
    nb = gram_row_blocks(m, d)
    edges = np.array([b * m // nb for b in range(nb + 1)], dtype=np.int64)
    ints = np.empty((nb, 4), dtype=np.int32)
    ints[:, 0], ints[:, 1], ints[:, 2:] = d, np.diff(edges), d
    partial = G[None] if nb == 1 else np.empty((nb, d, d))
    old = numba.get_num_threads()
    if n_threads is not None:
        numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        with blas_for(0):  # every block on one BLAS thread
            _syrk_blocks(X, edges, ints, _UPLO_TRANS, _ALPHA_BETA, partial)
        _sum_upper_and_mirror(partial, G)
    finally:
        numba.set_num_threads(old)
    return G
