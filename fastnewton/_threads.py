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


def blas_for(flops):
    """Context for a dense BLAS/LAPACK call of about ``flops`` floating-point operations.

    Small calls (under :data:`SMALL_BLAS_FLOPS`: a d x d Cholesky up to d ~ 500, the
    Gram of a sketch up to m d^2 ~ 5e7) run on one BLAS thread: they take about a
    millisecond there, while a multithreaded OpenBLAS on a busy machine (a shared
    node, Dask workers, the numba kernels' own threads) was measured here to take 100 to
    500 times longer on them. Larger calls keep the current BLAS thread count.
    """
    global _CONTROLLER
    if flops >= SMALL_BLAS_FLOPS:
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
