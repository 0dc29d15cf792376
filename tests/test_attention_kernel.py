"""AttentionKernelRegression kind="exp" (exp(A Aᵀ) x = b) and the Nyström preconditioner,
against dense numpy references."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.exceptions import NumericalWarning, ValidationError
from fastnewton.linalg import NystromPreconditioner, pcg
from fastnewton.problems.attention_kernel import ExpKernel


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _exp_instance(rng, n, d, scale):
    return rng.standard_normal((n, d)) * scale / np.sqrt(d), rng.standard_normal(n)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_exp_kernel_solve_matches_dense_solve(rng, sparse):
    """n = 300, d = 30: κ(K) ~ 1e3, resolvable; PCG + Nyström to 1e-10 relative residual."""
    A, b = _exp_instance(rng, 300, 30, 1.2)
    K = np.exp(A @ A.T)
    x_ref = np.linalg.solve(K, b)
    prob = fn.AttentionKernelRegression(sp.csr_array(A) if sparse else A, b, kind="exp")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumericalWarning)
        res = prob.solve(rtol=1e-10, seed=1)
    plain = pcg(K, b, rtol=1e-10, maxiter=3000)
    print(f"\nexp kernel n=300 d=30: cond(K)={np.linalg.cond(K):.1e} Nystrom-PCG nit={res.nit} "
          f"(plain CG {plain.nit}) residual={res.residual:.1e} err={_rel(res.x, x_ref):.1e}")
    assert res.success and res.residual <= 1e-10
    assert res.residual == pytest.approx(np.linalg.norm(K @ res.x - b) / np.linalg.norm(b),
                                         rel=1e-6)
    assert _rel(res.x, x_ref) < 1e-8
    assert res.nit < plain.nit
    # the problem's operator, objective and derivatives against the dense kernel
    x, p = rng.standard_normal(300), rng.standard_normal(300)
    assert _rel(prob.apply(x), K @ x) < 1e-12
    assert prob.fun(x) == pytest.approx(0.5 * np.sum((K @ x - b) ** 2), rel=1e-12)
    assert _rel(prob.jac(x), K @ (K @ x - b)) < 1e-12
    assert _rel(prob.hessp(x, p), K @ (K @ p)) < 1e-12
    h = 1e-6
    v = rng.standard_normal(300)
    fd = (prob.fun(x + h * v) - prob.fun(x - h * v)) / (2 * h)
    assert fd == pytest.approx(prob.jac(x) @ v, rel=1e-6)


def test_exp_kernel_blocks_match_dense(rng):
    A = rng.standard_normal((50, 4))
    Kop = ExpKernel(A, store=False)
    Kop.block = 7  # several uneven row blocks
    V = rng.standard_normal((50, 3))
    assert Kop.K is None and ExpKernel(A).K is not None
    np.testing.assert_allclose(ExpKernel(A).matmat(V), np.exp(A @ A.T) @ V, rtol=1e-12)
    np.testing.assert_allclose(Kop.matmat(V), np.exp(A @ A.T) @ V, rtol=1e-12)
    np.testing.assert_allclose(Kop.to_dense(), np.exp(A @ A.T), rtol=1e-15)
    np.testing.assert_allclose(Kop.rmatvec(V[:, 0]), np.exp(A @ A.T) @ V[:, 0], rtol=1e-12)


def test_exp_kernel_warns_when_too_ill_conditioned(rng):
    """n = 200, d = 3: K's eigenvalues decay like a Taylor series (κ ~ 1e10+)."""
    A, b = _exp_instance(rng, 200, 3, 1.0)
    K = np.exp(A @ A.T)
    prob = fn.AttentionKernelRegression(A, b, kind="exp")
    with pytest.warns(NumericalWarning, match=r"too ill-conditioned to resolve.*achieved "
                                              r"relative residual"):
        res = prob.solve(rtol=1e-10, rank=30, maxiter=60)
    assert not res.success and res.nit == 60
    # the reported residual is the true one, not the CG recurrence's
    assert res.residual == pytest.approx(np.linalg.norm(K @ res.x - b) / np.linalg.norm(b),
                                         rel=1e-8)
    assert res.residual > 1e-10
    # kappa is the Nyström lower bound λ₁/λ_r of cond(K)
    assert res.kappa == pytest.approx(res.eigenvalues[0] / res.eigenvalues[-1], rel=1e-12)
    assert res.kappa <= np.linalg.cond(K) * (1 + 1e-6)


def test_exp_kernel_validates(rng):
    with pytest.raises(ValidationError, match=r"exp\(A A\^T\) would overflow: the largest "
                                              r"squared row norm of A is 800"):
        fn.AttentionKernelRegression(np.full((3, 2), 20.0), np.ones(3), kind="exp")
    with pytest.raises(ValidationError, match="kind 'exp' needs power=1, got 2"):
        fn.AttentionKernelRegression(np.eye(3), np.ones(3), power=2, kind="exp")
    with pytest.raises(ValidationError, match="b has 2 entries, expected 3"):
        fn.AttentionKernelRegression(np.eye(3), np.ones(2), kind="exp")
    prob = fn.AttentionKernelRegression(np.eye(3), np.ones(3), kind="exp")
    with pytest.raises(ValidationError, match="rank must be <= 3"):
        prob.solve(rank=4)


def test_nystrom_is_exact_on_low_rank_and_deflates(rng):
    n, r = 120, 8
    G = rng.standard_normal((n, r))
    K = G @ G.T
    P = NystromPreconditioner(K, rank=12, seed=rng)
    assert P.rank == r  # eigenvalues at rounding level dropped
    Khat = (P.U * P.eigenvalues) @ P.U.T
    assert np.linalg.norm(Khat - K) <= 1e-10 * np.linalg.norm(K)
    np.testing.assert_allclose(P.eigenvalues, np.linalg.eigvalsh(K)[::-1][:r], rtol=1e-10)
    # P⁻¹ = λ_r U Λ⁻¹ Uᵀ + (I − U Uᵀ), symmetric positive definite
    Pd = P @ np.eye(n)
    ref = P.eigenvalues[-1] * (P.U / P.eigenvalues) @ P.U.T + np.eye(n) - P.U @ P.U.T
    np.testing.assert_allclose(Pd, ref, atol=1e-12)
    assert np.linalg.eigvalsh(0.5 * (Pd + Pd.T))[0] > 0
    # K + mu I: the top eigenvalues are deflated onto λ_r = mu, the tail is already mu
    mu = 1e-3
    Pm = NystromPreconditioner(K + mu * np.eye(n), rank=12, mu=0.0, seed=rng)
    C = Pm @ (K + mu * np.eye(n))
    ev = np.sort(np.abs(np.linalg.eigvals(C)))
    assert ev[-1] / ev[0] < 10
    with pytest.raises(ValidationError, match="rank must be <= 120"):
        NystromPreconditioner(K, rank=121)


def _conditioned(rng, n, d, cond):
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (Q * np.logspace(0, -np.log10(cond), d)) @ V


@pytest.mark.parametrize("sparse", [False, True], ids=["dense-qr", "sparse-sketch"])
@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("kind", ["gram", "agram"])
def test_gram_kernels_on_ill_conditioned_A_match_the_svd_solution(rng, kind, power, sparse):
    """κ(A) = 1e5 (κ(AᵀA) = 1e10): the solution from A's SVD, x = V Σ^(-2j) Vᵀ b or
    V Σ^(-2j-1) Uᵀ b. The sparse path never forms AᵀA (sketch-and-precondition CG and
    lstsq); before, its Cholesky of AᵀA squared κ. The agram refinement used to go
    through (A G^j)ᵀ(A G^j) (κ^(4j+2)) and diverged here."""
    cond = 1e5 if power == 1 else 1e3
    A = _conditioned(rng, 1500, 15, cond)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    b = rng.standard_normal(15 if kind == "gram" else 1500)
    x_ref = Vt.T @ ((Vt @ b) / s ** (2 * power)) if kind == "gram" else \
        Vt.T @ ((U.T @ b) / s ** (2 * power + 1))
    prob = fn.AttentionKernelRegression(sp.csr_array(A) if sparse else A, b, power=power,
                                        kind=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)  # κ^(2j) = 1e10 .. 1e12: no warning
        res = prob.solve(seed=3)
    err = _rel(res.x, x_ref)
    print(f"\n{kind} j={power} cond(A)={cond:g} {'sparse' if sparse else 'dense'}: "
          f"err={err:.1e} inner CG={res.nit}")
    assert err < 1e-7
