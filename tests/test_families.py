"""Contract tests over the problem registry: finite differences, block-separable form, traps."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.exceptions import NonConvexWarning, ValidationError
from fastnewton.problems import PROBLEMS, SOFTMAX_CONVEXITY_W2, convexity_bound


def _design(rng, n, d, dense, scale=1.0):
    if dense:
        return scale * rng.standard_normal((n, d))
    A = sp.random_array((n, d), density=0.4, random_state=rng, format="csr",
                        data_sampler=rng.standard_normal)
    A = A + sp.csr_array((np.ones(n), (np.arange(n), rng.integers(0, d, n))), shape=(n, d))
    return (scale * A).tocsr()  # no empty rows


def _prob_vector(rng, n):
    b = rng.random(n)
    return b / b.sum()


# One small random instance (problem, x) per registry entry: every family must appear.
def _exp(rng, dense):
    A = _design(rng, 40, 5, dense, 0.3)
    b = np.exp(rng.standard_normal(40) * 0.5)
    return fn.ExpRegression(A, b, w=np.sqrt(convexity_bound(b, "exp")) + 0.1), 0.3 * rng.standard_normal(5)


def _softmax(rng, dense):
    A = _design(rng, 40, 5, dense)
    return fn.SoftmaxRegression(A, _prob_vector(rng, 40), lam=0.01), rng.standard_normal(5)


def _rescaled(rng, dense):
    f = ["exp", "cosh", "sinh"][rng.integers(3)]
    A = _design(rng, 40, 5, dense, 0.4)
    return fn.RescaledRegression(A, _prob_vector(rng, 40), f=f, lam=0.01), rng.standard_normal(5)


def _resnet(rng, dense):
    A = _design(rng, 40, 5, dense, 0.4)
    return fn.ResNetSoftmaxRegression(A, _prob_vector(rng, 40), lam=0.01), 0.5 * rng.standard_normal(5)


def _copyright(rng, dense):
    A1 = _design(rng, 30, 5, dense)
    A2 = _design(rng, 20, 5, dense)
    return (fn.CopyrightRegression(A1, _prob_vector(rng, 30), A2, _prob_vector(rng, 20),
                                   gamma=0.01, w=rng.random(50), lam=0.01),
            rng.standard_normal(5))


def _twolayer(rng, dense):
    sigma = ["identity", "relu", "softplus", "exp"][rng.integers(4)]
    A = _design(rng, 40, 5, dense)
    H = rng.standard_normal((40, 3))
    return (fn.TwoLayerRegression(A, H, rng.standard_normal(3), sigma=sigma, lam=0.01),
            rng.standard_normal(5))


def _glm(rng, dense):
    family = ["binomial", "poisson", "gamma", "tweedie", "normal"][rng.integers(5)]
    power = {"tweedie": [1.5, 3.0][rng.integers(2)]}.get(family)
    A = _design(rng, 40, 5, dense, 0.4)
    mu = np.exp(0.3 * rng.standard_normal(40))
    y = {"binomial": (rng.random(40) < 0.5).astype(float), "normal": rng.standard_normal(40),
         "poisson": rng.poisson(mu).astype(float)}.get(family, rng.gamma(2.0, mu / 2))
    prob = fn.GLMRegression(A, y, family=family, power=power, sample_weight=rng.random(40) + 0.5,
                            offset=0.1 * rng.standard_normal(40),
                            fit_intercept=bool(rng.integers(2)), lam=0.01)
    return prob, 0.3 * rng.standard_normal(prob.d)


FACTORIES = {"exp": _exp, "softmax": _softmax, "rescaled": _rescaled, "resnet": _resnet,
             "copyright": _copyright, "twolayer": _twolayer, "glm": _glm}


def _dense_design(prob):
    """The n x d matrix of z = design x (with an intercept design's column of ones)."""
    A = prob.A.toarray() if sp.issparse(prob.A) else np.asarray(prob.A)
    return np.column_stack([A, np.ones(A.shape[0])]) if prob.design.intercept else A


#: families without the single-design template (matrix unknowns, kernel solves):
#: their contract tests are in test_family_kronecker.py
KRONECKER_FAMILIES = {"multisoftmax", "attention", "attention_kernel"}


def test_every_registered_family_has_a_factory():
    assert set(FACTORIES) | KRONECKER_FAMILIES == set(PROBLEMS)


def _fd_grad(fun, x, h=1e-6):
    E = np.eye(x.size)
    return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in E])


def _fd_hess(jac, x, h=1e-5):
    E = np.eye(x.size)
    H = np.array([(jac(x + h * e) - jac(x - h * e)) / (2 * h) for e in E])
    return 0.5 * (H + H.T)


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "sparse"])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_gradient_and_hessian_match_finite_differences(name, dense, rng):
    prob, x = FACTORIES[name](rng, dense)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        g = prob.jac(x)
        H = prob.hessian(x)
    assert _rel(g, _fd_grad(prob.fun, x)) < 1e-6
    assert _rel(H, _fd_hess(prob.jac, x)) < 1e-6
    p = rng.standard_normal(x.size)
    assert _rel(prob.hessp(x, p), H @ p) < 1e-12
    # the parts assemble the same Hessian densely
    parts = prob.hessian_parts(x)
    A = _dense_design(prob)
    assert _rel(A.T @ parts.to_dense() @ A + np.diag(np.broadcast_to(prob.lam, x.shape)), H) < 1e-12


@pytest.mark.parametrize("n_blocks", [1, 2, 3, 7])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_block_form_matches_full_form_on_any_partition(name, n_blocks, rng):
    prob, x = FACTORIES[name](rng, True)
    z = _dense_design(prob) @ x
    n = z.size
    full_loss, full_g = prob.loss_grad_z(z)
    full = prob.parts_z(z)
    for contiguous in (True, False):
        if contiguous:
            cuts = np.sort(rng.choice(np.arange(1, n), n_blocks - 1, replace=False))
            blocks = [slice(a, b) for a, b in zip(np.r_[0, cuts], np.r_[cuts, n])]
        else:  # scattered index arrays, one of them possibly empty
            perm = rng.permutation(n)
            blocks = np.array_split(perm, n_blocks)
            blocks.append(np.array([], dtype=np.int64))
        stats = prob.combine_stats([prob.partial_stats(z[r], r) for r in blocks])
        loss = prob.stats_loss(stats)
        g = np.empty(n)
        beta = np.empty(n)
        U = None if full.U is None else np.empty_like(full.U)
        for r in blocks:
            val, g[r] = prob.block_loss_grad_z(z[r], r, stats)
            loss += val
            beta[r], U_blk, C = prob.block_parts_z(z[r], r, stats)
            if U is not None:
                U[r] = U_blk
                assert _rel(C, full.C) < 1e-12
        assert abs(loss - full_loss) <= 1e-12 * abs(full_loss)
        assert _rel(g, full_g) < 1e-12
        assert _rel(beta, full.beta) < 1e-12
        if U is not None:
            assert _rel(U, full.U) < 1e-12


# -- traps and family specifics -------------------------------------------------------------

def test_softmax_convexity_bound_holds_numerically(rng):
    """Lowest eigenvalue of the softmax loss's Hessian in z is >= -SOFTMAX_CONVEXITY_W2."""
    worst = 0.0
    for _ in range(300):
        n = int(rng.integers(2, 8))
        z = rng.standard_normal(n) * rng.choice([0.1, 1.0, 5.0])
        b = rng.standard_normal(n)
        b /= max(1.0, np.linalg.norm(b)) * rng.choice([1.0, 1.0 + rng.random()])
        prob = fn.SoftmaxRegression(np.eye(n), b)
        worst = min(worst, np.linalg.eigvalsh(prob.parts_z(z).to_dense())[0])
    assert -SOFTMAX_CONVEXITY_W2 <= worst < 0  # the bound holds, and is needed


def test_softmax_does_not_overflow(rng):
    A = rng.standard_normal((30, 3))
    b = _prob_vector(rng, 30)
    prob = fn.SoftmaxRegression(A, b, lam=0.1)
    x = np.array([800.0, -900.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        f = prob.fun(x)
        g = prob.jac(x)
        H = prob.hessian(x)
    assert np.isfinite(f) and np.isfinite(g).all() and np.isfinite(H).all()
    # shift invariance: adding a constant to every z leaves the loss unchanged
    one = fn.SoftmaxRegression(np.ones((30, 1)), b)
    assert one.fun(np.array([700.0])) == pytest.approx(one.fun(np.array([0.0])), rel=1e-12)


def test_softmax_intercept_column_without_regularizer_converges(rng):
    n, d = 400, 4
    A = np.column_stack([np.ones(n), rng.standard_normal((n, d - 1))])
    b = np.exp(A[:, 1:] @ rng.standard_normal(d - 1))
    b /= b.sum()
    prob = fn.SoftmaxRegression(A, b)
    x = rng.standard_normal(d)
    H = prob.hessian(x)
    assert abs(H[0] @ np.r_[1.0, np.zeros(d - 1)]) < 1e-12 * np.abs(H).max()  # singular
    res = fn.minimize(prob, method="exact", tol=1e-8)
    assert res.success
    assert res.grad_norm <= 1e-8 * res.history["grad_norm"][0]
    assert prob.fun(res.x) < 1e-3 * prob.fun(np.zeros(d))


def test_rescaled_sinh_returns_zero_at_once(rng):
    A = rng.standard_normal((100, 4))
    prob = fn.RescaledRegression(A, _prob_vector(rng, 100), f="sinh")
    res = fn.minimize(prob)
    assert res.success and res.nit == 0 and res.fun == 0.0
    assert np.array_equal(res.x, np.zeros(4))


def test_rescaled_exp_without_regularizer_warns(rng):
    A = rng.standard_normal((20, 3))
    b = _prob_vector(rng, 20)
    with pytest.warns(NonConvexWarning, match="unbounded below.*Pass lam > 0"):
        fn.RescaledRegression(A, b, f="exp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn.RescaledRegression(A, b, f="exp", lam=1e-3)
        fn.RescaledRegression(A, b, f="exp", w=0.5)
        fn.RescaledRegression(A, b, f="cosh")


def test_rescaled_rejects_unknown_f(rng):
    with pytest.raises(ValueError, match="f must be one of"):
        fn.RescaledRegression(np.eye(3), np.ones(3), f="tanh")


def test_rescaled_overflow_is_inf_and_rejected(rng):
    A = rng.standard_normal((30, 3))
    prob = fn.RescaledRegression(A, _prob_vector(rng, 30), f="cosh", lam=1e-2)
    assert prob.fun(np.full(3, 1e4)) == np.inf
    res = fn.minimize(prob, x0=np.full(3, 0.3))
    assert res.success and np.isfinite(res.fun)


def test_resnet_negative_normalizer_at_start_raises(rng):
    A = -np.abs(rng.standard_normal((50, 3))) - 0.5
    prob = fn.ResNetSoftmaxRegression(A, _prob_vector(rng, 50), lam=0.1)
    x0 = np.full(3, 2.0)  # every z < -3: exp(z) + z < 0
    assert prob.fun(x0) == np.inf
    with pytest.raises(ValidationError, match=r"alpha = sum\(exp\(A x\) \+ A x\) > 0 at the start"):
        fn.minimize(prob, x0=x0)
    res = fn.minimize(prob)  # x = 0 is inside the domain
    assert res.success


def test_resnet_large_z_does_not_overflow(rng):
    A = rng.standard_normal((30, 3))
    prob = fn.ResNetSoftmaxRegression(A, _prob_vector(rng, 30), lam=0.1)
    x = np.array([500.0, 300.0, -400.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        vals = prob.fun(x), prob.jac(x), prob.hessian(x)
    assert all(np.isfinite(v).all() for v in vals)


VARIANTS = [("rescaled", f) for f in ("exp", "cosh", "sinh")] + \
    [("twolayer", s) for s in ("identity", "relu", "softplus", "exp")]


@pytest.mark.parametrize("name,variant", VARIANTS)
def test_every_variant_matches_finite_differences(name, variant, rng):
    A = _design(rng, 40, 5, True, 0.4)
    x = rng.standard_normal(5)
    if name == "rescaled":
        prob = fn.RescaledRegression(A, _prob_vector(rng, 40), f=variant, w=0.3)
    else:
        prob = fn.TwoLayerRegression(A, rng.standard_normal((40, 3)), rng.standard_normal(3),
                                     sigma=variant, w=0.3)
    assert _rel(prob.jac(x), _fd_grad(prob.fun, x)) < 1e-6
    assert _rel(prob.hessian(x), _fd_hess(prob.jac, x)) < 1e-6


def test_twolayer_and_copyright_validate_inputs(rng):
    A = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="sigma must be one of"):
        fn.TwoLayerRegression(A, np.ones((10, 2)), np.ones(2), sigma="tanh")
    with pytest.raises(ValueError, match=r"H must have shape \(10, m\)"):
        fn.TwoLayerRegression(A, np.ones((9, 2)), np.ones(2))
    with pytest.raises(ValueError, match="b has 3 entries"):
        fn.TwoLayerRegression(A, np.ones((10, 2)), np.ones(3))
    with pytest.raises(ValueError, match="A1 has 3 columns but A2 has 4"):
        fn.CopyrightRegression(A, np.ones(10), np.ones((5, 4)), np.ones(5), 0.1, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        fn.CopyrightRegression(A, np.ones(10), A, np.ones(10), 0.0, 1.0)


def test_copyright_pole_is_inf(rng):
    """ℓ2 = 0 (protected rows fitted exactly) is a pole: the loss is inf there."""
    A2 = np.ones((20, 2))
    prob = fn.CopyrightRegression(rng.standard_normal((10, 2)), _prob_vector(rng, 10),
                                  A2, np.full(20, 1 / 20), gamma=0.1, w=0.5)
    assert prob.fun(np.zeros(2)) == np.inf
    with pytest.raises(ValidationError, match="pole of gamma / l2"):
        fn.minimize(prob)


def test_make_regression_softmax_family(rng):
    """b = softmax(A x_true + noise eps), same A, x_true and eps draws as the exp family;
    w**2 = SOFTMAX_CONVEXITY_W2 max(b)**2 keeps the z-Hessian PD at the start and the data."""
    seed = int(rng.integers(2**31))
    kw = dict(nnz_per_row=5, cond=100.0, noise=0.05, seed=seed)
    soft = fn.datasets.make_regression(1500, 12, family="softmax", **kw)
    ref = fn.datasets.make_regression(1500, 12, family="exp", **kw)
    assert (soft.A != ref.A).nnz == 0 and np.array_equal(soft.x_true, ref.x_true)
    z = soft.A @ soft.x_true
    eps = (ref.b - np.exp(z)) / 0.05
    u = np.exp(z + 0.05 * eps - (z + 0.05 * eps).max())
    np.testing.assert_allclose(soft.b, u / u.sum(), rtol=1e-12)
    assert soft.b.sum() == pytest.approx(1.0, rel=1e-12) and soft.family == "softmax"
    np.testing.assert_allclose(soft.w, np.sqrt(SOFTMAX_CONVEXITY_W2) * soft.b.max(), rtol=1e-15)
    prob = fn.SoftmaxRegression(soft.A, soft.b, soft.w)
    for zz in (np.zeros_like(z), z):
        assert np.linalg.eigvalsh(prob.parts_z(zz).to_dense())[0] > 0
    res = fn.minimize(prob, method="exact", tol=1e-10)
    assert res.success and res.grad_norm <= 1e-10 * res.history["grad_norm"][0]
