"""Distributed vs single-process approximate Newton (issue: beyond one machine).

Run: ``python -m pytest bench/bench_distributed.py --benchmark-only -s``
(sizes from FASTNEWTON_BENCH_DIST_N / _D; defaults n = 2,000,000, d = 300, 20 nnz/row).
Both sides solve the same seeded exp-regression problem with the ``sketch`` method
and the same seed; the single-process solve runs on 1 numba thread, the distributed
one on a LocalCluster of 2 single-threaded worker processes that load their row
block from files. Reported: time of each, the speedup, and the bytes moved per step.
"""

import os

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton._threads import thread_limit

distributed = pytest.importorskip("distributed")
from fastnewton.distributed import DistributedProblem, minimize as dminimize  # noqa: E402

N = int(os.environ.get("FASTNEWTON_BENCH_DIST_N", 2_000_000))
D = int(os.environ.get("FASTNEWTON_BENCH_DIST_D", 300))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    data = fn.datasets.make_regression(N, D, cond=1e2, seed=0)
    root = tmp_path_factory.mktemp("dist")
    files = []
    half = N // 2
    for k, (a, b) in enumerate(((0, half), (half, N))):
        sp.save_npz(root / f"A{k}.npz", data.A[a:b], compressed=False)
        np.save(root / f"b{k}.npy", data.b[a:b])
        np.save(root / f"w{k}.npy", data.w[a:b])
        files.append({"A": root / f"A{k}.npz", "b": root / f"b{k}.npy", "w": root / f"w{k}.npy"})
    return data, files


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit=0)
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


def test_single_process_one_thread(benchmark, dataset):
    data, _ = dataset
    prob = fn.ExpRegression(data.A, data.b, data.w)
    with thread_limit(1):
        fn.minimize(prob, method="sketch", seed=1, maxiter=1)  # warm the JIT and layouts
        res = benchmark.pedantic(fn.minimize, args=(prob,), kwargs=dict(method="sketch", seed=1),
                                 rounds=1, iterations=1)
    benchmark.extra_info.update(n=N, d=D, nnz=int(data.A.nnz), nit=res.nit,
                                grad_rel=res.grad_norm / res.history["grad_norm"][0])


def test_distributed_two_workers(benchmark, dataset, client):
    data, files = dataset
    dp = DistributedProblem.from_files("exp", files, client=client)
    dminimize(dp, method="sketch", seed=1, maxiter=1)  # warm the workers' JIT
    res = benchmark.pedantic(dminimize, args=(dp,), kwargs=dict(method="sketch", seed=1),
                             rounds=1, iterations=1)
    per_step = np.diff(res.history["bytes"])
    benchmark.extra_info.update(n=N, d=D, nit=res.nit, bytes_per_step=float(per_step.mean()),
                                grad_rel=res.grad_norm / res.history["grad_norm"][0])
    print(f"\ndistributed: nit={res.nit} bytes/step={per_step.mean() / 1e6:.2f} MB "
          f"total={res.timings['total']:.2f}s")
