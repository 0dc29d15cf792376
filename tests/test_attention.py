"""AttentionRegression at the issue's Kronecker size: variable projection + trust-region
Newton-CG against an independent numpy loss minimized by scipy trust-exact."""

import numpy as np
import pytest
from scipy.optimize import minimize

import fastnewton as fn
from fastnewton.exceptions import ValidationError

import _reference_families as R


def _problem(rng, n1, n2, d, d3, m, lam):
    """Attention-scaled inputs (A1 X A2ᵀ entries O(‖X‖)) and a random target."""
    A1 = rng.standard_normal((n1, d)) / np.sqrt(d)
    A2 = rng.standard_normal((n2, d)) / np.sqrt(d)
    return fn.AttentionRegression(A1, A2, rng.standard_normal((n2, d3)),
                                  rng.standard_normal((n1, m)), lam=lam)


def test_reduced_hessp_is_the_schur_complement_and_the_fd_hessian_of_phi(rng):
    """The X-step's operator: H_XX − H_XY H_YY⁻¹ H_YX from the dense joint Hessian, and the
    finite-difference derivative of the reduced gradient X ↦ ∇_X L(X, Y*(X))."""
    prob = _problem(rng, 9, 8, 3, 2, 2, lam=0.05)
    k = 9
    X = 0.7 * rng.standard_normal((3, 3))
    st = prob._reduced(X)
    H = prob.hessian(st.theta)
    schur = H[:k, :k] - H[:k, k:] @ np.linalg.solve(H[k:, k:], H[k:, :k])
    Hred = np.column_stack([prob._reduced_hessp(st, e) for e in np.eye(k)])
    np.testing.assert_allclose(Hred, schur, rtol=0, atol=1e-10 * np.abs(schur).max())

    def grad_phi(x):
        Xh = x.reshape(3, 3)
        return prob.jac(np.concatenate([x, prob.y_step(Xh).ravel()]))[:k]

    h = 1e-6
    H_fd = np.column_stack([(grad_phi(X.ravel() + h * e) - grad_phi(X.ravel() - h * e)) / (2 * h)
                            for e in np.eye(k)])
    assert np.linalg.norm(Hred - H_fd) <= 1e-6 * np.linalg.norm(H_fd)


def test_attention_converges_at_kronecker_size_and_agrees_with_scipy(rng):
    """n1 = n2 = 200, d = 10 (X has 100 entries, the design A1 ⊗ A2 is 40,000 x 100).

    The loss is non-convex and has many local minimizers: from x0 = 0, scipy's
    trust-exact / trust-krylov and our solver were measured to end in different ones
    (objectives 1-10 % apart). So (1) from x0 = 0 we check convergence to
    ‖∇L‖ <= 1e-8 ‖∇L(x0)‖, stationarity under the independent numpy gradient and a
    positive definite finite-difference Hessian there (a local minimum, not a saddle);
    (2) from one perturbed start both our solver and scipy trust-exact (independent loss,
    FD-checked gradient, FD Hessian) are run and must agree to 1e-8 in the objective.
    """
    prob = _problem(rng, 200, 200, 10, 5, 3, lam=1e-2)
    fg = R.attention_loss(prob.A1, prob.A2, prob.A3, prob.B, prob.lam)
    x0 = np.zeros(prob.size)
    f0, g_ref0 = fg(x0)
    g0 = np.linalg.norm(g_ref0)
    assert prob.fun(x0) == pytest.approx(f0, rel=1e-13)

    res = prob.solve(tol=1e-8, maxiter=400)
    print(f"\nattention cold start: nit={res.nit} cg={res.history['cg_iters'].sum()} "
          f"rel grad={res.grad_norm / g0:.1e} fun={res.fun:.12g} time={res.time:.2f}s")
    assert res.success and res.grad_norm <= 1e-8 * g0
    assert res.fun < f0 and res.X.shape == (10, 10) and res.Y.shape == (5, 3)
    f_ref, g_ref = fg(res.x)
    assert f_ref == pytest.approx(res.fun, rel=1e-12)
    assert np.linalg.norm(g_ref) <= 1e-8 * g0
    H_fd = R.fd_hessian(fg, res.x)
    ev = np.linalg.eigvalsh(H_fd)
    assert ev[0] > 1e-6 * ev[-1], ev[:3]  # λ >= lam-ish at a strict local minimum

    # (2) a common start: 10 % away from the minimizer found, Y exact for that X
    X1 = res.X + 0.1 * np.linalg.norm(res.X) / 10 * rng.standard_normal((10, 10))
    x1 = np.concatenate([X1.ravel(), prob.y_step(X1).ravel()])
    f1, g1 = fg(x1)
    for _ in range(3):  # the reference gradient against central differences of its loss
        v = rng.standard_normal(prob.size)
        fd = (fg(x1 + 1e-6 * v)[0] - fg(x1 - 1e-6 * v)[0]) / 2e-6
        assert fd == pytest.approx(g1 @ v, rel=1e-6, abs=1e-8 * np.linalg.norm(g1))
    ours = prob.solve(x1, tol=1e-10)
    ref = minimize(lambda x: fg(x)[0], x1, jac=lambda x: fg(x)[1], method="trust-exact",
                   hess=lambda x: R.fd_hessian(fg, x),
                   options={"gtol": 1e-10 * np.linalg.norm(g1), "maxiter": 200})
    print(f"attention common start: ours nit={ours.nit} cg={ours.history['cg_iters'].sum()} "
          f"fun={ours.fun:.15g}; scipy trust-exact nit={ref.nit} fun={ref.fun:.15g}")
    assert ours.success
    assert np.linalg.norm(fg(ref.x)[1]) <= 1e-6 * np.linalg.norm(g1)
    assert abs(ours.fun - ref.fun) <= 1e-8 * abs(ref.fun)
    assert np.linalg.norm(ours.x - ref.x) <= 1e-5 * np.linalg.norm(ref.x)


def test_attention_solve_history_and_validation(rng):
    prob = _problem(rng, 12, 10, 3, 2, 2, lam=0.1)
    seen = []
    res = prob.solve(callback=seen.append)
    h = res.history
    assert res.success and len(seen) == res.nit
    assert all(len(v) == res.nit + 1 for v in h.values())
    assert np.all(np.diff(h["fun"]) <= 1e-12 * abs(h["fun"][0]))  # monotone: accepted steps only
    np.testing.assert_array_equal(seen[-1], res.x)
    with pytest.raises(ValidationError, match=r"X must have shape \(3, 3\)"):
        prob.y_step(np.zeros((2, 3)))
    with pytest.raises(ValidationError, match="maxiter must be >= 0"):
        prob.solve(maxiter=-1)
    with pytest.raises(ValidationError, match="x0 has"):
        prob.solve(np.zeros(3))
    with pytest.warns(fn.ConvergenceWarning, match="did not converge after 1 steps"):
        res = prob.solve(maxiter=1)
    assert not res.success and res.nit == 1
