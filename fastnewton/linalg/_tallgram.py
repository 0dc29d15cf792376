"""Gram matrix X^T X of a tall dense matrix on the library's own threads.

The Gram of a sketch, (S A)^T (S A), is the largest dense BLAS call of a sketched Newton
step. Left to a multithreaded OpenBLAS it runs fast in isolation but slows the numba
kernels around it: OpenBLAS's worker threads spin for a while after each call (as do
the OpenMP threads of numba after theirs), so on a machine with as many threads as
cores the two pools take turns on the same cores. Measured here on 2 cores (n = 1e6,
d = 500, m = 4000): sketch + Gram took 49 ms on 2 threads against 50 ms on 1, while the
two parts alone took 17 + 14 ms.

:func:`tall_gram` instead splits X^T X into fixed column blocks (chosen from d only)
and runs the block products X_i^T X_j (j >= i; a ``syrk`` on the diagonal) as
single-threaded BLAS calls on a small pool of Python threads (BLAS releases the GIL).
The blocks, hence the bits of the result, do not depend on the thread count, and no
BLAS thread pool is woken. What remains: numba's OpenMP worker still spins for a few ms
after the sketch kernel, on the core the second block product needs (``sketched_gram``
measured 1.3-1.5x on 2 threads, its parts alone 1.7-1.9x; docs/performance.md).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .._threads import SMALL_BLAS_FLOPS, blas_for

__all__ = ["tall_gram", "GRAM_BLOCK"]

#: Column-block width of :func:`tall_gram` (fixed: the result never depends on threads).
GRAM_BLOCK = 256

_POOL = None  # (pid, executor)
_POOL_LOCK = threading.Lock()


def _pool(n_workers):
    """A process-wide thread pool with at least ``n_workers`` workers.

    A larger pool replaces a smaller one without shutting it down (a concurrent caller
    may still be using it); a forked child (whose copy of the pool has no threads)
    gets a pool of its own.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1]._max_workers < n_workers:
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=n_workers,
                                                     thread_name_prefix="fastnewton-gram"))
        return _POOL[1]


def _block_edges(d):
    nb = max(1, -(-d // GRAM_BLOCK))
    return [round(i * d / nb) for i in range(nb + 1)]


def tall_gram(X, n_threads=None):
    r"""Return :math:`X^T X` (d x d, exactly symmetric) of a dense float64 ``(m, d)`` X.

    Parameters
    ----------
    X : ndarray (m, d), float64, C-contiguous
        Typically a sketch :math:`S D^{1/2} A` with m >= d.
    n_threads : int, optional
        Threads to use; default numba's current thread count (which
        :func:`fastnewton._threads.thread_limit` and ``minimize(threads=...)`` set).

    Notes
    -----
    The column blocks :math:`X_i` (width about :data:`GRAM_BLOCK`) give
    :math:`G_{ij} = X_i^T X_j` for :math:`j \ge i`; each is one single-threaded BLAS call
    on a strided view (no copy), mirrored into :math:`G_{ji}`; the flops equal those of
    one ``syrk``. Measured here (m = 4000, d = 500: two blocks, three products): 25.8 ms
    on 1 thread and 15.4 ms on 2, against 24.0 and 16.1 ms for numpy's ``X.T @ X`` on
    1 and 2 OpenBLAS threads. Products under ``SMALL_BLAS_FLOPS`` run as one
    single-threaded ``syrk``.
    """
    m, d = X.shape
    if n_threads is None:
        n_threads = numba.get_num_threads()
    edges = _block_edges(d)
    nb = len(edges) - 1
    if nb == 1 or m * d * d < SMALL_BLAS_FLOPS:
        with blas_for(0):
            return X.T @ X
    G = np.empty((d, d))
    # largest first: off-diagonal blocks cost twice a diagonal (syrk) block
    tasks = [(i, j) for i in range(nb) for j in range(i + 1, nb)]
    tasks += [(i, i) for i in range(nb)]

    def run(task):
        i, j = task
        ri, rj = slice(edges[i], edges[i + 1]), slice(edges[j], edges[j + 1])
        Xi = X[:, ri]
        if i == j:
            G[ri, ri] = Xi.T @ Xi
        else:
            blk = Xi.T @ X[:, rj]
            G[ri, rj] = blk
            G[rj, ri] = blk.T

    with blas_for(0):  # every block product on one BLAS thread
        if n_threads <= 1:
            for task in tasks:
                run(task)
        else:  # the calling thread works too: it takes tasks from the same queue
            queue = iter(tasks)
            lock = threading.Lock()

            def worker():
                while True:
                    with lock:
                        task = next(queue, None)
                    if task is None:
                        return
                    run(task)

            helpers = [_pool(n_threads - 1).submit(worker) for _ in range(n_threads - 1)]
            worker()
            for fut in helpers:
                fut.result()
    return G
