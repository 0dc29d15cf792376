"""MultiSoftmaxRegression: finite differences, block form, Newton-CG convergence, memory."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.exceptions import ValidationError
from fastnewton.problems import KroneckerPreconditioner

import _reference_families as R


def _instance(rng, n1, n2, d, rescaled, lam, sparse=False, scale=0.5):
    A1 = scale * rng.standard_normal((n1, d))
    A2 = scale * rng.standard_normal((n2, d))
    X = rng.standard_normal((d, d)) / np.sqrt(d)
    Z = A1 @ X @ A2.T
    B = np.exp(Z - Z.max(axis=1, keepdims=True)) * np.exp(0.1 * rng.standard_normal((n1, n2)))
    B /= B.sum(axis=1, keepdims=True)
    if sparse:
        A1, A2 = sp.csr_array(A1 * (rng.random(A1.shape) < 0.6)), sp.csr_array(A2)
    return fn.MultiSoftmaxRegression(A1, A2, B, rescaled=rescaled, lam=lam)


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("rescaled", [False, True], ids=["normalized", "rescaled"])
def test_multisoftmax_matches_finite_differences(rescaled, sparse, rng):
    prob = _instance(rng, 7, 6, 3, rescaled, 0.01, sparse)
    x = 0.5 * rng.standard_normal(9)
    h = 1e-5
    E = np.eye(9)
    g_fd = np.array([(prob.fun(x + h * e) - prob.fun(x - h * e)) / (2 * h) for e in E])
    H_fd = np.array([(prob.jac(x + h * e) - prob.jac(x - h * e)) / (2 * h) for e in E])
    assert _rel(prob.jac(x), g_fd) < 1e-6
    H = prob.hessian(x)
    assert _rel(H, 0.5 * (H_fd + H_fd.T)) < 1e-6
    A1 = prob.A1.toarray() if sp.issparse(prob.A1) else prob.A1
    A2 = prob.A2.toarray() if sp.issparse(prob.A2) else prob.A2
    K = np.kron(A1, A2)  # the design of x = vec(X) row-major (small here)
    assert _rel(K.T @ prob.hessian_parts(x).to_dense() @ K + 0.01 * np.eye(9), H) < 1e-12
    p = rng.standard_normal(9)
    assert _rel(prob.hessp(x, p), H @ p) < 1e-12
    assert np.array_equal(prob.to_matrix(x), x.reshape(3, 3))


@pytest.mark.parametrize("rescaled", [False, True], ids=["normalized", "rescaled"])
def test_multisoftmax_block_form_by_rows(rescaled, rng):
    prob = _instance(rng, 9, 5, 3, rescaled, 0.0)
    Z = prob._apply(rng.standard_normal((3, 3)))
    full_loss, full_G = prob.block_loss_grad(Z, slice(None), None)
    full_beta, full_U, full_k = prob.block_parts(Z, slice(None), None)
    for n_blocks in (1, 2, 3, 7):
        blocks = np.array_split(rng.permutation(9), n_blocks)
        stats = prob.combine_stats([prob.partial_stats(Z[r], r) for r in blocks])
        loss, G = prob.stats_loss(stats), np.empty_like(Z)
        beta, U, k = np.empty_like(Z), np.empty_like(full_U), np.empty(9)
        for r in blocks:
            val, G[r] = prob.block_loss_grad(Z[r], r, stats)
            loss += val
            beta[r], U[:, r], k[r] = prob.block_parts(Z[r], r, stats)
        assert abs(loss - full_loss) <= 1e-12 * full_loss
        for a, b in ((G, full_G), (beta, full_beta), (U, full_U), (k, full_k)):
            assert _rel(a, b) < 1e-12


def test_multisoftmax_validates_inputs(rng):
    with pytest.raises(ValidationError, match="A1 has 3 columns but A2 has 4"):
        fn.MultiSoftmaxRegression(np.ones((5, 3)), np.ones((6, 4)), np.ones((5, 6)))
    with pytest.raises(ValidationError, match=r"B must have shape \(5, 6\)"):
        fn.MultiSoftmaxRegression(np.ones((5, 3)), np.ones((6, 3)), np.ones((6, 5)))


def test_kronecker_preconditioner_is_the_inverse_for_separable_weights(rng):
    A1, A2 = rng.standard_normal((8, 3)), rng.standard_normal((6, 3))
    d1, d2 = rng.random(8) + 0.5, rng.random(6) + 0.5
    P = KroneckerPreconditioner(A1, A2, np.outer(d1, d2), lam=0.1)
    K = np.kron(A1, A2)
    H = K.T @ np.diag(np.outer(d1, d2).ravel()) @ K + 0.1 * np.eye(9)
    v = rng.standard_normal(9)
    assert _rel(P.matvec(H @ v), v) < 1e-10


@pytest.mark.parametrize("rescaled", [False, True], ids=["normalized", "rescaled"])
def test_multisoftmax_converges_and_matches_reference(rescaled, rng):
    n, d, lam = 200, 10, 1e-4
    prob = _instance(rng, n, n, d, rescaled, lam, scale=0.3)
    res = prob.solve(tol=1e-8)
    plain = prob.solve(tol=1e-8, preconditioner=False)
    print(f"multisoftmax rescaled={rescaled}: nit={res.nit} cg={res.history['cg_iters'].sum()} "
          f"(unpreconditioned: nit={plain.nit} cg={plain.history['cg_iters'].sum()})")
    assert res.success and res.grad_norm <= 1e-8 * res.history["grad_norm"][0]
    assert res.X.shape == (d, d) and np.array_equal(res.X.ravel(), res.x)
    fg = R.multisoftmax_loss(prob.A1, prob.A2, prob.B, rescaled, lam)
    x_ref = R.damped_newton(fg, np.zeros(d * d), tol=1e-10)
    assert _rel(res.x, x_ref) < 1e-6
    assert abs(res.fun - fg(x_ref)[0]) <= 1e-10 * abs(fg(x_ref)[0])


def test_multisoftmax_never_forms_the_kronecker_design(rng):
    """n = 1000, d = 30: the design A1 ⊗ A2 would be 10^6 x 900 (7.2 GB)."""
    n, d = 1000, 30
    prob = _instance(rng, n, n, d, False, 1e-3, scale=0.2)
    tracemalloc.start()
    try:
        res = prob.solve(tol=1e-6, maxiter=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.success
    assert peak < 150e6, peak  # a few n x n arrays (8 MB each), far from n² d² * 8 bytes


def _attention(rng, n1=7, n2=6, d=3, d3=2, m=2, lam=0.01):
    return fn.AttentionRegression(rng.standard_normal((n1, d)), rng.standard_normal((n2, d)),
                                  rng.standard_normal((n2, d3)), rng.standard_normal((n1, m)),
                                  lam=lam)


def test_attention_matches_finite_differences(rng):
    prob = _attention(rng)
    x = 0.5 * rng.standard_normal(prob.size)
    h = 1e-5
    E = np.eye(prob.size)
    g_fd = np.array([(prob.fun(x + h * e) - prob.fun(x - h * e)) / (2 * h) for e in E])
    H_fd = np.array([(prob.jac(x + h * e) - prob.jac(x - h * e)) / (2 * h) for e in E])
    assert _rel(prob.jac(x), g_fd) < 1e-6
    H = np.column_stack([prob.hessp(x, e) for e in E])  # joint, cross terms included
    assert _rel(H, 0.5 * (H_fd + H_fd.T)) < 1e-6
    assert np.abs(H - H.T).max() < 1e-12 * np.abs(H).max()
    # the X block through the parts in Z
    parts = prob.hessian_parts(x)
    HX = np.column_stack([(prob.A1.T @ parts.matvec(prob.A1 @ e.reshape(3, 3) @ prob.A2.T)
                           @ prob.A2).ravel() + 0.01 * e for e in np.eye(9)])
    assert _rel(HX, H[:9, :9]) < 1e-12
    # the diagonal used by the preconditioner is the diagonal of the row blocks
    T = np.zeros((7, 6))
    T[2, 4] = 1.0
    assert parts.matvec(T)[2, 4] == pytest.approx(parts.diagonal()[2, 4], rel=1e-12)


def test_attention_y_step_is_exact_and_solve_converges(rng):
    prob = _attention(rng, n1=30, n2=20, d=3, d3=3, m=2)
    X = 0.3 * rng.standard_normal((3, 3))
    Y = prob.y_step(X)
    theta = np.concatenate([X.ravel(), Y.ravel()])
    assert np.linalg.norm(prob.jac(theta)[9:]) < 1e-10 * np.linalg.norm(prob.jac(theta)[:9])
    res = prob.solve(tol=1e-8, maxiter=300)
    print(f"attention: nit={res.nit} cg={res.history['cg_iters'].sum()}")
    assert res.success and res.grad_norm <= 1e-8 * res.history["grad_norm"][0]
    assert res.fun < prob.fun(np.zeros(prob.size))
    assert res.X.shape == (3, 3) and res.Y.shape == (3, 2)
    # a stationary point of the independent reference gradient too
    fg = R.attention_loss(prob.A1, prob.A2, prob.A3, prob.B, prob.lam)
    assert np.linalg.norm(fg(res.x)[1]) <= 1e-8 * res.history["grad_norm"][0]
    assert fg(res.x)[0] == pytest.approx(res.fun, rel=1e-12)


def test_attention_validates_inputs():
    with pytest.raises(ValidationError, match="A3 has 5 rows but A2 has 6"):
        fn.AttentionRegression(np.ones((4, 2)), np.ones((6, 2)), np.ones((5, 2)), np.ones((4, 1)))
    with pytest.raises(ValidationError, match=r"B must have shape \(4, m\)"):
        fn.AttentionRegression(np.ones((4, 2)), np.ones((6, 2)), np.ones((6, 2)), np.ones((3, 1)))


def _well_conditioned(rng, n, d, sparse):
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    A = Q * np.linspace(1.0, 3.0, d) @ np.linalg.qr(rng.standard_normal((d, d)))[0]
    return sp.csr_array(A) if sparse else A


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("power", [1, 2, 3])
@pytest.mark.parametrize("kind", ["gram", "agram"])
def test_attention_kernel_matches_direct_solve(kind, power, sparse, rng):
    n, d = 300, 12
    A = _well_conditioned(rng, n, d, sparse)
    Ad = A.toarray() if sparse else A
    b = rng.standard_normal(d if kind == "gram" else n)
    prob = fn.AttentionKernelRegression(A, b, power=power, kind=kind)
    K = np.linalg.matrix_power(Ad.T @ Ad, power)
    if kind == "agram":
        K = Ad @ K
    x_ref = np.linalg.lstsq(K, b, rcond=None)[0]
    res = prob.solve()
    assert _rel(res.x, x_ref) < 1e-10
    assert res.residual < 1e-12
    # fun / jac / hessp against the dense operator and finite differences
    x = rng.standard_normal(d)
    assert prob.fun(x) == pytest.approx(0.5 * np.sum((K @ x - b) ** 2), rel=1e-12)
    assert _rel(prob.jac(x), K.T @ (K @ x - b)) < 1e-12
    p = rng.standard_normal(d)
    assert _rel(prob.hessp(x, p), K.T @ (K @ p)) < 1e-12
    h = 1e-6
    g_fd = np.array([(prob.fun(x + h * e) - prob.fun(x - h * e)) / (2 * h) for e in np.eye(d)])
    assert _rel(prob.jac(x), g_fd) < 1e-6


def test_attention_kernel_warns_when_ill_conditioned(rng):
    A = rng.standard_normal((100, 5)) * np.logspace(0, -4, 5)
    prob = fn.AttentionKernelRegression(A, np.ones(5), power=2)
    with pytest.warns(fn.NumericalWarning, match=r"kappa\(A\)\^\(2j\)"):
        res = prob.solve()
    assert res.kappa > 1e3 and np.isfinite(res.residual)


def test_attention_kernel_validates(rng):
    with pytest.raises(ValueError, match="kind must be one of"):
        fn.AttentionKernelRegression(np.eye(3), np.ones(3), kind="rbf")
    with pytest.raises(ValueError, match="power"):
        fn.AttentionKernelRegression(np.eye(3), np.ones(3), power=0)
    with pytest.raises(ValidationError, match="full column rank"):
        fn.AttentionKernelRegression(np.ones((4, 2)), np.ones(2)).solve()
