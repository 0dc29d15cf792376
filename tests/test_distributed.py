"""Distributed backend on a real LocalCluster (2 worker processes)."""

import os
import signal

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn

distributed = pytest.importorskip("distributed", reason="the distributed extra is not installed")
from fastnewton.distributed import DistributedProblem, minimize as dminimize  # noqa: E402

N, D = 6000, 12
pytestmark = pytest.mark.filterwarnings("ignore::fastnewton.NonConvexWarning")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


def _data(f, seed=0):
    return fn.datasets.make_regression(N, D, cond=10.0, family=f, seed=seed)


def _blocks(data, n_blocks, with_rows=False):
    cuts = np.linspace(0, N, n_blocks + 1).astype(int)
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        blk = {"A": data.A[a:b], "b": data.b[a:b], "w": data.w[a:b]}
        if with_rows:
            blk["rows"] = (a, b)
        out.append(blk)
    return out


@pytest.mark.parametrize("method, f, partitions", [
    ("exact", "exp", (1, 2, 3, 7)), ("sketch", "exp", (1, 2, 3, 7)),
    ("pcg", "exp", (1, 3)), ("sketch", "sinh", (2, 7)), ("exact", "cosh", (3,))])
def test_matches_single_process_for_any_partition(client, method, f, partitions):
    data = _data(f)
    w = data.w
    x0 = None
    if f == "cosh":  # x = 0 is stationary: use the non-convex regime and a non-zero start
        w, x0 = np.full(N, 0.2), 0.5 * data.x_true
    prob = fn.ExpRegression(data.A, data.b, w, f=f, lam=1e-3)
    opts = dict(method=method, seed=7, tol=1e-10, sketch_size=30 * D)
    ref = fn.minimize(prob, x0, **opts)
    assert ref.success and np.linalg.norm(ref.x) > 0.1
    for n_blocks in partitions:
        blocks = _blocks(data, n_blocks, with_rows=True)
        cuts = np.linspace(0, N, n_blocks + 1).astype(int)
        for blk, a, b in zip(blocks, cuts[:-1], cuts[1:]):
            blk["w"] = w[a:b]
        dp = DistributedProblem.from_blocks("exp", blocks, client=client, lam=1e-3, f=f)
        res = dminimize(dp, x0, **opts)
        assert res.success, res.message
        assert np.linalg.norm(res.x - ref.x) <= 1e-10 * np.linalg.norm(ref.x)
        assert abs(res.fun - ref.fun) <= 1e-12 * abs(ref.fun)


def _softmax_family_case(family):
    data = _data("exp", seed=5)
    z = data.A @ data.x_true
    s = np.exp(z - z.max())
    s /= s.sum()
    if family == "resnet":
        v = np.exp(z) + z
        s = v / v.sum()
    kwargs = {"f": "exp"} if family == "rescaled" else {}
    return data, {"b": s}, kwargs


@pytest.mark.parametrize("family, method, partitions", [
    ("softmax", "sketch", (1, 3)), ("softmax", "pcg", (2,)), ("rescaled", "exact", (3,)),
    ("rescaled", "pcg", (1, 2)), ("resnet", "sketch", (2,)), ("resnet", "pcg", (7,))])
def test_families_with_global_statistics(client, family, method, partitions):
    data, arrays, kwargs = _softmax_family_case(family)
    prob = fn.problems.PROBLEMS[family](data.A, **arrays, lam=1e-3, **kwargs)
    opts = dict(method=method, seed=3, tol=1e-10, sketch_size=30 * D)
    ref = fn.minimize(prob, **opts)
    assert ref.success
    for n_blocks in partitions:
        cuts = np.linspace(0, N, n_blocks + 1).astype(int)
        blocks = [{"A": data.A[a:b], **{k: v[a:b] for k, v in arrays.items()}}
                  for a, b in zip(cuts[:-1], cuts[1:])]
        dp = DistributedProblem.from_blocks(family, blocks, client=client, lam=1e-3, **kwargs)
        res = dminimize(dp, **opts)
        assert res.success, res.message
        assert np.linalg.norm(res.x - ref.x) <= 1e-10 * np.linalg.norm(ref.x)
        if method == "pcg":
            assert res.history["inner_iters"][1:].min() >= 1


def test_partial_sketches_reduce_to_the_global_sketch(client):
    data = _data("exp")
    S = fn.sketch.CountSketch(64, N, seed=3)
    w = np.abs(data.b) + 0.5
    full = S.apply(data.A, row_weights=w)
    cuts = [0, 1000, 1001, 4000, N]
    total = np.zeros_like(full)
    for a, b in zip(cuts[:-1], cuts[1:]):
        total += S.apply_rows(data.A[a:b], a, row_weights=w[a:b])
    np.testing.assert_allclose(total, full, rtol=1e-13, atol=1e-13 * np.abs(full).max())


def test_communication_does_not_grow_with_n(client):
    per_step = []
    for n_rows in (3000, 12000):
        data = fn.datasets.make_regression(n_rows, D, cond=10.0, seed=1)
        dp = DistributedProblem.from_blocks(
            "exp", [{"A": data.A[: n_rows // 2], "b": data.b[: n_rows // 2], "w": data.w[: n_rows // 2]},
                    {"A": data.A[n_rows // 2:], "b": data.b[n_rows // 2:], "w": data.w[n_rows // 2:]}],
            client=client)
        with pytest.warns(fn.ConvergenceWarning):  # maxiter=3 on purpose
            res = dminimize(dp, method="sketch", seed=1, sketch_size=8 * D, maxiter=3, tol=0.0)
        per_step.append(np.diff(res.history["bytes"])[1:].max())
    assert per_step[1] <= per_step[0] * 1.01


def test_from_files(client, tmp_path):
    data = _data("exp")
    files = []
    for k, blk in enumerate(_blocks(data, 3)):
        paths = {}
        sp.save_npz(tmp_path / f"A{k}.npz", sp.csr_matrix(blk["A"]))
        paths["A"] = tmp_path / f"A{k}.npz"
        for key in ("b", "w"):
            np.save(tmp_path / f"{key}{k}.npy", blk[key])
            paths[key] = tmp_path / f"{key}{k}.npy"
        files.append(paths)
    dp = DistributedProblem.from_files("exp", files, client=client)
    assert dp.n == N and dp.d == D
    res = dminimize(dp, method="exact", seed=0, tol=1e-10)
    ref = fn.minimize(fn.ExpRegression(data.A, data.b, data.w), method="exact", tol=1e-10)
    assert np.linalg.norm(res.x - ref.x) <= 1e-10 * np.linalg.norm(ref.x)


def test_survives_a_killed_worker(client):
    data = _data("exp", seed=4)
    dp = DistributedProblem.from_blocks("exp", _blocks(data, 4), client=client)
    ref = dminimize(dp, method="sketch", seed=2, tol=1e-10, sketch_size=30 * D)

    killed = []

    def kill_one(inter):
        if inter.nit == 2:
            victim = sorted(client.scheduler_info()["workers"])[0]
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    res = dminimize(dp, method="sketch", seed=2, tol=1e-10, sketch_size=30 * D,
                    callback=kill_one)
    assert killed and res.success
    assert np.linalg.norm(res.x - ref.x) <= 1e-12 * np.linalg.norm(ref.x)


def test_bad_blocks(client):
    data = _data("exp")
    blocks = _blocks(data, 2)
    blocks[1]["A"] = blocks[1]["A"][:, :-1]
    with pytest.raises(ValueError, match="different column counts"):
        DistributedProblem.from_blocks("exp", blocks, client=client)
    blocks = _blocks(data, 2, with_rows=True)
    blocks[1]["rows"] = (blocks[1]["rows"][0] - 5, blocks[1]["rows"][1] - 5)
    with pytest.raises(ValueError, match="overlaps the previous block"):
        DistributedProblem.from_blocks("exp", blocks, client=client)
    blocks[1]["rows"] = (blocks[1]["rows"][0] + 10, blocks[1]["rows"][1] + 10)
    with pytest.raises(ValueError, match="leaves rows uncovered"):
        DistributedProblem.from_blocks("exp", blocks, client=client)
    with pytest.raises(ValueError, match="unknown family"):
        DistributedProblem.from_blocks("nope", _blocks(data, 2), client=client)
    with pytest.raises(TypeError, match="DistributedProblem"):
        dminimize(fn.ExpRegression(data.A, data.b, data.w))


def test_dead_scheduler_address():
    with pytest.raises(OSError, match="could not connect"):
        DistributedProblem.from_blocks("exp", [{"A": np.eye(3), "b": np.ones(3), "w": 1.0}],
                                       client="tcp://127.0.0.1:9")


@pytest.mark.parametrize("family, method", [("poisson", "sketch"), ("binomial", "exact"),
                                            ("gamma", "pcg")])
def test_glm_with_intercept_weights_and_offsets(client, family, method):
    rng = np.random.default_rng(11)
    A = sp.random_array((N, D), density=0.3, random_state=rng, format="csr",
                        data_sampler=rng.standard_normal) * 0.5
    off = 0.1 * rng.standard_normal(N)
    eta = A @ (0.3 * rng.standard_normal(D)) + 0.2 + off
    y = {"poisson": rng.poisson(np.exp(eta)).astype(float),
         "binomial": (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(float),
         "gamma": rng.gamma(2.0, np.exp(eta) / 2)}[family]
    sw = rng.uniform(0.5, 2.0, N)
    prob = fn.GLMRegression(A, y, family=family, sample_weight=sw, offset=off, lam=1.0)
    opts = dict(method=method, seed=3, tol=1e-10, sketch_size=30 * (D + 1))
    ref = fn.minimize(prob, **opts)
    assert ref.success
    cuts = np.linspace(0, N, 4).astype(int)
    blocks = [{"A": A[a:b], "y": y[a:b], "sample_weight": sw[a:b], "offset": off[a:b]}
              for a, b in zip(cuts[:-1], cuts[1:])]
    dp = DistributedProblem.from_blocks("glm", blocks, client=client, lam=1.0,
                                        options={"family": family})
    assert dp.d == D + 1 and dp.lam[-1] == 0.0
    res = dminimize(dp, **opts)
    assert res.success, res.message
    assert np.linalg.norm(res.x - ref.x) <= 1e-9 * np.linalg.norm(ref.x)
    assert abs(res.fun - ref.fun) <= 1e-12 * abs(ref.fun)
