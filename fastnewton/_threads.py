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
