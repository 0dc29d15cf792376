"""Distributed vs single-process approximate Newton (issue: beyond one machine).

Run: ``python -m pytest bench/bench_distributed.py --bench-size full --benchmark-only -s``.
Sizes (:data:`SIZES`, 20 nonzeros per row or d if fewer) follow ``--bench-size``:
n x d = 20,000 x 20 (quick), 200,000 x 100 (default), 2,000,000 x 300 (full).
Precedence: ``FASTNEWTON_BENCH_DIST_N`` and ``FASTNEWTON_BENCH_DIST_D``, when set, win
over ``--bench-size``. Skipped when dask.distributed is not installed (extra
``distributed``; it is part of ``dev``).

Both sides solve the same seeded exp-regression problem with the ``sketch`` method and
the same seed; the single-process solve runs on 1 numba thread, the distributed one on a
LocalCluster of 2 single-threaded worker processes that load their row block from files.
Reported: time of each, the speedup, and the bytes moved per step.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton._threads import thread_limit

distributed = pytest.importorskip("distributed")
from fastnewton.distributed import DistributedProblem, minimize as dminimize  # noqa: E402

#: Sizes of each ``--bench-size`` (environment variables in :data:`ENV` override them).
SIZES = {"quick": dict(n=20_000, d=20), "default": dict(n=200_000, d=100),
         "full": dict(n=2_000_000, d=300)}
ENV = {"n": "FASTNEWTON_BENCH_DIST_N", "d": "FASTNEWTON_BENCH_DIST_D"}


@pytest.fixture(scope="module")
def cfg(sizes):
    """This run's sizes (``--bench-size`` and the environment overrides)."""
    return sizes(SIZES, ENV)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, cfg):
    n, d = cfg["n"], cfg["d"]
    data = fn.datasets.make_regression(n, d, cond=1e2, seed=0)
    root = tmp_path_factory.mktemp("dist")
    files = []
    half = n // 2
    for k, (a, b) in enumerate(((0, half), (half, n))):
        sp.save_npz(root / f"A{k}.npz", data.A[a:b], compressed=False)
        np.save(root / f"b{k}.npy", data.b[a:b])
        np.save(root / f"w{k}.npy", data.w[a:b])
        files.append({"A": root / f"A{k}.npz", "b": root / f"b{k}.npy", "w": root / f"w{k}.npy"})
    return data, files


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit=0)  # any free port
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


def _info(data, cfg):
    return dict(n=data.A.shape[0], d=data.A.shape[1], nnz=int(data.A.nnz),
                bench_size=cfg["bench_size"])


def test_single_process_one_thread(benchmark, dataset, cfg):
    data, _ = dataset
    prob = fn.ExpRegression(data.A, data.b, data.w)
    with thread_limit(1):
        with warnings.catch_warnings():  # warm the JIT and layouts (1 step: not converged)
            warnings.simplefilter("ignore", fn.ConvergenceWarning)
            fn.minimize(prob, method="sketch", seed=1, maxiter=1)
        res = benchmark.pedantic(fn.minimize, args=(prob,), kwargs=dict(method="sketch", seed=1),
                                 rounds=1, iterations=1)
    benchmark.extra_info.update(**_info(data, cfg), nit=res.nit,
                                grad_rel=res.grad_norm / res.history["grad_norm"][0])


def test_distributed_two_workers(benchmark, dataset, client, cfg):
    data, files = dataset
    dp = DistributedProblem.from_files("exp", files, client=client)
    with warnings.catch_warnings():  # warm the workers' JIT (1 step: not converged)
        warnings.simplefilter("ignore", fn.ConvergenceWarning)
        dminimize(dp, method="sketch", seed=1, maxiter=1)
    res = benchmark.pedantic(dminimize, args=(dp,), kwargs=dict(method="sketch", seed=1),
                             rounds=1, iterations=1)
    per_step = np.diff(res.history["bytes"])
    benchmark.extra_info.update(**_info(data, cfg), nit=res.nit,
                                bytes_per_step=float(per_step.mean()),
                                grad_rel=res.grad_norm / res.history["grad_norm"][0])
    print(f"\ndistributed: nit={res.nit} bytes/step={per_step.mean() / 1e6:.2f} MB "
          f"total={res.timings['total']:.2f}s")
