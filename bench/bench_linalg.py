"""Benchmarks of the Hessian / linear-algebra building blocks against scipy and numpy.

Every test times fastnewton and its reference in the same run, on the same data, and
stores the sizes, the times and the ratio in ``benchmark.extra_info`` (also printed;
run with ``-s`` to see them).

Run: ``PYTHONPATH=. python -m pytest bench/bench_linalg.py --bench-size full -s
--benchmark-json=out.json``. Sizes (:data:`SIZES`) follow ``--bench-size``:

=========  ======================  ====================  ====================
size       gram / Hessian matvec   lstsq (n x d)         pcg, Newton-PCG
=========  ======================  ====================  ====================
quick      20,000 x 50             4,000 x 20            4,000 x 20
default    200,000 x 300           30,000 x 60           50,000 x 100
full       1,000,000 x 1000        200,000 x 200         200,000 x 200
=========  ======================  ====================  ====================

(20 nonzeros per row, or d if fewer; ``full`` is the issue's acceptance size.)
Precedence: an environment variable that is set wins over ``--bench-size`` for its own
size: ``FASTNEWTON_BENCH_GRAM_N``, ``FASTNEWTON_BENCH_GRAM_D``, ``FASTNEWTON_BENCH_LSTSQ_N``,
``FASTNEWTON_BENCH_LSTSQ_D``, ``FASTNEWTON_BENCH_PCG_N``, ``FASTNEWTON_BENCH_PCG_D``.
"""

import time

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import fastnewton as fn
from fastnewton._threads import thread_limit
from fastnewton.hessian import DiagLowRank, HessianOperator, SketchPreconditioner, gram
from fastnewton.linalg import Design, lstsq, pcg

#: Sizes of each ``--bench-size`` (environment variables in :data:`ENV` override them).
SIZES = {
    "quick": dict(gram_n=20_000, gram_d=50, lstsq_n=4_000, lstsq_d=20, pcg_n=4_000, pcg_d=20),
    "default": dict(gram_n=200_000, gram_d=300, lstsq_n=30_000, lstsq_d=60, pcg_n=50_000,
                    pcg_d=100),
    "full": dict(gram_n=1_000_000, gram_d=1000, lstsq_n=200_000, lstsq_d=200, pcg_n=200_000,
                 pcg_d=200),
}
ENV = {key: f"FASTNEWTON_BENCH_{key.upper()}" for key in SIZES["full"]}


@pytest.fixture(scope="module")
def cfg(sizes):
    """This run's sizes (``--bench-size`` and the environment overrides)."""
    return sizes(SIZES, ENV)


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


@pytest.fixture(scope="module")
def gram_data(cfg):
    n, d = cfg["gram_n"], cfg["gram_d"]
    data = fn.datasets.make_regression(n, d, nnz_per_row=min(20, d), seed=0)
    beta = np.random.default_rng(1).uniform(0.5, 2.0, n)
    return Design(data.A), beta


def _ill_conditioned_tall(n, d, sparse):
    rng = np.random.default_rng(2)
    if sparse:
        return fn.datasets.make_regression(n, d, nnz_per_row=min(20, d), cond=1e8, seed=rng).A
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * np.logspace(0, -8, d)) @ V.T


def test_gram_vs_scipy(benchmark, cfg, gram_data, timed):
    """Exact A^T diag(beta) A on CSR vs scipy's A.T @ (D @ A) (acceptance: >= 8x)."""
    design, beta = gram_data
    parts = DiagLowRank(beta)
    gram(design, parts)  # JIT warm-up
    G, t_ours = timed(benchmark, lambda: gram(design, parts), rounds=3)
    A = design.A
    D = sp.diags_array(beta)
    t_scipy, G_ref = _best_of(lambda: (A.T @ (D @ A)), 1)
    G_ref = G_ref.toarray()
    err = float(np.linalg.norm(G - G_ref) / np.linalg.norm(G_ref))
    _report(benchmark, "gram", bench_size=cfg["bench_size"], n=design.n, d=design.d,
            nnz=design.nnz, t_fastnewton=t_ours,
            t_scipy=t_scipy, speedup=t_scipy / t_ours, rel_err=err)
    assert err <= 1e-12


@pytest.mark.parametrize("threads", [1, None])
def test_hessian_matvec_vs_scipy_matvec(benchmark, threads, cfg, gram_data, timed):
    """One HessianOperator product vs one scipy A @ x (acceptance: <= 2.5x)."""
    design, beta = gram_data
    H = HessianOperator(design, DiagLowRank(beta), ridge=1e-3)
    p = np.random.default_rng(3).standard_normal(design.d)
    A = design.A
    with thread_limit(threads):
        H @ p
        _, t_ours = timed(benchmark, lambda: H @ p, rounds=20, warmup_rounds=2)
        t_scipy, _ = _best_of(lambda: A @ p, 20)
    _report(benchmark, f"hessian_matvec threads={threads or 'all'}",
            bench_size=cfg["bench_size"], n=design.n, d=design.d, nnz=design.nnz,
            t_hessian_matvec=t_ours, t_scipy_matvec=t_scipy, ratio=t_ours / t_scipy)


def test_pcg_vs_scipy_cg(benchmark, cfg, timed):
    """PCG + SketchPreconditioner vs unpreconditioned scipy cg on cond(H) >= 1e8, rtol 1e-10."""
    n, d = cfg["pcg_n"], cfg["pcg_d"]
    data = fn.datasets.make_regression(n, d, nnz_per_row=min(20, d), cond=3e4, seed=4)
    rng = np.random.default_rng(5)
    parts = DiagLowRank(rng.uniform(0.5, 2.0, n))
    design = Design(data.A)
    H = HessianOperator(design, parts)
    Hd = gram(design, parts)
    cond = float(np.linalg.cond(Hd))
    b = Hd @ rng.standard_normal(d)

    def ours():
        M = SketchPreconditioner(design, parts, "countsketch", seed=0)
        return pcg(H, b, rtol=1e-10, maxiter=1000, M=M)

    ours()
    res, t_ours = timed(benchmark, ours, rounds=3)
    count = [0]
    cap = 200 * max(res.nit, 1)
    t0 = time.perf_counter()
    x, info = spla.cg(H, b, rtol=1e-10, maxiter=cap,
                      callback=lambda xk: count.__setitem__(0, count[0] + 1))
    t_cg = time.perf_counter() - t0
    _report(benchmark, "pcg", bench_size=cfg["bench_size"], n=n, d=d, nnz=design.nnz,
            cond_H=cond, pcg_iters=res.nit,
            cg_iters=count[0], cg_converged=info == 0, iter_ratio=count[0] / res.nit,
            t_pcg=t_ours, t_cg=t_cg, speedup=t_cg / t_ours,
            pcg_true_rel_residual=float(np.linalg.norm(Hd @ res.x - b) / np.linalg.norm(b)))
    assert res.converged


def _backward_error(A, b, x, normA):
    r = b - A @ x
    return float(np.linalg.norm(A.T @ r) / (normA * (normA * np.linalg.norm(x)
                                                      + np.linalg.norm(b))))


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_lstsq_vs_lsqr_lsmr_numpy(benchmark, sparse, cfg, timed):
    """Sketch-and-precondition lstsq vs scipy lsqr/lsmr (capped) and numpy.linalg.lstsq."""
    n, d = cfg["lstsq_n"], cfg["lstsq_d"]
    A = _ill_conditioned_tall(n, d, sparse)
    rng = np.random.default_rng(6)
    b = A @ rng.standard_normal(d) + rng.standard_normal(n)
    lstsq(A, b, seed=0)
    res, t_ours = timed(benchmark, lambda: lstsq(A, b, seed=0), rounds=3)
    Ad = A.toarray() if sparse else A
    t_np, (x_np, *_) = _best_of(lambda: np.linalg.lstsq(Ad, b, rcond=None), 1)
    normA = float(spla.svds(A, k=1, return_singular_vectors=False, random_state=0)[0])
    r_np = float(np.linalg.norm(b - Ad @ x_np))
    iters = 20 * d  # lsqr/lsmr do not converge at cond 1e8: capped (slow on dense A)
    t_lsqr, out_lsqr = _best_of(lambda: spla.lsqr(A, b, atol=1e-14, btol=1e-14, conlim=0,
                                                 iter_lim=iters), 1)
    t_lsmr, out_lsmr = _best_of(lambda: spla.lsmr(A, b, atol=1e-14, btol=1e-14, conlim=0,
                                                 maxiter=iters), 1)
    _report(benchmark, f"lstsq {'sparse' if sparse else 'dense'}",
            bench_size=cfg["bench_size"], n=n, d=d,
            nnz=int(A.nnz) if sparse else n * d,
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


def test_newton_pcg_passes_per_step(benchmark, cfg, timed):
    """Newton-PCG on exp regression: passes over A per Newton step (acceptance: <= 12)."""
    n, d = cfg["pcg_n"], cfg["pcg_d"]
    data = fn.datasets.make_regression(n, d, nnz_per_row=min(20, d), cond=1e2, seed=7)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    fn.minimize(prob, method="pcg", tol=1e-10, seed=0)
    res, t_pcg = timed(benchmark, lambda: fn.minimize(prob, method="pcg", tol=1e-10, seed=0),
                       rounds=1)
    t0 = time.perf_counter()
    ref = fn.minimize(prob, method="exact", tol=1e-10)
    t_exact = time.perf_counter() - t0
    inner = res.history["inner_iters"][1:]
    sketches = int(np.count_nonzero(res.history["sketch_size"][1:]))
    # per step: CG products (1 fused pass each), gradient (1), line search A p (1);
    # per (re-)sketch: the sketch (<= 2 passes with the bucket layout)
    passes = (inner.sum() + 2 * res.nit + 2 * sketches) / res.nit
    _report(benchmark, "newton_pcg", bench_size=cfg["bench_size"], n=n, d=d,
            nnz=int(data.A.nnz), nit=res.nit, nit_exact=ref.nit,
            cg_iters=inner.tolist(), sketches=sketches, passes_per_step=float(passes),
            t_pcg=t_pcg, t_exact=t_exact,
            rel_diff_x=float(np.linalg.norm(res.x - ref.x) / np.linalg.norm(ref.x)))
    assert res.success
