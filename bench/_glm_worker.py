"""One process of the GLM race (bench/bench_glm.py): fit solver(s) on data from an .npz.

    python bench/_glm_worker.py DATA.npz SPECS.json OUT.jsonl

``SPECS.json``: a list of solver specs ``{"solver": "sklearn-lbfgs" | ..., "family":
"binomial" | "poisson", "lam": float, "tol": float, "max_iter": int}``. Each solver is
warmed up on the first 20,000 rows of the data first (imports, JIT compilation and cache
loads, lazy initializations), then
timed from the data in memory to the fitted coefficients. One JSON line per solver is
appended to ``OUT.jsonl`` as soon as it finishes (a "start" line before), so that a
process killed at the time cap still reports the solvers it finished. Peak memory per
solver: ``VmHWM`` of /proc/self/status, reset before each fit (``clear_refs`` 5).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp


def _status_kb(key):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def load(path):
    with np.load(path) as f:
        if "data" in f:
            A = sp.csr_array((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        else:
            A = np.ascontiguousarray(f["A"])
        return A, f["y"].copy()


def _start_intercept(family, y):
    m = float(np.mean(y))
    if family == "binomial":
        m = min(max(m, 1e-10), 1 - 1e-10)
        return float(np.log(m / (1 - m)))
    return float(np.log(m)) if m > 0 else 0.0


def fit(spec, A, y):
    """Fit one solver; returns (coef, intercept, n_iter, info dict)."""
    solver, family = spec["solver"], spec["family"]
    lam, tol, max_iter = float(spec["lam"]), float(spec["tol"]), int(spec["max_iter"])
    n = A.shape[0]
    lib, _, name = solver.partition("-")
    info = {}
    if lib == "fastnewton":
        import fastnewton as fn

        prob = fn.GLMRegression(A, y, family=family, lam=lam)
        x0 = np.zeros(prob.d)
        x0[-1] = _start_intercept(family, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fn.ConvergenceWarning)
            res = fn.minimize(prob, x0, method=name, tol=tol, maxiter=max_iter,
                              seed=spec.get("seed", 0))
        coef, b = prob.split(res.x)
        info = {"method": res.method, "message": res.message, "success": bool(res.success),
                "phases": {k: float(v) for k, v in res.timings.items()}}
        return coef, b, int(res.nit), info
    if lib == "sklearn":
        import sklearn.linear_model as lm

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if family == "binomial":
                est = lm.LogisticRegression(C=1.0 / lam, solver=name, tol=tol, max_iter=max_iter)
            else:
                est = lm.PoissonRegressor(alpha=lam / n, solver=name, tol=tol, max_iter=max_iter)
            est.fit(A, y)
        info["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:120]}"
                                   for w in caught})
        return (np.ravel(est.coef_), float(np.ravel(est.intercept_)[0]),
                int(np.max(est.n_iter_)), info)
    if lib == "glum":
        from glum import GeneralizedLinearRegressor

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = GeneralizedLinearRegressor(family=family, alpha=lam / n, l1_ratio=0.0,
                                             solver=name, gradient_tol=tol, max_iter=max_iter,
                                             fit_intercept=True)
            est.fit(A, y)
        info["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:120]}"
                                   for w in caught})
        return np.ravel(est.coef_), float(est.intercept_), int(est.n_iter_), info
    raise ValueError(f"unknown solver {solver!r}")


def _warmup_data(A, y, rows=20000):
    """The first rows of the race's data (same dtypes, format and d: the same kernels)."""
    m = min(A.shape[0], rows)
    return A[:m], y[:m]


def main(argv):
    data_path, spec_path, out_path = argv
    with open(spec_path) as fh:
        specs = json.load(fh)
    A, y = load(data_path)
    for spec in specs:  # warm-up: imports, JIT compilation / cache loads, lazy set-up
        fit(dict(spec, max_iter=5), *_warmup_data(A, y))
    with open(out_path, "a") as out:
        for spec in specs:
            base_kb = _status_kb("VmRSS")
            reset = _reset_peak()
            out.write(json.dumps({"solver": spec["solver"], "event": "start",
                                  "time": time.time()}) + "\n")
            out.flush()
            t0 = time.perf_counter()
            coef, intercept, n_iter, info = fit(spec, A, y)
            seconds = time.perf_counter() - t0
            peak_kb = _status_kb("VmHWM")
            out.write(json.dumps({
                "solver": spec["solver"], "event": "done", "seconds": seconds,
                "coef": [float(c) for c in coef], "intercept": float(intercept),
                "n_iter": n_iter, "peak_rss_mb": peak_kb / 1024,
                "fit_rss_mb": (peak_kb - base_kb) / 1024 if reset else None, **info}) + "\n")
            out.flush()
            del coef


if __name__ == "__main__":
    main(sys.argv[1:])
