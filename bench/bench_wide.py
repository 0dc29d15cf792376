"""The wide race: binomial and Poisson GLMs with d = 1e4 ... 1e5 features, fastnewton
(``method="auto"``, which picks ``wide`` here, and ``method="wide"``) against scikit-learn
and glum.

Problems (:func:`make_wide_data`, seed ``BENCH_SEED``): 20 nonzeros per row at columns
drawn with Zipf popularity (exponent 1.1, a random column order), values uniform in
[0.5, 1.5]; ``unstandardized``: columns scaled by log-uniform factors in [1e-3, 1];
``standardized``: every column scaled to unit standard deviation (not centered).

Objective, as in the GLM race: ``sum_i l(z_i, y_i) + lam/2 ||coef||^2`` with an
unpenalized intercept, ``lam = 1`` (scikit-learn ``LogisticRegression(C=1)``,
``PoissonRegressor(alpha=1/n)``, glum ``alpha=1/n, l1_ratio=0``), ``tol = 1e-10``
(fastnewton: relative gradient norm; the peers: their own ``tol``/``gradient_tol``), at
most 10,000 iterations for scikit-learn, 1,000 for glum, 100 Newton steps for fastnewton.
Each solution is evaluated by one numpy formula and compared with the best (relative
gap; ``reached`` means gap <= 1e-8). liblinear penalizes its intercept; it runs with
``intercept_scaling=10`` (a penalty of b²/200 on the intercept b), so its gap is
small but not zero.

Every solver runs in its own subprocess (``bench/_wide_worker.py``; data through a
temporary .npz; a warm-up fit on the first 20,000 rows first), killed at the cap
(reported as a lower bound). Peak memory: the worker's VmHWM during the fit (it holds A
and the Python runtime), compared with ``3 x bytes(A) + 1 GiB``.

========= ===================== ======= ===========================================
size      n x d                 cap     races
========= ===================== ======= ===========================================
quick     1e4 x 3e3            30 s     2 (one process per race: the CI smoke)
default   2e5 x 2e4             60 s    4
full      1e6 x 1e5             300 s   4
========= ===================== ======= ===========================================

Environment overrides: ``FASTNEWTON_BENCH_WIDE_N``, ``FASTNEWTON_BENCH_WIDE_D``,
``FASTNEWTON_BENCH_WIDE_CAP``, ``FASTNEWTON_BENCH_WIDE_THREADS`` (numba/BLAS/OpenMP
threads of every solver's process), ``FASTNEWTON_BENCH_WIDE_RACES`` (comma-separated, e.g.
``unstandardized-binomial``); ``FASTNEWTON_BENCH_WIDE_TABLE=PATH`` appends a Markdown
table per race there.
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

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_wide_worker.py")
BENCH_SEED = 20261123
LAM, TOL, GAP_TARGET = 1.0, 1e-10, 1e-8
KINDS = ("unstandardized", "standardized")
FAMILIES = ("binomial", "poisson")
FASTNEWTON = ["fastnewton-auto", "fastnewton-wide"]
PEERS = {"binomial": ["sklearn-lbfgs", "sklearn-newton-cg", "sklearn-liblinear", "glum-lbfgs"],
         "poisson": ["sklearn-lbfgs", "glum-lbfgs"]}
ALL_RACES = [f"{k}-{f}" for k in KINDS for f in FAMILIES]
QUICK_RACES = ["unstandardized-binomial", "standardized-poisson"]
TABLE = {"quick": {"n": 10_000, "d": 3_000, "cap": 30},  # generous: a loaded CI host
         "default": {"n": 200_000, "d": 20_000, "cap": 60},
         "full": {"n": 1_000_000, "d": 100_000, "cap": 300}}
ENV = {"n": "FASTNEWTON_BENCH_WIDE_N", "d": "FASTNEWTON_BENCH_WIDE_D",
       "cap": "FASTNEWTON_BENCH_WIDE_CAP"}


def _races(size):
    chosen = os.environ.get("FASTNEWTON_BENCH_WIDE_RACES", "").strip()
    if chosen:
        races = [r.strip() for r in chosen.split(",") if r.strip()]
        bad = sorted(set(races) - set(ALL_RACES))
        if bad:
            raise pytest.UsageError(f"FASTNEWTON_BENCH_WIDE_RACES: unknown races {bad}; "
                                    f"known: {ALL_RACES}")
        return races
    return QUICK_RACES if size == "quick" else ALL_RACES


def pytest_generate_tests(metafunc):
    if "wide_race" in metafunc.fixturenames:
        races = _races(metafunc.config.getoption("--bench-size"))
        metafunc.parametrize("wide_race", races, ids=races)


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

def make_wide_data(n, d, family, kind, nnz_per_row=20, zipf=1.1, seed=BENCH_SEED):
    """(A CSR float64 (n, d) with sorted indices, y) of a race (see the module notes)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, d + 1) ** zipf
    pop = pop[rng.permutation(d)]
    pop /= pop.sum()
    cols = rng.choice(d, size=n * nnz_per_row, p=pop).astype(np.int32)
    rows = np.repeat(np.arange(n, dtype=np.int32), nnz_per_row)
    A = sp.csr_array((rng.uniform(0.5, 1.5, size=n * nnz_per_row), (rows, cols)), shape=(n, d))
    A.sum_duplicates()
    if kind == "unstandardized":
        scale = np.exp(rng.uniform(np.log(1e-3), 0.0, size=d))
    else:
        mean = np.asarray(A.mean(axis=0)).ravel()
        std = np.sqrt(np.maximum(np.asarray(A.multiply(A).mean(axis=0)).ravel() - mean ** 2, 0))
        scale = 1.0 / np.where(std > 0, std, 1.0)
    A = sp.csr_array(A @ sp.diags_array(scale))
    A.sort_indices()
    z = A @ (rng.standard_normal(d) / np.sqrt(nnz_per_row))
    z = z / max(float(np.std(z)), 1e-12) - (1.0 if family == "binomial" else 0.0)
    if family == "binomial":
        y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    else:
        y = rng.poisson(np.exp(np.clip(z, -30.0, 5.0))).astype(np.float64)
    return A, y


def objective(A, y, family, coef, intercept, lam=LAM):
    """``sum_i l(z_i, y_i) + lam/2 ||coef||^2``, z = A coef + intercept (float64)."""
    z = np.asarray(A @ np.asarray(coef, dtype=np.float64), dtype=np.float64) + intercept
    if family == "binomial":
        loss = np.logaddexp(0.0, z) - y * z
    else:
        with np.errstate(over="ignore"):
            loss = np.exp(z) - y * z + xlogy(y, y) - y
    return float(np.sum(loss) + 0.5 * lam * np.dot(coef, coef))


def bytes_of(A):
    return int(A.data.nbytes + A.indices.nbytes + A.indptr.nbytes)


# -- running the solvers ------------------------------------------------------------------

def _read_events(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip().endswith("}")]


def run_group(npz, specs, cap, workdir, tag):
    """Run ``specs`` in one worker process (killed at ``cap`` seconds per solver)."""
    spec_path, out_path, err_path = (os.path.join(workdir, f"{tag}.{e}")
                                     for e in ("json", "jsonl", "err"))
    with open(spec_path, "w") as fh:
        json.dump(specs, fh)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    threads = os.environ.get("FASTNEWTON_BENCH_WIDE_THREADS", "").strip()
    if threads:  # the same thread budget for every solver (numba, BLAS, OpenMP)
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS"):
            env[var] = threads
    t_start, killed = time.time(), False
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, WORKER, npz, spec_path, out_path],
                                stdout=err, stderr=subprocess.STDOUT, env=env)
    while proc.poll() is None:
        time.sleep(0.2)
        events = _read_events(out_path)
        dones = {e["solver"] for e in events if e["event"] == "done"}
        running = [e for e in events if e["event"] == "start" and e["solver"] not in dones]
        if (running and time.time() - running[-1]["time"] > cap
                or not events and time.time() - t_start > cap + 300):
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
            results[name] = dict(done[-1], status="done", capped=False)
        elif killed and started:
            results[name] = {"solver": name, "status": "capped", "capped": True,
                             "seconds": float(cap)}
        else:
            with open(err_path) as fh:
                tail = fh.read().strip().splitlines()[-1:]
            results[name] = {"solver": name, "status": "not run" if killed else "failed",
                             "capped": killed, "seconds": None,
                             "error": tail[0] if tail else f"exit code {proc.returncode}"}
    return results


def run_race(race, sz, size, workdir):
    """Generate the data, run every solver, evaluate and rank; returns extra_info."""
    kind, family = race.split("-")
    A, y = make_wide_data(int(sz["n"]), int(sz["d"]), family, kind)
    npz = os.path.join(workdir, f"{race}.npz")
    np.savez(npz, data=A.data, indices=A.indices, indptr=A.indptr, shape=np.array(A.shape), y=y)
    specs = [dict(family=family, lam=LAM, tol=TOL, solver=s,
                  max_iter=100 if s.startswith("fastnewton") else
                  (1000 if s.startswith("glum") else 10_000))
             for s in FASTNEWTON + PEERS[family] if _available(s)]
    missing = [s for s in PEERS[family] if not _available(s)]
    cap = float(sz["cap"])
    load_before = os.getloadavg()
    results = {}
    if size == "quick":
        results.update(run_group(npz, specs, cap, workdir, race))
    else:
        for s in specs:
            results.update(run_group(npz, [s], cap, workdir, f"{race}-{s['solver']}"))
    for s in missing:
        results[s] = {"solver": s, "status": "not installed", "capped": False, "seconds": None}
    for r in results.values():
        if r.get("status") == "done":
            r["objective"] = objective(A, y, family, np.asarray(r.pop("coef")), r["intercept"])
    best = min((r["objective"] for r in results.values() if r.get("objective") is not None),
               default=None)
    for r in results.values():
        gap = (max(r["objective"] - best, 0.0) / abs(best)) if r.get("objective") is not None \
            else None
        r["gap"] = gap
        r["reached"] = gap is not None and gap <= GAP_TARGET
    a_bytes = bytes_of(A)
    info = {"race": race, "family": family, "kind": kind, "n": A.shape[0], "d": A.shape[1],
            "nnz": int(A.nnz), "bytes_A_mb": a_bytes / 2**20, "lam": LAM, "tol": TOL,
            "cap": cap, "bench_size": size, "best_objective": best,
            "threads": os.environ.get("FASTNEWTON_BENCH_WIDE_THREADS", "").strip() or "default",
            "memory_target_mb": (3 * a_bytes + 2**30) / 2**20,
            "load_before": list(load_before), "load_after": list(os.getloadavg()),
            "solvers": sorted(results.values(), key=lambda r: r["solver"])}
    auto = results["fastnewton-auto"]
    peers = [r for r in results.values() if not r["solver"].startswith("fastnewton")
             and r.get("seconds") is not None]
    # the fastest peer: converged ones, and capped/unconverged ones as lower bounds
    if auto.get("reached") and peers:
        fastest = min(peers, key=lambda r: r["seconds"])
        info.update(fastest_peer=fastest["solver"], fastest_peer_seconds=fastest["seconds"],
                    auto_vs_fastest_peer=fastest["seconds"] / auto["seconds"],
                    ratio_is_lower_bound=not fastest["reached"])
    return info


def table(info):
    """A Markdown table of one race."""
    lines = [f"**{info['race']}** (n = {info['n']:,}, d = {info['d']:,}, nnz = {info['nnz']:,}, "
             f"A = {info['bytes_A_mb']:.0f} MB; memory target {info['memory_target_mb']:.0f} MB)",
             "", "| solver | seconds | iterations | gap | peak RSS MB | fit RSS MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in info["solvers"]:
        secs = "-" if r.get("seconds") is None else (
            f"> {r['seconds']:.1f}" if r.get("capped") else f"{r['seconds']:.2f}")
        gap = "-" if r.get("gap") is None else f"{r['gap']:.1e}"
        peak = "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"
        fit = "-" if r.get("fit_rss_mb") is None else f"{r['fit_rss_mb']:.0f}"
        name = r["solver"] + (f" ({r['method']})" if r.get("method") else "")
        lines.append(f"| {name} | {secs} | {r.get('n_iter', '-')} | {gap} | {peak} | {fit} |")
    if "auto_vs_fastest_peer" in info:
        bound = " (lower bound)" if info["ratio_is_lower_bound"] else ""
        lines.append(f"\nauto vs the fastest peer ({info['fastest_peer']}): "
                     f"{info['auto_vs_fastest_peer']:.2f}x{bound}")
    return "\n".join(lines) + "\n"


def test_wide_race(benchmark, wide_race, bench_size, sizes, record):
    sz = sizes(TABLE, ENV)
    with tempfile.TemporaryDirectory(prefix="fastnewton-wide-race-") as workdir:
        info = benchmark.pedantic(run_race, args=(wide_race, sz, bench_size, workdir),
                                  rounds=1, iterations=1)
    record(benchmark, None, "wide_race", wide_race, **info)
    benchmark.group = "wide race"
    print("\n" + table(info))
    path = os.environ.get("FASTNEWTON_BENCH_WIDE_TABLE", "").strip()
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(table(info) + "\n")
    by = {r["solver"]: r for r in info["solvers"]}
    for name in FASTNEWTON:
        assert by[name]["status"] == "done", (name, by[name])
    assert by["fastnewton-auto"]["method"] == "wide"
    assert by["fastnewton-auto"]["reached"], by["fastnewton-auto"]
    for r in info["solvers"]:
        assert r["status"] != "failed", (r["solver"], r.get("error"))
