"""The GLM race: fastnewton against scikit-learn and glum on binomial and Poisson GLMs.

Problems (``fastnewton.datasets.make_glm``, seed ``BENCH_SEED``, Zipf column popularity
with exponent 1.1, 20 nonzeros per row):

* ``sparse-unstandardized``: column scales log-uniform over [1e-3, 1];
* ``sparse-standardized``: every column scaled to unit standard deviation (not centered);
* ``dense``: a dense Gaussian design.

Objective, the same for every solver: ``sum_i l(z_i, y_i) + lam/2 ||coef||^2`` with an
unpenalized intercept, ``lam = 1`` (the log-loss for binomial, the half Poisson deviance
for Poisson): scikit-learn's ``LogisticRegression(C=1)``, ``PoissonRegressor(alpha=1/n)``,
glum's ``GeneralizedLinearRegressor(alpha=1/n, l1_ratio=0)``. Each solution is evaluated
by one numpy formula (:func:`objective`) and compared with the best of all solvers
(relative gap; a solver above 1e-10 is marked).

Solvers, each in its own subprocess (``bench/_glm_worker.py``; the data travel through
a temporary .npz; a warm-up fit on the first 20,000 rows first, so imports, JIT compilation
and cache loads are not timed), killed at the cap (reported as a lower bound). Peak
memory: the worker's VmHWM (reset before each fit), and the growth over the RSS before
the fit (``fit RSS``: what the solver allocated):

* fastnewton ``minimize`` with ``method`` auto, exact, sketch, pcg at ``tol=1e-10``
  (relative gradient norm);
* scikit-learn ``newton-cholesky``, ``lbfgs`` (and ``newton-cg`` for binomial) at
  ``tol=1e-10``, ``max_iter=10000``;
* glum ``irls-cd`` and ``lbfgs`` at ``gradient_tol=1e-10``, ``max_iter=1000``.

Peers missing from the environment (``pip install -e ".[bench]"``) are reported as such.

Sizes (``--bench-size``):

========= ================================== ===================== ========= =========
size      sparse n x d                       dense n x d           cap       peers
========= ================================== ===================== ========= =========
quick     2e4 x 100 (3 races)                5e3 x 50             30 s       all; one
                                                                             process per
                                                                             race
default   1e6 x 1000 (6 races)               2e5 x 500             30 s      sklearn
                                                                             newton-chol.,
                                                                             lbfgs; glum
                                                                             irls-cd
full      1e6 x 1000 (6 races)               2e5 x 500             120 s     all
========= ================================== ===================== ========= =========

Environment overrides: ``FASTNEWTON_BENCH_GLM_N``, ``FASTNEWTON_BENCH_GLM_D``,
``FASTNEWTON_BENCH_GLM_DENSE_N``, ``FASTNEWTON_BENCH_GLM_DENSE_D``,
``FASTNEWTON_BENCH_GLM_CAP``; ``FASTNEWTON_BENCH_GLM_RACES`` (comma-separated race ids,
e.g. ``sparse-unstandardized-binomial``) runs a subset. ``FASTNEWTON_BENCH_GLM_TABLE=PATH``
also writes the Markdown tables there (``fastnewton report`` renders them from the JSON).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import xlogy

import fastnewton as fn
from fastnewton._report_glm import GAP_TARGET, glm_race_section

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_glm_worker.py")
BENCH_SEED = 20261123
LAM = 1.0
TOL = 1e-10
KINDS = ("sparse-unstandardized", "sparse-standardized", "dense")
FAMILIES = ("binomial", "poisson")
FASTNEWTON = ["fastnewton-auto", "fastnewton-exact", "fastnewton-sketch", "fastnewton-pcg"]
ALL_PEERS = {"binomial": ["sklearn-newton-cholesky", "sklearn-lbfgs", "sklearn-newton-cg",
                          "glum-irls-cd", "glum-lbfgs"],
             "poisson": ["sklearn-newton-cholesky", "sklearn-lbfgs", "glum-irls-cd",
                         "glum-lbfgs"]}
DEFAULT_PEERS = ["sklearn-newton-cholesky", "sklearn-lbfgs", "glum-irls-cd"]
ALL_RACES = [f"{k}-{f}" for k in KINDS for f in FAMILIES]

TABLE = {
    "quick": {"n": 20_000, "d": 100, "dense_n": 5_000, "dense_d": 50, "cap": 30},  # a loaded CI host
    "default": {"n": 1_000_000, "d": 1000, "dense_n": 200_000, "dense_d": 500, "cap": 30},
    "full": {"n": 1_000_000, "d": 1000, "dense_n": 200_000, "dense_d": 500, "cap": 120},
}
ENV = {"n": "FASTNEWTON_BENCH_GLM_N", "d": "FASTNEWTON_BENCH_GLM_D",
       "dense_n": "FASTNEWTON_BENCH_GLM_DENSE_N", "dense_d": "FASTNEWTON_BENCH_GLM_DENSE_D",
       "cap": "FASTNEWTON_BENCH_GLM_CAP"}
QUICK_RACES = ["sparse-unstandardized-binomial", "sparse-standardized-poisson", "dense-binomial"]


def _races(size):
    chosen = os.environ.get("FASTNEWTON_BENCH_GLM_RACES", "").strip()
    if chosen:
        races = [r.strip() for r in chosen.split(",") if r.strip()]
        bad = sorted(set(races) - set(ALL_RACES))
        if bad:
            raise pytest.UsageError(f"FASTNEWTON_BENCH_GLM_RACES: unknown races {bad}; "
                                    f"known: {ALL_RACES}")
        return races
    return QUICK_RACES if size == "quick" else ALL_RACES


def pytest_generate_tests(metafunc):
    if "race" in metafunc.fixturenames:
        races = _races(metafunc.config.getoption("--bench-size"))
        metafunc.parametrize("race", races, ids=races)


def _peers(size, family):
    return ALL_PEERS[family] if size in ("quick", "full") else \
        [p for p in DEFAULT_PEERS if p in ALL_PEERS[family]]


def _available(solver):
    lib = solver.partition("-")[0]
    if lib == "fastnewton":
        return True
    try:
        __import__({"sklearn": "sklearn.linear_model", "glum": "glum"}[lib])
        return True
    except ImportError:
        return False


# -- data and the common objective ----------------------------------------------------------

def make_data(kind, family, sz):
    """The race's problem: ``fn.datasets.GLMData``."""
    common = dict(family=family, intercept=-1.0 if family == "binomial" else 0.0,
                  seed=BENCH_SEED)
    if kind == "dense":
        return fn.datasets.make_glm(sz["dense_n"], sz["dense_d"], dense=True, **common)
    return fn.datasets.make_glm(
        sz["n"], sz["d"], nnz_per_row=20, column_popularity="zipf", zipf_exponent=1.1,
        column_scale=(1e-3, 1.0) if kind == "sparse-unstandardized" else None,
        standardize=kind == "sparse-standardized", **common)


def objective(A, y, family, coef, intercept, lam=LAM):
    """``sum_i l(z_i, y_i) + lam/2 ||coef||^2``, z = A coef + intercept (float64)."""
    z = np.asarray(A @ np.asarray(coef, dtype=np.float64), dtype=np.float64) + intercept
    if family == "binomial":
        loss = np.logaddexp(0.0, z) - y * z
    else:  # half Poisson deviance
        with np.errstate(over="ignore"):
            loss = np.exp(z) - y * z + xlogy(y, y) - y
    return float(np.sum(loss) + 0.5 * lam * np.dot(coef, coef))


# -- running the solvers ------------------------------------------------------------------

def _save(A, y, path):
    if sp.issparse(A):
        np.savez(path, data=A.data, indices=A.indices, indptr=A.indptr,
                 shape=np.array(A.shape), y=y)
    else:
        np.savez(path, A=A, y=y)


def _child_hwm_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _read_events(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip().endswith("}")]


def run_group(npz, specs, cap, workdir, tag):
    """Run ``specs`` in one worker process; returns {solver: result dict}."""
    spec_path = os.path.join(workdir, f"{tag}.json")
    out_path = os.path.join(workdir, f"{tag}.jsonl")
    err_path = os.path.join(workdir, f"{tag}.err")
    with open(spec_path, "w") as fh:
        json.dump(specs, fh)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    t_start = time.time()
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, WORKER, npz, spec_path, out_path],
                                stdout=err, stderr=subprocess.STDOUT, env=env)
    killed, hwm = False, None
    while proc.poll() is None:
        time.sleep(0.2)
        hwm = _child_hwm_mb(proc.pid) or hwm
        events = _read_events(out_path)
        starts = [e for e in events if e["event"] == "start"]
        dones = {e["solver"] for e in events if e["event"] == "done"}
        running = [e for e in starts if e["solver"] not in dones]
        over = running and time.time() - running[-1]["time"] > cap
        # warm-up and data loading get a generous allowance of their own
        stuck = not starts and time.time() - t_start > cap + 300
        if over or stuck:
            proc.kill()
            proc.wait()
            killed = True
    events = _read_events(out_path)
    results = {}
    for spec in specs:
        name = spec["solver"]
        done = [e for e in events if e["solver"] == name and e["event"] == "done"]
        started = any(e["solver"] == name and e["event"] == "start" for e in events)
        if done:
            r = dict(done[-1], status="done", capped=False)
        elif killed and started:
            r = {"solver": name, "status": "capped", "capped": True, "seconds": float(cap),
                 "peak_rss_mb": hwm}
        else:
            with open(err_path) as fh:
                tail = fh.read()[-400:]
            r = {"solver": name, "status": "failed" if not killed else "not run",
                 "capped": killed, "seconds": None, "error": tail.strip().splitlines()[-1:]}
            r["error"] = r["error"][0] if r["error"] else f"exit code {proc.returncode}"
        results[name] = r
    return results


def run_race(race, sz, size, workdir):
    """Generate the data, run every solver, evaluate and rank; returns extra_info."""
    kind, _, family = race.rpartition("-")
    data = make_data(kind, family, sz)
    A, y = data.A, data.y
    npz = os.path.join(workdir, f"{race}.npz")
    _save(A, y, npz)
    load_before = os.getloadavg()
    solvers = FASTNEWTON + _peers(size, family)
    base = {"family": family, "lam": LAM, "tol": TOL}
    specs = []
    for s in solvers:
        max_iter = 200 if s.startswith("fastnewton") else (1000 if s.startswith("glum") else 10_000)
        specs.append(dict(base, solver=s, max_iter=max_iter, seed=0))
    missing = [s for s in specs if not _available(s["solver"])]
    specs = [s for s in specs if _available(s["solver"])]
    cap = float(sz["cap"])
    results = {}
    if size == "quick":  # one process for all solvers (imports once; the CI smoke)
        results.update(run_group(npz, specs, cap, workdir, race))
    else:
        for s in specs:
            results.update(run_group(npz, [s], cap, workdir, f"{race}-{s['solver']}"))
    for s in missing:
        results[s["solver"]] = {"solver": s["solver"], "status": "not installed", "capped": False,
                                "seconds": None}
    for r in results.values():
        if r.get("status") == "done":
            coef = np.asarray(r.pop("coef"))
            r["objective"] = objective(A, y, family, coef, r["intercept"])
    best = min((r["objective"] for r in results.values() if r.get("objective") is not None),
               default=None)
    for r in results.values():
        if r.get("objective") is not None:
            r["gap"] = max(r["objective"] - best, 0.0) / abs(best)
            r["reached"] = bool(r["gap"] <= GAP_TARGET) and np.isfinite(r["objective"])
        else:
            r["reached"] = False
    auto = results["fastnewton-auto"]
    peers = [r for r in results.values() if not r["solver"].startswith("fastnewton")
             and r.get("seconds") is not None]
    # the fastest peer that reached the objective; capped/unconverged ones bound it below
    reached = [r for r in peers if r["reached"]]
    fastest = min(reached, key=lambda r: r["seconds"]) if reached else None
    bounds = [r["seconds"] for r in peers if not r["reached"]]
    info = {"race": race, "problem": kind, "kind": "dense" if kind == "dense" else "sparse",
            "family": family, "n": A.shape[0], "d": A.shape[1],
            "nnz_per_row": 20 if kind != "dense" else A.shape[1],
            "nnz": int(A.nnz) if sp.issparse(A) else int(A.size), "lam": LAM, "tol": TOL,
            "cap": cap, "bench_size": size, "best_objective": best,
            "load_before": list(load_before), "load_after": list(os.getloadavg()),
            "solvers": sorted(results.values(), key=lambda r: r["solver"])}
    if auto.get("reached") and auto.get("seconds"):
        if fastest is not None and (not bounds or fastest["seconds"] <= min(bounds)):
            info.update(fastest_peer=fastest["solver"], fastest_peer_seconds=fastest["seconds"],
                        auto_vs_fastest_peer=fastest["seconds"] / auto["seconds"],
                        ratio_is_lower_bound=False)
        elif bounds:  # every peer faster than the best converged one did not converge
            lb = min([*bounds, *([fastest["seconds"]] if fastest else [])])
            who = min((r for r in peers if r["seconds"] == lb), key=lambda r: r["solver"])
            info.update(fastest_peer=who["solver"], fastest_peer_seconds=lb,
                        auto_vs_fastest_peer=lb / auto["seconds"], ratio_is_lower_bound=True)
    return info


def test_glm_race(benchmark, race, bench_size, sizes, record):
    sz = sizes(TABLE, ENV)
    with tempfile.TemporaryDirectory(prefix="fastnewton-glm-race-") as workdir:
        info = benchmark.pedantic(run_race, args=(race, sz, bench_size, workdir),
                                  rounds=1, iterations=1)
    record(benchmark, None, "glm_race", race, **info)
    benchmark.group = "glm race"
    path = os.environ.get("FASTNEWTON_BENCH_GLM_TABLE", "").strip()
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(glm_race_section([info]) + "\n")
    by = {r["solver"]: r for r in info["solvers"]}
    for name in FASTNEWTON:
        assert by[name]["status"] == "done", (name, by[name])
    auto = by["fastnewton-auto"]
    assert auto["reached"], f"fastnewton auto's gap {auto.get('gap')} > {GAP_TARGET}"
    for r in info["solvers"]:
        assert r["status"] != "failed", (r["solver"], r.get("error"))
