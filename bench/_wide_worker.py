"""One process of the wide race (bench/bench_wide.py): fit solver(s) on data from an .npz.

    python bench/_wide_worker.py DATA.npz SPECS.json OUT.jsonl

``SPECS.json``: a list of ``{"solver": "fastnewton-auto" | "sklearn-lbfgs" | ..., "family":
"binomial" | "poisson", "lam", "tol", "max_iter"}``. Each solver is warmed up on the first
2,000 rows first (imports, JIT compilation, cache loads), then timed from the data in
memory to the fitted coefficients. One JSON line per solver is appended to ``OUT.jsonl``
(a "start" line before). Memory per solver: ``peak_rss_mb``, the process's VmHWM after the
fit, reset before it (``clear_refs`` 5; the process holds A and the runtime, so this is
what a user's process would peak at), ``fit_rss_mb`` its growth over the RSS before the
fit, and ``maxrss_mb``, ``getrusage(RUSAGE_SELF).ru_maxrss`` (the process lifetime).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp


# The shared worker plumbing of the races (peak-memory probes, data loading, the
# peers' intercept start) lives in the GLM race's worker.
from _glm_worker import _reset_peak, _start_intercept, _status_kb, load  # noqa: E402


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
            res = fn.minimize(prob, x0, method=name, tol=tol, maxiter=max_iter, seed=0)
        info = {"method": res.method, "message": res.message, "success": bool(res.success),
                "cg_iters": int(res.history["inner_iters"].sum()),
                "phases": {k: float(v) for k, v in res.timings.items()}}
        return res.x[:-1], float(res.x[-1]), int(res.nit), info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if lib == "sklearn":
            import sklearn.linear_model as lm

            if family == "binomial":
                extra = {"intercept_scaling": 10.0} if name == "liblinear" else {}
                est = lm.LogisticRegression(C=1.0 / lam, solver=name, tol=tol,
                                            max_iter=max_iter, **extra)
            else:
                est = lm.PoissonRegressor(alpha=lam / n, solver=name, tol=tol, max_iter=max_iter)
            est.fit(A, y)
            out = (np.ravel(est.coef_), float(np.ravel(est.intercept_)[0]),
                   int(np.max(est.n_iter_)))
        elif lib == "glum":
            from glum import GeneralizedLinearRegressor

            est = GeneralizedLinearRegressor(family=family, alpha=lam / n, l1_ratio=0.0,
                                             solver=name, gradient_tol=tol, max_iter=max_iter,
                                             fit_intercept=True)
            est.fit(A, y)
            out = np.ravel(est.coef_), float(est.intercept_), int(est.n_iter_)
        else:
            raise ValueError(f"unknown solver {solver!r}")
    info["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:120]}" for w in caught})
    return (*out, info)


def main(argv):
    data_path, spec_path, out_path = argv
    with open(spec_path) as fh:
        specs = json.load(fh)
    A, y = load(data_path)
    for spec in specs:  # warm-up: imports, JIT compilation / cache loads, lazy set-up
        m = min(A.shape[0], 20000)
        fit(dict(spec, max_iter=5), A[:m], y[:m])
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
                "fit_rss_mb": (peak_kb - base_kb) / 1024 if reset else None,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                **info}) + "\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
