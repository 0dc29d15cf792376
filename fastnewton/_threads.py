"""One place that sets numba, BLAS and OpenMP thread counts together."""

from __future__ import annotations

import contextlib
import os

__all__ = ["available_cpus", "thread_limit"]


def available_cpus():
    """CPUs this process may use: the affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


@contextlib.contextmanager
def thread_limit(n_threads):
    """Run the body with ``n_threads`` numba threads and at most as many BLAS/OpenMP threads.

    ``None`` leaves everything as it is.
    """
    if n_threads is None:
        yield
        return
    import numba
    from threadpoolctl import threadpool_limits

    n_threads = int(n_threads)
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
    old = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        numba.set_num_threads(old)


#: Dense work (in flops) below which BLAS runs on one thread (see :func:`blas_for`).
SMALL_BLAS_FLOPS = 5e7
_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


#: BLAS threads that large calls get back inside :func:`solver_blas` (None outside).
_LARGE_BLAS_THREADS = None
#: Vector length from which :func:`solver_blas` acts: OpenBLAS runs level-1 calls on
#: shorter vectors on one thread anyway (its threshold for ddot is 10,000), and a solve
#: with short vectors would only pay the switches (about 0.1 ms each).
VECTOR_BLAS_MIN = 4096


def blas_for(flops):
    """Context for a dense BLAS/LAPACK call of about ``flops`` floating-point operations.

    Small calls (under :data:`SMALL_BLAS_FLOPS`: a d x d Cholesky up to d ~ 500, the
    Gram of a sketch up to m d^2 ~ 5e7) run on one BLAS thread: they take about a
    millisecond there, while a multithreaded OpenBLAS on a busy machine (a shared
    node, Dask workers, the numba kernels' own threads) was measured here to take 100 to
    500 times longer on them. Larger calls keep the current BLAS thread count, or get
    back the count :func:`solver_blas` took away.
    """
    if flops >= SMALL_BLAS_FLOPS:
        if _LARGE_BLAS_THREADS is None or _LARGE_BLAS_THREADS <= 1:
            return contextlib.nullcontext()
        return _controller().limit(limits=_LARGE_BLAS_THREADS, user_api="blas")
    return _controller().limit(limits=1, user_api="blas")


@contextlib.contextmanager
def solver_blas(length=None):
    """One BLAS thread for the body (a solve's loop), except in :func:`blas_for` calls of
    large dense work, which get the thread count in force before. ``length``: the
    solve's vector length d; nothing changes below :data:`VECTOR_BLAS_MIN`.

    Between its numba kernels a Newton solve does vector work (dots and norms of
    d-vectors) that OpenBLAS spreads over its threads from n = 10,000 on. Those threads
    then spin for a while and take the cores from numba's workers: on 2 cores, CG
    iterations of ``method="wide"`` ran 2 to 5 times slower (docs/performance.md).
    """
    global _LARGE_BLAS_THREADS
    short = length is not None and length < VECTOR_BLAS_MIN
    if short or _LARGE_BLAS_THREADS is not None:  # nested: the outer one holds the count
        yield
        return
    ctrl = _controller()
    counts = [info["num_threads"] for info in ctrl.select(user_api="blas").info()]
    _LARGE_BLAS_THREADS = max(counts, default=1)
    try:
        with ctrl.limit(limits=1, user_api="blas"):
            yield
    finally:
        _LARGE_BLAS_THREADS = None
