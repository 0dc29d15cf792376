"""Benchmarks of the problem families (pytest-benchmark).

Run: ``PYTHONPATH=$PWD python -m pytest bench/bench_families.py --bench-size full
--benchmark-only``. Per family: the cost of one Newton-step's family work (loss,
gradient and Hessian parts in z, plus the gradient's pass Aᵀ) relative to one pass over
A, iterations of each method, and the end-to-end time of ``fn.minimize`` against scipy
L-BFGS-B on the same loss (same run; recorded in ``extra_info``). MultiSoftmax:
``hessp`` against the dense Kronecker product at a size where both fit.

Sizes (:data:`SIZES`) follow ``--bench-size``: the single-vector families on
n x d = 2,000 x 10 (quick), 10,000 x 30 (default), 20,000 x 50 (full; 5 nonzeros per
row); MultiSoftmax n = 50 / 100 / 200 with d = 5 / 8 / 10 (the Kronecker design is
n^2 x d^2); AttentionRegression n1 = n2 = 50 / 100 / 200, d = 10; the exp attention
kernel n = 200 / 500 / 1000, d = 50. Precedence: ``FASTNEWTON_BENCH_FAMILY_N`` and
``FASTNEWTON_BENCH_FAMILY_D``, when set, win over ``--bench-size`` for the
single-vector families' n and d. Every benchmark's ``extra_info`` has its sizes.
"""

import time

import numpy as np
import pytest
import scipy.optimize

import fastnewton as fn

#: Sizes of each ``--bench-size`` (environment variables in :data:`ENV` override them).
SIZES = {
    "quick": dict(n=2_000, d=10, kron_n=50, kron_d=5, attn_n=50, kernel_n=200),
    "default": dict(n=10_000, d=30, kron_n=100, kron_d=8, attn_n=100, kernel_n=500),
    "full": dict(n=20_000, d=50, kron_n=200, kron_d=10, attn_n=200, kernel_n=1000),
}
ENV = {"n": "FASTNEWTON_BENCH_FAMILY_N", "d": "FASTNEWTON_BENCH_FAMILY_D"}
NAMES = ("copyright", "rescaled-cosh", "resnet", "softmax", "twolayer")


@pytest.fixture(scope="module")
def cfg(sizes):
    """This run's sizes (``--bench-size`` and the environment overrides)."""
    return sizes(SIZES, ENV)


def _instances(N, D):
    """The single-vector family problems on one seeded N x D design."""
    rng = np.random.default_rng(0)
    A = fn.datasets.make_regression(N, D, nnz_per_row=min(5, D), seed=1).A
    z = A @ (0.5 * rng.standard_normal(D))
    s = np.exp(z - z.max())
    soft = s / s.sum()
    fz = np.cosh(z)
    v = np.exp(z) + z
    H = 20.0 * rng.standard_normal((N, 3))
    n1 = 3 * N // 4
    return {
        "softmax": fn.SoftmaxRegression(A, soft, lam=1e-7),
        "rescaled-cosh": fn.RescaledRegression(A, fz / fz.sum(), f="cosh", lam=1e-3),
        "resnet": fn.ResNetSoftmaxRegression(A, v / v.sum(), lam=1e-7),
        "copyright": fn.CopyrightRegression(A[:n1], soft[:n1] / soft[:n1].sum(), A[n1:],
                                            soft[n1:] / soft[n1:].sum(), 1e-4, 0.3, lam=1e-7),
        "twolayer": fn.TwoLayerRegression(A, H, np.logaddexp(0, H.T @ soft), w=0.3, lam=1e-9),
    }


@pytest.fixture(scope="module")
def instances(cfg):
    out = _instances(cfg["n"], cfg["d"])
    assert sorted(out) == sorted(NAMES)
    return out


def _x0(name, d):
    return np.full(d, 0.1) if name == "rescaled-cosh" else np.zeros(d)


def _info(prob, cfg):
    return dict(n=prob.n, d=prob.d, nnz=prob.design.nnz, bench_size=cfg["bench_size"])


@pytest.mark.parametrize("name", NAMES)
def test_bench_family_step_vs_pass(benchmark, name, instances, cfg, timed):
    prob = instances[name]
    x = _x0(name, prob.d) + 0.01
    z = prob.design.matvec(x)

    def family_work():
        _, gz = prob.loss_grad_z(z)
        prob.parts_z(z)
        return prob.design.rmatvec(gz)

    family_work()
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        prob.design.matvec(x)
    t_pass = (time.perf_counter() - t0) / reps
    _, t_work = timed(benchmark, family_work, rounds=reps, stat="mean")
    benchmark.extra_info.update(**_info(prob, cfg), pass_seconds=t_pass,
                                passes_per_family_step=t_work / t_pass)


@pytest.mark.parametrize("name", NAMES)
def test_bench_family_end_to_end(benchmark, name, instances, cfg):
    prob = instances[name]
    x0 = _x0(name, prob.d)
    info = {}
    for method in ("exact", "sketch"):
        t0 = time.perf_counter()
        res = fn.minimize(prob, x0=x0, method=method, seed=0, maxiter=200)
        info[f"{method}_nit"] = res.nit
        info[f"{method}_seconds"] = time.perf_counter() - t0
        info[f"{method}_success"] = bool(res.success)
    g0 = np.linalg.norm(prob.jac(x0))
    t0 = time.perf_counter()
    lb = scipy.optimize.minimize(prob.fun, x0, jac=prob.jac, method="L-BFGS-B",
                                 options={"maxiter": 20000, "gtol": 1e-8 * g0 / np.sqrt(prob.d),
                                          "ftol": 0.0})
    info.update(lbfgs_nit=lb.nit, lbfgs_seconds=time.perf_counter() - t0,
                lbfgs_rel_grad=float(np.linalg.norm(prob.jac(lb.x)) / g0))
    benchmark.pedantic(fn.minimize, args=(prob,), kwargs=dict(x0=x0, method="exact"),
                       rounds=1, iterations=1)
    benchmark.extra_info.update(**_info(prob, cfg), **info)


def test_bench_multisoftmax_hessp_vs_kronecker(benchmark, cfg, timed):
    rng = np.random.default_rng(0)
    n, d = cfg["kron_n"], cfg["kron_d"]  # full: the Kronecker design is 40000 x 100 (32 MB)
    A1, A2 = 0.3 * rng.standard_normal((n, d)), 0.3 * rng.standard_normal((n, d))
    B = rng.random((n, n))
    B /= B.sum(axis=1, keepdims=True)
    prob = fn.MultiSoftmaxRegression(A1, A2, B, lam=1e-4)
    x, p = 0.1 * rng.standard_normal(d * d), rng.standard_normal(d * d)
    K = np.kron(A1, A2)
    Bz = prob.hessian_parts(x).to_dense() if n * n <= 4000 else None
    parts = prob.hessian_parts(x)

    def dense_hessp():  # same parts, but through the materialized Kronecker design
        return K.T @ parts.matvec((K @ p).reshape(n, n)).ravel() + prob.lam * p

    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        ref = dense_hessp()
    t_dense = (time.perf_counter() - t0) / reps
    out, t_hessp = timed(benchmark, lambda: prob.hessp(x, p), rounds=reps, stat="mean")
    assert np.allclose(out, ref, rtol=1e-10, atol=1e-14)
    res = prob.solve()
    benchmark.extra_info.update(n=n, d=d, bench_size=cfg["bench_size"],
                                dense_kronecker_seconds=t_dense, speedup=t_dense / t_hessp,
                                solve_nit=res.nit, solve_cg=int(res.history["cg_iters"].sum()),
                                bz_formed=Bz is not None)


def test_bench_attention_solve(benchmark, cfg):
    """AttentionRegression (full: n1 = n2 = 200, d = 10): variable-projection trust-region
    Newton-CG against scipy trust-krylov (same fun/jac/hessp) and L-BFGS-B, same run.
    Non-convex: the methods may end in different local minima (their objectives are
    recorded)."""
    rng = np.random.default_rng(0)
    n, d, d3, m = cfg["attn_n"], 10, 5, 3
    prob = fn.AttentionRegression(rng.standard_normal((n, d)) / np.sqrt(d),
                                  rng.standard_normal((n, d)) / np.sqrt(d),
                                  rng.standard_normal((n, d3)), rng.standard_normal((n, m)),
                                  lam=1e-2)
    x0 = np.zeros(prob.size)
    g0 = np.linalg.norm(prob.jac(x0))
    res = benchmark.pedantic(prob.solve, kwargs=dict(tol=1e-8, maxiter=500), rounds=1,
                             iterations=1)
    info = dict(nit=res.nit, cg=int(res.history["cg_iters"].sum()), fun=res.fun,
                rel_grad=res.grad_norm / g0, seconds=res.time)
    for method, kw in (("trust-krylov", {"hessp": prob.hessp}), ("L-BFGS-B", {})):
        t0 = time.perf_counter()
        opts = {"gtol": 1e-8 * g0} if method != "L-BFGS-B" else {
            "gtol": 1e-8 * g0 / np.sqrt(prob.size), "ftol": 0.0, "maxiter": 20000}
        ref = scipy.optimize.minimize(prob.fun, x0, jac=prob.jac, method=method,
                                      options=opts, **kw)
        key = method.replace("-", "_").lower()
        info.update({f"{key}_nit": ref.nit, f"{key}_seconds": time.perf_counter() - t0,
                     f"{key}_fun": ref.fun,
                     f"{key}_rel_grad": float(np.linalg.norm(prob.jac(ref.x)) / g0)})
    benchmark.extra_info.update(n1=n, n2=n, d=d, d3=d3, m=m, bench_size=cfg["bench_size"],
                                **info)


def test_bench_exp_kernel_solve(benchmark, cfg, timed):
    """exp(A Aᵀ) x = b (full: n = 1000, d = 50): Nyström-preconditioned CG against plain
    CG and a dense solve (K formed, LU), same run."""
    rng = np.random.default_rng(0)
    n, d = cfg["kernel_n"], 50
    A = 1.2 * rng.standard_normal((n, d)) / np.sqrt(d)
    b = rng.standard_normal(n)
    prob = fn.AttentionKernelRegression(A, b, kind="exp")
    # warm-up round: the first LAPACK call takes ~1 s here
    res, t_solve = timed(benchmark, lambda: prob.solve(rtol=1e-10, seed=0), rounds=3,
                         warmup_rounds=1)
    t0 = time.perf_counter()
    plain = fn.linalg.pcg(prob.kernel, b, rtol=1e-10, maxiter=10 * n)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    x_dense = np.linalg.solve(np.exp(A @ A.T), b)
    t_dense = time.perf_counter() - t0
    benchmark.extra_info.update(
        n=n, d=d, bench_size=cfg["bench_size"], nystrom_rank=res.rank, nit=res.nit,
        residual=res.residual, seconds=t_solve, plain_cg_nit=plain.nit, plain_cg_seconds=t_plain,
        dense_solve_seconds=t_dense,
        rel_err_vs_dense=float(np.linalg.norm(res.x - x_dense) / np.linalg.norm(x_dense)))
