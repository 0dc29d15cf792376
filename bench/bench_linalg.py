"""Benchmarks of the Hessian / linear-algebra building blocks against scipy and numpy.

Every test times fastnewton and its reference in the same run, on the same data, and
stores the sizes, the times and the ratio in ``benchmark.extra_info`` (also printed;
run with ``-s`` to see them). Sizes default to the acceptance sizes of the issue and
can be lowered through environment variables on a small machine:

``FASTNEWTON_BENCH_GRAM_N`` (default 1_000_000), ``FASTNEWTON_BENCH_GRAM_D`` (1000),
``FASTNEWTON_BENCH_LSTSQ_N`` (200_000), ``FASTNEWTON_BENCH_LSTSQ_D`` (200),
``FASTNEWTON_BENCH_PCG_N`` (200_000), ``FASTNEWTON_BENCH_PCG_D`` (200).

Run: ``PYTHONPATH=. python -m pytest bench/bench_linalg.py -s --benchmark-json=out.json``.
"""

import functools
import os
import time

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import fastnewton as fn
from fastnewton._threads import thread_limit
from fastnewton.hessian import DiagLowRank, HessianOperator, SketchPreconditioner, gram
from fastnewton.linalg import Design, lstsq, pcg


def _env(name, default):
    return int(float(os.environ.get(name, default)))


GRAM_N = _env("FASTNEWTON_BENCH_GRAM_N", 1_000_000)
GRAM_D = _env("FASTNEWTON_BENCH_GRAM_D", 1000)
LSTSQ_N = _env("FASTNEWTON_BENCH_LSTSQ_N", 200_000)
LSTSQ_D = _env("FASTNEWTON_BENCH_LSTSQ_D", 200)
PCG_N = _env("FASTNEWTON_BENCH_PCG_N", 200_000)
PCG_D = _env("FASTNEWTON_BENCH_PCG_D", 200)


def _best_of(fun, rounds):
    best, out = np.inf, None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fun()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _report(benchmark, name, **info):
    benchmark.extra_info.update(info)
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in info.items())
    print(f"\n[bench_linalg] {name}: {shown}")


@functools.lru_cache(maxsize=None)
def _gram_data():
    data = fn.datasets.make_regression(GRAM_N, GRAM_D, nnz_per_row=20, seed=0)
    beta = np.random.default_rng(1).uniform(0.5, 2.0, GRAM_N)
    return Design(data.A), beta


@functools.lru_cache(maxsize=None)
def _ill_conditioned_tall(n, d, sparse):
    rng = np.random.default_rng(2)
    if sparse:
        return fn.datasets.make_regression(n, d, nnz_per_row=20, cond=1e8, seed=rng).A
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * np.logspace(0, -8, d)) @ V.T


def test_gram_vs_scipy(benchmark):
    """Exact A^T diag(beta) A on CSR vs scipy's A.T @ (D @ A) (acceptance: >= 8x)."""
    design, beta = _gram_data()
    parts = DiagLowRank(beta)
    gram(design, parts)  # JIT warm-up
    G = benchmark.pedantic(lambda: gram(design, parts), rounds=3, iterations=1)
    A = design.A
    D = sp.diags_array(beta)
    t_scipy, G_ref = _best_of(lambda: (A.T @ (D @ A)), 1)
    G_ref = G_ref.toarray()
    err = float(np.linalg.norm(G - G_ref) / np.linalg.norm(G_ref))
    t_ours = benchmark.stats.stats.min
    _report(benchmark, "gram", n=GRAM_N, d=GRAM_D, nnz=design.nnz, t_fastnewton=t_ours,
            t_scipy=t_scipy, speedup=t_scipy / t_ours, rel_err=err)
    assert err <= 1e-12


@pytest.mark.parametrize("threads", [1, None])
def test_hessian_matvec_vs_scipy_matvec(benchmark, threads):
    """One HessianOperator product vs one scipy A @ x (acceptance: <= 2.5x)."""
    design, beta = _gram_data()
    H = HessianOperator(design, DiagLowRank(beta), ridge=1e-3)
    p = np.random.default_rng(3).standard_normal(design.d)
    A = design.A
    with thread_limit(threads):
        H @ p
        benchmark.pedantic(lambda: H @ p, rounds=20, iterations=1, warmup_rounds=2)
        t_scipy, _ = _best_of(lambda: A @ p, 20)
    t_ours = benchmark.stats.stats.min
    _report(benchmark, f"hessian_matvec threads={threads or 'all'}", n=GRAM_N, d=GRAM_D,
            t_hessian_matvec=t_ours, t_scipy_matvec=t_scipy, ratio=t_ours / t_scipy)


def test_pcg_vs_scipy_cg(benchmark):
    """PCG + SketchPreconditioner vs unpreconditioned scipy cg on cond(H) >= 1e8, rtol 1e-10."""
    data = fn.datasets.make_regression(PCG_N, PCG_D, nnz_per_row=20, cond=3e4, seed=4)
    rng = np.random.default_rng(5)
    parts = DiagLowRank(rng.uniform(0.5, 2.0, PCG_N))
    design = Design(data.A)
    H = HessianOperator(design, parts)
    Hd = gram(design, parts)
    cond = float(np.linalg.cond(Hd))
    b = Hd @ rng.standard_normal(PCG_D)

    def ours():
        M = SketchPreconditioner(design, parts, "countsketch", seed=0)
        return pcg(H, b, rtol=1e-10, maxiter=1000, M=M)

    ours()
    res = benchmark.pedantic(ours, rounds=3, iterations=1)
    count = [0]
    cap = 200 * max(res.nit, 1)
    t0 = time.perf_counter()
    x, info = spla.cg(H, b, rtol=1e-10, maxiter=cap,
                      callback=lambda xk: count.__setitem__(0, count[0] + 1))
    t_cg = time.perf_counter() - t0
    t_ours = benchmark.stats.stats.min
    _report(benchmark, "pcg", n=PCG_N, d=PCG_D, cond_H=cond, pcg_iters=res.nit,
            cg_iters=count[0], cg_converged=info == 0, iter_ratio=count[0] / res.nit,
            t_pcg=t_ours, t_cg=t_cg, speedup=t_cg / t_ours,
            pcg_true_rel_residual=float(np.linalg.norm(Hd @ res.x - b) / np.linalg.norm(b)))
    assert res.converged


def _backward_error(A, b, x, normA):
    r = b - A @ x
    return float(np.linalg.norm(A.T @ r) / (normA * (normA * np.linalg.norm(x)
                                                      + np.linalg.norm(b))))


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_lstsq_vs_lsqr_lsmr_numpy(benchmark, sparse):
    """Sketch-and-precondition lstsq vs scipy lsqr/lsmr (capped) and numpy.linalg.lstsq."""
    n, d = LSTSQ_N, LSTSQ_D
    A = _ill_conditioned_tall(n, d, sparse)
    rng = np.random.default_rng(6)
    b = A @ rng.standard_normal(d) + rng.standard_normal(n)
    lstsq(A, b, seed=0)
    res = benchmark.pedantic(lambda: lstsq(A, b, seed=0), rounds=3, iterations=1)
    t_ours = benchmark.stats.stats.min
    Ad = A.toarray() if sparse else A
    t_np, (x_np, *_) = _best_of(lambda: np.linalg.lstsq(Ad, b, rcond=None), 1)
    normA = float(spla.svds(A, k=1, return_singular_vectors=False, random_state=0)[0])
    r_np = float(np.linalg.norm(b - Ad @ x_np))
    iters = 20 * d  # lsqr/lsmr do not converge at cond 1e8: capped (slow on dense A)
    t_lsqr, out_lsqr = _best_of(lambda: spla.lsqr(A, b, atol=1e-14, btol=1e-14, conlim=0,
                                                 iter_lim=iters), 1)
    t_lsmr, out_lsmr = _best_of(lambda: spla.lsmr(A, b, atol=1e-14, btol=1e-14, conlim=0,
                                                 maxiter=iters), 1)
    _report(benchmark, f"lstsq {'sparse' if sparse else 'dense'}", n=n, d=d,
            t_lstsq=t_ours, lstsq_iters=res.nit, lstsq_sketch=res.sketch,
            lstsq_backward=_backward_error(A, b, res.x, normA),
            lstsq_resid_rel_to_numpy=abs(res.residual_norm - r_np) / r_np,
            t_numpy=t_np, numpy_backward=_backward_error(A, b, x_np, normA),
            t_lsqr=t_lsqr, lsqr_iters=int(out_lsqr[2]),
            lsqr_backward=_backward_error(A, b, out_lsqr[0], normA),
            t_lsmr=t_lsmr, lsmr_iters=int(out_lsmr[2]),
            lsmr_backward=_backward_error(A, b, out_lsmr[0], normA),
            speedup_vs_numpy=t_np / t_ours, speedup_vs_lsqr=t_lsqr / t_ours,
            speedup_vs_lsmr=t_lsmr / t_ours)


def test_newton_pcg_passes_per_step(benchmark):
    """Newton-PCG on exp regression: passes over A per Newton step (acceptance: <= 12)."""
    data = fn.datasets.make_regression(PCG_N, PCG_D, nnz_per_row=20, cond=1e2, seed=7)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    fn.minimize(prob, method="pcg", tol=1e-10, seed=0)
    res = benchmark.pedantic(lambda: fn.minimize(prob, method="pcg", tol=1e-10, seed=0),
                             rounds=1, iterations=1)
    t0 = time.perf_counter()
    ref = fn.minimize(prob, method="exact", tol=1e-10)
    t_exact = time.perf_counter() - t0
    inner = res.history["inner_iters"][1:]
    sketches = int(np.count_nonzero(res.history["sketch_size"][1:]))
    # per step: CG products (1 fused pass each), gradient (1), line search A p (1);
    # per (re-)sketch: the sketch (<= 2 passes with the bucket layout)
    passes = (inner.sum() + 2 * res.nit + 2 * sketches) / res.nit
    _report(benchmark, "newton_pcg", n=PCG_N, d=PCG_D, nit=res.nit, nit_exact=ref.nit,
            cg_iters=inner.tolist(), sketches=sketches, passes_per_step=float(passes),
            t_pcg=benchmark.stats.stats.min, t_exact=t_exact,
            rel_diff_x=float(np.linalg.norm(res.x - ref.x) / np.linalg.norm(ref.x)))
    assert res.success
