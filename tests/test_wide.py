"""method="wide" (matrix-free Newton-CG, Jacobi or Jacobi-scaled Nystrom preconditioner),
the memory estimates and MemoryBudgetError, and auto's choice on wide problems."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton import _memory
from fastnewton._steps import STEP_MODELS
from fastnewton._threads import thread_limit
from fastnewton._wide import WideStep
from fastnewton.exceptions import MemoryBudgetError, ValidationError
from fastnewton.hessian import (DiagLowRank, DiagonalPreconditioner, ScaledNystromPreconditioner,
                                hessian_diagonal)
from fastnewton.linalg import InterceptDesign
from fastnewton.newton import METHODS, _resolve_method

N, D = 3000, 25


@numba.njit
def logcosh(z, y):
    r = z - y
    t = np.tanh(r)
    return np.abs(r) + np.log1p(np.exp(-2.0 * np.abs(r))) - np.log(2.0), t, 1.0 - t * t


def _simplex(v):
    v = np.asarray(v, dtype=np.float64)
    return v / v.sum()


def _case(name, rng):
    """(problem, x0) of a small, well-posed (convex, lam > 0 where needed) instance."""
    A = fn.datasets.make_regression(N, D, nnz_per_row=5, seed=rng).A
    x_true = 0.5 * rng.standard_normal(D)
    z = A @ x_true
    noise = np.exp(0.1 * rng.standard_normal(N))
    if name in ("exp", "cosh", "sinh"):
        data = fn.datasets.make_regression(N, D, nnz_per_row=5, cond=1e2, family=name,
                                           w="convex", seed=rng)
        return fn.ExpRegression(data.A, data.b, data.w, f=name, lam=1e-3), \
            0.3 * rng.standard_normal(D)
    if name == "softmax":
        return fn.SoftmaxRegression(A, _simplex(np.exp(z - z.max()) * noise), lam=1e-4), None
    if name == "rescaled":
        return fn.RescaledRegression(A, _simplex(np.exp(z) * noise), f="exp", lam=1e-3), None
    if name == "resnet":
        return fn.ResNetSoftmaxRegression(A, _simplex((np.exp(z) + z - z.min() + 1) * noise),
                                          lam=1e-3), None
    if name == "copyright":
        n1 = 3 * N // 4
        b = np.exp(z - z.max()) * noise
        return fn.CopyrightRegression(A[:n1], _simplex(b[:n1]), A[n1:], _simplex(b[n1:]),
                                      1e-4, 0.3, lam=1e-3), None
    if name == "twolayer":
        H = 20.0 * rng.standard_normal((N, 3))
        s = np.exp(z - z.max())
        b = np.logaddexp(0.0, H.T @ (s / s.sum())) + 0.01 * rng.standard_normal(3)
        return fn.TwoLayerRegression(A, H, b, sigma="softplus", w=0.3, lam=1e-2), None
    family, _, icpt = name.partition("-")
    fit_intercept = icpt == "intercept"
    if family == "separable":
        y = z + 0.1 * rng.standard_normal(N)
        return fn.SeparableLoss(A, y, logcosh, fit_intercept=fit_intercept, lam=1e-2), None
    eta = 0.3 * z / max(np.std(z), 1e-12)
    mu = np.exp(eta)
    y = {"binomial": lambda: (rng.uniform(size=N) < 1 / (1 + np.exp(-eta))).astype(float),
         "poisson": lambda: rng.poisson(mu).astype(float),
         "gamma": lambda: rng.gamma(2.0, mu / 2.0),
         "tweedie": lambda: rng.poisson(mu) * rng.gamma(2.0, 0.5, N),
         "normal": lambda: eta + 0.1 * rng.standard_normal(N)}[family]()
    power = 1.5 if family == "tweedie" else None
    return fn.GLMRegression(A, y, family=family, power=power, fit_intercept=fit_intercept,
                            lam=1.0), None


CASES = ["exp", "cosh", "sinh", "softmax", "rescaled", "resnet", "copyright", "twolayer"] + [
    f"{f}-{i}" for f in ("binomial", "poisson", "gamma", "tweedie", "normal", "separable")
    for i in ("intercept", "plain")]


def test_wide_is_registered():
    assert "wide" in METHODS and STEP_MODELS["wide"] is WideStep


@pytest.mark.parametrize("name", CASES)
def test_wide_matches_exact_on_every_family(rng, name):
    prob, x0 = _case(name, rng)
    with thread_limit(1):  # many tiny products: thread launches dominate on busy CPUs
        ref = fn.minimize(prob, x0, method="exact", tol=1e-12, maxiter=200)
        res = fn.minimize(prob, x0, method="wide", tol=1e-12, maxiter=200, seed=rng)
    assert ref.success, ref.message
    assert res.success and res.method == "wide", res.message
    assert res.grad_norm <= 1e-12 * res.history["grad_norm"][0] or res.status != 0
    assert np.linalg.norm(res.x - ref.x) <= 1e-8 * max(1.0, np.linalg.norm(ref.x))
    assert (res.history["inner_iters"][1:] >= 1).all()  # CG, not a direct solve


@pytest.mark.parametrize("name", ["binomial-intercept", "softmax", "cosh"])
def test_wide_nystrom_and_gradreg_match_exact(rng, name):
    prob, x0 = _case(name, rng)
    with thread_limit(1):
        ref = fn.minimize(prob, x0, method="exact", tol=1e-12)
        nys = fn.minimize(prob, x0, method="wide", sketch_size=10, tol=1e-12, seed=rng)
        reg = fn.minimize(prob, x0, method="wide", globalization="gradreg", tol=1e-12)
    for res in (nys, reg):
        assert res.success, res.message
        assert np.linalg.norm(res.x - ref.x) <= 1e-8 * max(1.0, np.linalg.norm(ref.x))
    assert nys.history["sketch_size"][1] == 10  # built at the first step


def _dense_hessian(A, parts, ridge):
    A = A.toarray() if sp.issparse(A) else np.asarray(A)
    return A.T @ parts.to_dense() @ A + np.diag(np.broadcast_to(ridge, A.shape[1]))


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("low_rank", [False, True])
def test_hessian_diagonal_matches_dense(rng, sparse, intercept, low_rank):
    n, d = 9000, 12  # more than one row block
    A = sp.random_array((n, d), density=0.3, format="csr", random_state=rng)
    if not sparse:
        A = A.toarray()
    design = InterceptDesign(A) if intercept else fn.linalg.Design(A)
    beta = rng.standard_normal(n)
    U = rng.standard_normal((n, 2)) if low_rank else None
    C = np.array([[1.0, 0.3], [0.3, -0.5]]) if low_rank else None
    parts = DiagLowRank(beta, U, C)
    ridge = rng.uniform(0.1, 1.0, design.d)
    dense_A = np.column_stack([A.toarray() if sparse else A, np.ones(n)]) if intercept else A
    H = _dense_hessian(dense_A, parts, ridge)
    np.testing.assert_allclose(hessian_diagonal(design, parts, ridge), np.diag(H), rtol=1e-10,
                               atol=1e-10 * np.abs(np.diag(H)).max())
    with thread_limit(1):
        one = hessian_diagonal(design, parts, ridge)
    with thread_limit(2):
        two = hessian_diagonal(design, parts, ridge)
    np.testing.assert_array_equal(one, two)  # fixed row blocks: the same bits


def test_diagonal_preconditioner_inverts_the_positive_diagonal(rng):
    n, d = 400, 8
    mask = np.ones(d)
    mask[3] = 0.0  # an empty column: no curvature there without a ridge
    A = sp.csr_array(sp.random_array((n, d), density=0.4, format="csr", random_state=rng)
                     @ sp.diags_array(mask))
    A.eliminate_zeros()
    A.sort_indices()
    beta = rng.standard_normal(n)  # indefinite: only beta_+ enters
    parts = DiagLowRank(beta)
    M = DiagonalPreconditioner(A, parts, 0.0)
    plus = np.diag(_dense_hessian(A, DiagLowRank(np.maximum(beta, 0)), 0.0))
    expect = np.where(plus > 1e-12 * plus.max(), plus, plus.max())
    np.testing.assert_allclose(M.diagonal, expect, rtol=1e-12)
    r = rng.standard_normal(d)
    np.testing.assert_allclose(M @ r, r / expect, rtol=1e-12)
    np.testing.assert_allclose(M.with_shift(2.0) @ r, r / (expect + 2.0), rtol=1e-12)



@pytest.mark.parametrize("dense", [False, True])
def test_fused_gradient_pass_gives_the_jacobi_preconditioner(rng, dense):
    """WideStep's evaluation computes the gradient and the Jacobi diagonal in one pass:
    the same objective and gradient as the problem's, the same preconditioner bits as
    DiagonalPreconditioner, and a preconditioner that direction() then reuses."""
    prob, _ = _case("poisson-intercept", rng)
    if dense:
        prob = fn.GLMRegression(prob.design.base.A.toarray(), prob.y, family="poisson",
                                lam=1.0)
    x = 0.1 * rng.standard_normal(prob.d)
    z = prob.design.matvec(x)
    step = WideStep(prob, rng, None, None)
    timings = dict.fromkeys(("gradient", "sketch", "assemble", "solve"), 0.0)
    f, g, parts = step.objective_gradient(x, z, timings)
    f_ref, gz = prob.loss_grad_z(z)
    np.testing.assert_allclose(f, f_ref + 0.5 * x[:-1] @ x[:-1], rtol=1e-13)
    np.testing.assert_allclose(g, prob.design.rmatvec(gz) + prob.lam * x, rtol=1e-12,
                               atol=1e-12 * np.abs(g).max())
    ref = DiagonalPreconditioner(prob.design, parts, prob.lam)
    held_parts, M = step._precond
    assert held_parts is parts
    np.testing.assert_array_equal(M.diagonal, ref.diagonal)
    step.direction(parts, g, timings)
    assert step._precond[1] is M and timings["assemble"] < 0.1  # reused, not rebuilt
    with pytest.raises(ValueError, match="diagonal must be 1-D"):
        DiagonalPreconditioner.from_diagonal(np.ones((2, 2)))

def test_scaled_nystrom_preconditioner_matches_its_formula(rng):
    n, d, k = 600, 15, 6
    A = rng.standard_normal((n, d)) * np.logspace(0, 2, d)
    parts = DiagLowRank(rng.uniform(0.1, 1.0, n))
    M = ScaledNystromPreconditioner(A, parts, k, ridge=0.5, seed=0)
    H = _dense_hessian(A, parts, 0.5)
    Dm = np.diag(1.0 / np.sqrt(np.diag(H)))
    K = Dm @ H @ Dm
    Mdense = M @ np.eye(d)
    np.testing.assert_allclose(Mdense, Mdense.T, atol=1e-12 * np.abs(Mdense).max())
    assert np.linalg.eigvalsh(Mdense).min() > 0
    # M = D^-1/2 P^-1 D^-1/2 deflates the top k eigenvalues of K: P^-1 K spreads less than K
    Pinv = np.linalg.inv(Dm) @ Mdense @ np.linalg.inv(Dm)
    ev = np.sort(np.linalg.eigvals(Pinv @ K).real)
    evk = np.linalg.eigvalsh(K)
    assert ev[-1] / ev[0] < evk[-1] / evk[0]
    assert M._V.shape == (d, M.rank) and M.rank <= k
    np.testing.assert_allclose(M.diagonal, np.diag(H), rtol=1e-12)


def test_wide_step_rejects_a_rank_above_d(rng):
    prob, _ = _case("binomial-intercept", rng)
    with pytest.raises(ValidationError, match="sketch_size .* at most d"):
        fn.minimize(prob, method="wide", sketch_size=prob.d + 1)


# -- memory ----------------------------------------------------------------------------------

def _too_wide(rng, d=200_000, n=300):
    """A problem with d = 200,000 columns and almost no nonzeros: tiny in memory, but its
    d x d Hessian would need 298 GiB."""
    A = sp.random_array((n, d), density=3.0 / d, format="csr", random_state=rng)
    y = (rng.uniform(size=n) < 0.5).astype(float)
    return fn.GLMRegression(A, y, family="binomial", lam=1.0)


@pytest.mark.parametrize("method", ["exact", "sketch", "pcg", "sample"])
def test_forced_dense_method_on_too_wide_problem_raises_before_allocating(rng, method):
    import tracemalloc

    prob = _too_wide(rng)
    tracemalloc.start()
    try:
        with pytest.raises(MemoryBudgetError, match=rf"method='{method}' needs about .* GiB .* "
                                                   r"available; method='wide' fits"):
            fn.minimize(prob, method=method)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20  # nothing d x d or m x d was allocated
    assert issubclass(MemoryBudgetError, MemoryError)


def test_forced_method_refused_under_a_small_budget(rng, monkeypatch):
    prob, _ = _case("binomial-intercept", rng)
    monkeypatch.setattr(_memory, "available_memory", lambda: 2.0**10)
    with pytest.raises(MemoryBudgetError, match="method='exact' needs about"):
        fn.minimize(prob, method="exact")
    monkeypatch.setattr(_memory, "available_memory", lambda: 2.0**30)
    assert fn.minimize(prob, method="exact").success


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTNEWTON_MEMORY_LIMIT", "3G")
    assert _memory.available_memory() <= 3 * 2**30
    monkeypatch.setenv("FASTNEWTON_MEMORY_LIMIT", "lots")
    with pytest.raises(ValidationError, match="FASTNEWTON_MEMORY_LIMIT must be a number"):
        _memory.available_memory()


def test_sketch_size_that_does_not_fit_is_refused_with_a_size_that_does(rng):
    prob, _ = _case("binomial-intercept", rng)  # d = 26: m = 8d = 208 rows
    s = _memory.problem_stats(prob)
    need0 = _memory.method_memory("sketch", s["n"], s["d"], s["nnz"], sketch_size=0)
    avail = (need0 + 8.0 * s["d"] * 100) / _memory.FORCED_MEMORY_FRACTION  # 100 rows fit
    with pytest.raises(MemoryBudgetError, match=r"sketch_size=(99|100) or less fits"):
        _memory.check_fits("sketch", prob, None, available=avail)
    assert _memory.check_fits("sketch", prob, 90, available=avail) > 0


def test_memory_estimates_match_the_big_arrays():
    n, d, nnz = 10**6, 10**5, 2 * 10**7
    assert _memory.method_memory("exact", n, d, nnz) >= 3 * 8 * d * d
    assert _memory.method_memory("sketch", n, d, nnz) >= 8 * (8 * d) * d
    wide = _memory.method_memory("wide", n, d, nnz)
    assert wide < 2 * 2**30  # O(n + d) vectors and the row-block buffers only
    assert _memory.method_memory("wide", n, d, nnz, sketch_size=100) - wide >= 8 * 100 * d


# -- auto ------------------------------------------------------------------------------------

def test_auto_picks_wide_on_wide_problems_without_solving(rng):
    prob = _too_wide(rng)
    assert _resolve_method("auto", prob, None) == "wide"
    # d = 10,000, n = 200,000, 20 nonzeros a row (the case): the d x d fits in
    # memory, but Newton-CG is estimated faster
    n, d, nnz = 200_000, 10_000, 4e6
    row_sq = n * 20.0 ** 2
    t = {m: _memory.method_time(m, n, d, nnz, row_sq) for m in ("exact", "sketch", "wide")}
    assert t["wide"] < min(t["exact"], t["sketch"]) / 10
    # d = 1,000 (the GLM race): exact stays faster
    t = {m: _memory.method_time(m, 10**6, 1000, 2e7, 10**6 * 400.0) for m in ("exact", "wide")}
    assert t["exact"] < t["wide"]


def test_auto_choice_below_the_wide_threshold_is_unchanged(rng, monkeypatch):
    data = fn.datasets.make_regression(20000, 200, nnz_per_row=100, seed=rng)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    assert _resolve_method("auto", prob, None) == "sketch"
    monkeypatch.setattr(_memory, "available_memory", lambda: 1e6)  # the sketch cannot fit
    assert _resolve_method("auto", prob, None) == "wide"


# -- Newton-CG with the image of its direction (no pass over A for A p) --------------------

@pytest.mark.parametrize("name", ["binomial-intercept", "poisson-plain", "softmax"])
def test_newton_cg_image_is_A_p_within_its_bound(rng, name):
    from fastnewton.hessian import HessianOperator
    from fastnewton.linalg import pcg
    from fastnewton.linalg._pcg import newton_cg

    prob, x0 = _case(name, rng)
    x = prob.initial_point() if x0 is None and hasattr(prob, "initial_point") else \
        (np.zeros(prob.d) if x0 is None else x0)
    z = prob.design.matvec(x)
    parts = prob.parts_z(z)
    g = prob.jac(x)
    H = HessianOperator(prob.design, parts, ridge=prob.lam)
    M = DiagonalPreconditioner(prob.design, parts, prob.lam)
    res = newton_cg(H, g, rtol=1e-6, maxiter=200, M=M)
    ref = pcg(H, -g, rtol=1e-6, maxiter=200, M=M)
    assert res.nit == ref.nit >= 2 and np.array_equal(res.x, ref.x)  # the same iterates
    exact = prob.design.matvec(res.x)
    err = np.max(np.abs(res.image - exact))
    assert err <= res.image_err + 4 * np.finfo(float).eps * np.max(np.abs(exact))
    assert res.image_err <= 1e-12 * np.max(np.abs(exact))


def _count_passes(design, monkeypatch):
    calls = {}
    for name in ("matvec", "rmatvec", "rmatvec_diag", "normal_matvec"):
        method = getattr(design, name)

        def counted(*a, _m=method, _n=name, **k):
            calls[_n] = calls.get(_n, 0) + 1
            return _m(*a, **k)
        monkeypatch.setattr(design, name, counted)
    return calls


@pytest.mark.parametrize("name", ["binomial-intercept", "poisson-plain"])  # z0 = 0 too
@pytest.mark.parametrize("method", ["wide", "pcg"])
def test_newton_cg_step_reads_A_once_per_cg_iteration(rng, monkeypatch, method, name):
    """A GLM step: the gradient (with the Jacobi diagonal) and one fused pass per CG
    iteration; A p comes from CG, so matvec runs only for the start and the final check
    (its rounding bound never forces a refresh of z, not even from z = 0)."""
    prob, _ = _case(name, rng)
    calls = _count_passes(prob.design, monkeypatch)
    res = fn.minimize(prob, method=method, tol=1e-10, seed=0)
    assert res.success and res.nit >= 3
    assert calls.get("matvec", 0) <= 2  # z at the start (coef 0: no pass) and at the end
    assert calls["normal_matvec"] == res.history["inner_iters"].sum()


def test_forcing_terms_stop_at_what_tol_needs(rng, monkeypatch):
    """The last CG solve stops at a residual 0.1 tol ‖g0‖, not at ‖g‖²/‖g0‖: fewer CG
    iterations than without the floor, and the same success."""
    from fastnewton._steps import NewtonCG

    step = NewtonCG()
    step.start(2.0, 2.0 * 1e-8)
    assert step._forcing(2.0) == 0.5 and step._forcing(0.2) == pytest.approx(0.1)
    assert step._forcing(2e-6) == pytest.approx(max(1e-6, 0.1 * 2e-8 / 2e-6))
    prob, _ = _case("poisson-intercept", rng)
    res = fn.minimize(prob, method="wide", tol=1e-8)
    with monkeypatch.context() as m:  # the same solve without the floor
        m.setattr(NewtonCG, "start", lambda self, g0, gtol: setattr(self, "_g0norm", g0))
        full = fn.minimize(prob, method="wide", tol=1e-8)
    assert res.success and full.success and res.nit == full.nit
    assert res.history["inner_iters"].sum() < full.history["inner_iters"].sum()
    assert np.linalg.norm(prob.jac(res.x)) <= 1e-8 * res.history["grad_norm"][0] * (1 + 1e-6)


def test_matvec_of_zero_is_exact_zero_without_a_pass(rng):
    A = sp.random(300, 40, density=0.1, format="csr", random_state=0)
    for design in (fn.linalg.as_design(A), InterceptDesign(A)):
        x = np.zeros(design.d)
        if design.intercept:
            x[-1] = 0.7
        z = design.matvec(x)
        assert np.array_equal(z, A @ x[:40] + (x[-1] if design.intercept else 0.0))
    assert np.array_equal(fn.linalg.as_design(A.toarray()).matvec(np.zeros(40)), np.zeros(300))
