"""GLMRegression and the intercept design: numpy formulas, finite differences, scipy,
scikit-learn and glum at tight tolerance, every method, domain errors."""

import warnings

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp
from scipy.special import xlogy

import fastnewton as fn
from fastnewton.exceptions import ValidationError
from fastnewton.hessian import DiagLowRank, HessianOperator, gram, sketched_gram
from fastnewton.linalg import InterceptDesign, as_design
from fastnewton.sketch import CountSketch, make_sketch, leverage_scores

# (family, power) cases; tweedie 3 is non-convex in z where mu > 2 y
CASES = [("normal", None), ("binomial", None), ("poisson", None), ("gamma", None),
         ("tweedie", 1.5), ("tweedie", 3.0)]
IDS = [f if p is None else f"{f}{p:g}" for f, p in CASES]


def _A(rng, n, p, sparse):
    A = rng.standard_normal((n, p)) * 0.4
    if sparse:
        A[rng.random((n, p)) < 0.5] = 0.0
        return sp.csr_array(A)
    return A


def _y(rng, family, power, eta):
    mu = np.exp(eta)
    if family == "normal":
        return eta + 0.3 * rng.standard_normal(eta.size)
    if family == "binomial":
        return (rng.random(eta.size) < 1 / (1 + np.exp(-eta))).astype(float)
    if family == "poisson" or (family == "tweedie" and power < 2):
        return rng.poisson(mu).astype(float)
    return rng.gamma(2.0, mu / 2.0)


def _ref_point(family, power, eta, y):
    """(l, l', l'') of each sample, written from the textbook half deviances."""
    if family == "normal":
        return 0.5 * (eta - y) ** 2, eta - y, np.ones_like(eta)
    if family == "binomial":
        sig = 1 / (1 + np.exp(-eta))
        return np.logaddexp(0, eta) - y * eta, sig - y, sig * (1 - sig)
    if family == "poisson":
        mu = np.exp(eta)
        return mu - y * eta + xlogy(y, y) - y, mu - y, mu
    if family == "gamma":
        return eta + y * np.exp(-eta) - np.log(y) - 1, 1 - y * np.exp(-eta), y * np.exp(-eta)
    p = power
    a, b = y * np.exp((1 - p) * eta), np.exp((2 - p) * eta)
    return (b / (2 - p) - a / (1 - p) + y ** (2 - p) / ((1 - p) * (2 - p)), b - a,
            (p - 1) * a + (2 - p) * b)


def _instance(rng, family, power, *, intercept, weights, offset, sparse=False, n=60, p=4,
              lam=0.5):
    A = _A(rng, n, p, sparse)
    coef = rng.standard_normal(p) * 0.5
    off = 0.2 * rng.standard_normal(n) if offset else None
    eta = A @ coef + 0.3 + (0 if off is None else off)
    y = _y(rng, family, power, eta)
    sw = rng.uniform(0.5, 2.0, n) if weights else None
    prob = fn.GLMRegression(A, y, family=family, power=power, sample_weight=sw, offset=off,
                            fit_intercept=intercept, lam=lam)
    return prob, A, y, sw, off


def _reference_objective(family, power, A, y, sw, off, intercept, lam):
    Ad = A.toarray() if sp.issparse(A) else A
    s = np.ones(y.size) if sw is None else sw
    o = 0.0 if off is None else off

    def fg(x):
        coef, b = (x[:-1], x[-1]) if intercept else (x, 0.0)
        l, d1, _ = _ref_point(family, power, Ad @ coef + b + o, y)
        g = Ad.T @ (s * d1) + lam * coef
        if intercept:
            g = np.r_[g, np.sum(s * d1)]
        return float(np.sum(s * l) + 0.5 * lam * coef @ coef), g
    return fg


def _fd(fun, x, h=1e-6):
    return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in np.eye(x.size)])


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


# -- the intercept design against the dense stacked matrix [A, 1] -----------------------------

@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_intercept_design_products_match_the_stacked_matrix(sparse, rng):
    n, p = 9000, 6  # more than one row block of the reductions
    A = _A(rng, n, p, sparse)
    D = InterceptDesign(A)
    assert D.base is as_design(D.base) and D.d == p + 1 and D.n_features == p
    Ad = A.toarray() if sparse else A
    M = np.column_stack([Ad, np.ones(n)])
    x, y, beta = rng.standard_normal(p + 1), rng.standard_normal(n), rng.random(n) - 0.2
    P, U = rng.standard_normal((p + 1, 3)), rng.standard_normal((n, 3))
    assert _rel(D.matvec(x), M @ x) < 1e-13
    assert _rel(D.rmatvec(y), M.T @ y) < 1e-13
    out, t = D.normal_matvec(beta, x)
    assert _rel(t, M @ x) < 1e-13 and _rel(out, M.T @ (beta * (M @ x))) < 1e-12
    assert _rel(D.matmat(P), M @ P) < 1e-13 and _rel(D.rmatmat(U), M.T @ U) < 1e-13
    C = np.array([[1.0, 0.5, 0], [0.5, -1, 0], [0, 0, 2]])
    parts = DiagLowRank(beta, U, C)
    H = M.T @ parts.to_dense() @ M + np.diag(np.r_[np.full(p, 0.3), 0.0])
    ridge = np.r_[np.full(p, 0.3), 0.0]
    assert _rel(gram(D, parts, ridge=ridge), H) < 1e-12
    op = HessianOperator(D, parts, ridge=ridge)
    assert _rel(op @ x, H @ x) < 1e-12 and _rel(op @ P, H @ P) < 1e-12
    # sketches: the same sketch applied to the dense stacked matrix
    w = rng.random(n)
    for kind in ("countsketch", "sparse-sign", "srht", "gaussian"):
        S = make_sketch(kind, 64, n, seed=1)
        ref = S.apply(M, row_weights=w)
        assert _rel(S.apply(D, row_weights=w), ref) < 1e-12, kind
        Hs = sketched_gram(D, DiagLowRank(w), S)
        assert _rel(Hs, ref.T @ ref) < 1e-12, kind
    S = CountSketch(64, n, seed=2)
    SA, g = S.apply_and_rmatvec(D, y, row_weights=w)
    assert _rel(SA, S.apply(M, row_weights=w)) < 1e-12 and _rel(g, M.T @ y) < 1e-12
    # a partition of the rows sums to the whole sketch
    part = sum(S.apply_rows(InterceptDesign(A[a:b]), a, row_weights=w[a:b])
               for a, b in ((0, 4000), (4000, n)))
    assert _rel(part, S.apply(M, row_weights=w)) < 1e-12
    lev = leverage_scores(D, row_weights=w, method="exact")
    Q = np.linalg.qr(np.sqrt(w)[:, None] * M)[0]
    assert _rel(lev, np.einsum("ij,ij->i", Q, Q)) < 1e-10
    lev_s = leverage_scores(D, row_weights=w, seed=0, jl_dim=500)
    assert np.all(np.abs(lev_s / np.einsum("ij,ij->i", Q, Q) - 1) < 0.6)


def test_intercept_design_reuses_the_base_design_and_never_copies_A(rng):
    A = _A(rng, 50, 4, True)
    base = as_design(A)
    D = InterceptDesign(base)
    assert D.base is base and D.A is base.A
    with pytest.raises(ValidationError, match="already has an intercept"):
        InterceptDesign(D)
    prob = fn.GLMRegression(base, (rng.random(50) < 0.5).astype(float))
    assert prob.design.base is base and prob.A is base.A


# -- loss, gradient, Hessian ---------------------------------------------------------------

@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("family, power", CASES, ids=IDS)
def test_loss_gradient_hessian_match_formulas_and_finite_differences(family, power, sparse, rng):
    for intercept in (True, False):
        for weights, offset in ((False, False), (True, False), (False, True), (True, True)):
            prob, A, y, sw, off = _instance(rng, family, power, intercept=intercept,
                                            weights=weights, offset=offset, sparse=sparse)
            fg = _reference_objective(family, power, A, y, sw, off, intercept, 0.5)
            x = 0.3 * rng.standard_normal(prob.d)
            f_ref, g_ref = fg(x)
            assert abs(prob.fun(x) - f_ref) <= 1e-12 * max(1.0, abs(f_ref))
            assert _rel(prob.jac(x), g_ref) < 1e-12
            assert _rel(prob.jac(x), _fd(prob.fun, x)) < 1e-6
            H = prob.hessian(x)
            assert _rel(H, _fd(lambda v: prob.jac(v), x, 1e-5)) < 1e-6
            v = rng.standard_normal(prob.d)
            assert _rel(prob.hessp(x, v), H @ v) < 1e-12
            assert prob.d == prob.n_features + intercept


def test_loss_is_the_half_deviance_of_scikit_learn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    n = 80
    eta = rng.standard_normal(n) * 0.5
    A = np.zeros((n, 1))
    for family, power, dev in (("poisson", None, metrics.mean_poisson_deviance),
                               ("gamma", None, metrics.mean_gamma_deviance),
                               ("tweedie", 1.5, lambda y, m: metrics.mean_tweedie_deviance(
                                   y, m, power=1.5)),
                               ("tweedie", 3.0, lambda y, m: metrics.mean_tweedie_deviance(
                                   y, m, power=3.0))):
        y = _y(rng, family, power, eta)
        prob = fn.GLMRegression(A, y, family=family, power=power, offset=eta, fit_intercept=False)
        assert prob.fun(np.zeros(1)) == pytest.approx(0.5 * n * dev(y, np.exp(eta)), rel=1e-12)
    yb = (rng.random(n) < 0.5).astype(float)
    prob = fn.GLMRegression(A, yb, family="binomial", offset=eta, fit_intercept=False)
    assert prob.fun(np.zeros(1)) == pytest.approx(
        n * metrics.log_loss(yb, 1 / (1 + np.exp(-eta))), rel=1e-12)


def test_overflow_gives_inf_never_nan(rng):
    A = rng.standard_normal((30, 2))
    y = rng.poisson(1.0, 30).astype(float)
    for family, power in (("poisson", None), ("gamma", None), ("tweedie", 3.0)):
        yy = y + 1.0 if family != "poisson" else y
        prob = fn.GLMRegression(A, yy, family=family, power=power)
        assert prob.fun(np.array([1e4, -1e4, 0.0])) == np.inf
    yb = (y > 1).astype(float)
    prob = fn.GLMRegression(A, yb, family="binomial")
    assert np.isfinite(prob.fun(np.array([1e4, -1e4, 0.0])))
    assert np.isfinite(prob.jac(np.array([1e4, -1e4, 0.0]))).all()


def test_block_form_matches_full_form(rng):
    prob, *_ = _instance(rng, "poisson", None, intercept=True, weights=True, offset=True)
    x = 0.3 * rng.standard_normal(prob.d)
    z = prob.design.matvec(x)
    loss, g = prob.loss_grad_z(z)
    beta = prob.parts_z(z).beta
    blocks = np.array_split(rng.permutation(z.size), 3)
    tot, g2, b2 = 0.0, np.empty_like(g), np.empty_like(g)
    for r in blocks:
        val, g2[r] = prob.block_loss_grad_z(z[r], r, None)
        tot += val
        b2[r] = prob.block_parts_z(z[r], r, None)[0]
    assert tot == pytest.approx(loss, rel=1e-13)
    assert _rel(g2, g) < 1e-15 and _rel(b2, beta) < 1e-15


# -- solutions: scipy, scikit-learn, glum, every method ----------------------------------------

@pytest.mark.parametrize("family, power", CASES, ids=IDS)
def test_minimize_matches_scipy(family, power, rng):
    for intercept, weights, offset in ((True, True, False), (False, False, True),
                                       (True, True, True)):
        prob, A, y, sw, off = _instance(rng, family, power, intercept=intercept,
                                        weights=weights, offset=offset)
        fg = _reference_objective(family, power, A, y, sw, off, intercept, 0.5)
        ref = so.minimize(fg, np.zeros(prob.d), jac=True, method="L-BFGS-B",
                          options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        res = fn.minimize(prob, method="exact", tol=1e-12)
        assert res.success, res.message
        assert _rel(res.x, ref.x) < 1e-6
        assert res.fun <= ref.fun + 1e-10 * abs(ref.fun)
        assert np.linalg.norm(fg(res.x)[1]) < 1e-8 * max(1.0, np.linalg.norm(fg(np.zeros(prob.d))[1]))


@pytest.mark.parametrize("method", ["exact", "sketch", "pcg", "sample", "auto"])
@pytest.mark.parametrize("family, power", CASES, ids=IDS)
def test_every_method_converges(family, power, method, rng):
    prob, *_ = _instance(rng, family, power, intercept=True, weights=True, offset=True,
                         sparse=True, n=400, p=5, lam=1.0)
    ref = fn.minimize(prob, method="exact", tol=1e-12)
    res = fn.minimize(prob, method=method, seed=0, tol=1e-10)
    assert res.success, res.message
    assert _rel(res.x, ref.x) < 1e-7


def _sklearn_case(rng, family, power, n=300, p=5):
    A = rng.standard_normal((n, p)) * 0.5
    eta = A @ (rng.standard_normal(p) * 0.5) + 0.2
    return A, _y(rng, family, power, eta), rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("family, power", [("binomial", None), ("poisson", None),
                                           ("gamma", None), ("tweedie", 1.5),
                                           ("tweedie", 3.0)], ids=lambda v: str(v))
def test_matches_scikit_learn(family, power, rng):
    lm = pytest.importorskip("sklearn.linear_model")
    A, y, sw = _sklearn_case(rng, family, power)
    for intercept in (True, False):
        if family == "binomial":
            C = 2.0
            est = lm.LogisticRegression(C=C, tol=1e-12, max_iter=10000, fit_intercept=intercept)
            lam = 1.0 / C
        else:
            alpha = 0.01
            kw = dict(alpha=alpha, tol=1e-12, max_iter=10000, fit_intercept=intercept,
                      solver="newton-cholesky")
            est = {"poisson": lambda: lm.PoissonRegressor(**kw),
                   "gamma": lambda: lm.GammaRegressor(**kw),
                   "tweedie": lambda: lm.TweedieRegressor(power=power, link="log", **kw)}[family]()
            lam = alpha * sw.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(A, y, sample_weight=sw)
        prob = fn.GLMRegression(sp.csr_array(A), y, family=family, power=power,
                                sample_weight=sw, fit_intercept=intercept, lam=lam)
        res = fn.minimize(prob, method="exact", tol=1e-12)
        coef, b = prob.split(res.x)
        assert _rel(coef, np.ravel(est.coef_)) < 1e-6
        assert abs(b - float(np.ravel([est.intercept_])[0])) < 1e-6


@pytest.mark.parametrize("family, power", [("binomial", None), ("poisson", None),
                                           ("gamma", None), ("tweedie", 1.5),
                                           ("normal", None)], ids=lambda v: str(v))
def test_matches_glum(family, power, rng):
    glum = pytest.importorskip("glum")
    A, y, sw = _sklearn_case(rng, family, power)
    off = 0.1 * rng.standard_normal(y.size)
    alpha = 0.02
    fam = {"binomial": "binomial", "poisson": "poisson", "gamma": "gamma", "normal": "normal",
           "tweedie": glum.TweedieDistribution(power) if power else None}[family]
    est = glum.GeneralizedLinearRegressor(family=fam, link="identity" if family == "normal"
                                          else "logit" if family == "binomial" else "log",
                                          alpha=alpha, l1_ratio=0.0, gradient_tol=1e-12,
                                          max_iter=1000, fit_intercept=True)
    est.fit(A, y, sample_weight=sw, offset=off)
    prob = fn.GLMRegression(A, y, family=family, power=power, sample_weight=sw, offset=off,
                            lam=alpha * sw.sum())
    res = fn.minimize(prob, method="exact", tol=1e-12)
    coef, b = prob.split(res.x)
    assert _rel(coef, est.coef_) < 1e-6 and abs(b - est.intercept_) < 1e-6


# -- validation ----------------------------------------------------------------------------

def test_domain_and_argument_errors(rng):
    A = rng.standard_normal((5, 2))
    y = np.array([0.0, 1.0, 0.5, 2.0, 3.0])
    with pytest.raises(ValidationError, match=r"y must be in \[0, 1\].*binomial.*y\[3\]"):
        fn.GLMRegression(A, y, family="binomial")
    with pytest.raises(ValidationError, match="non-negative.*poisson"):
        fn.GLMRegression(A, y - 1, family="poisson")
    with pytest.raises(ValidationError, match="positive.*gamma.*y\\[0\\]"):
        fn.GLMRegression(A, y, family="gamma")
    fn.GLMRegression(A, y, family="tweedie", power=1.5)  # y >= 0 is fine for 1 < p < 2
    with pytest.raises(ValidationError, match="positive.*power=3"):
        fn.GLMRegression(A, y, family="tweedie", power=3)
    with pytest.raises(ValueError, match="0 < power < 1"):
        fn.GLMRegression(A, y, family="tweedie", power=0.5)
    with pytest.raises(ValueError, match="needs a power"):
        fn.GLMRegression(A, y, family="tweedie")
    with pytest.raises(ValueError, match="power applies to family='tweedie' only"):
        fn.GLMRegression(A, y, family="poisson", power=1.5)
    with pytest.raises(ValueError, match="family must be one of"):
        fn.GLMRegression(A, y, family="logistic")
    assert fn.GLMRegression(A, y + 1, family="tweedie", power=2).family == "gamma"
    assert fn.GLMRegression(A, y, family="tweedie", power=1).family == "poisson"
    assert fn.GLMRegression(A, y, family="tweedie", power=0).family == "normal"
    with pytest.raises(ValidationError, match="sample_weight must be non-negative.*sample 2"):
        fn.GLMRegression(A, y, family="poisson", sample_weight=[1, 1, -1, 1, 1])
    with pytest.raises(ValidationError, match="sample_weight has 4 entries, expected 5"):
        fn.GLMRegression(A, y, family="poisson", sample_weight=np.ones(4))
    with pytest.raises(ValidationError, match="sample_weight contains NaN"):
        fn.GLMRegression(A, y, family="poisson", sample_weight=[1, np.nan, 1, 1, 1])
    with pytest.raises(ValidationError, match="positive sum"):
        fn.GLMRegression(A, y, family="poisson", sample_weight=np.zeros(5))
    with pytest.raises(ValidationError, match="offset contains NaN"):
        fn.GLMRegression(A, y, family="poisson", offset=[0, 0, np.inf, 0, 0])
    with pytest.raises(ValidationError, match="offset has 3 entries"):
        fn.GLMRegression(A, y, family="poisson", offset=np.zeros(3))
    with pytest.raises(ValidationError, match="y has 4 entries"):
        fn.GLMRegression(A, y[:4], family="poisson")
    with pytest.raises(TypeError, match="fit_intercept must be True or False"):
        fn.GLMRegression(A, y, family="poisson", fit_intercept="yes")
    with pytest.raises(ValidationError, match="lam must be >= 0"):
        fn.GLMRegression(A, y, family="poisson", lam=-1.0)


def test_split_lam_layout_and_repr(rng):
    A = rng.standard_normal((20, 3))
    y = (rng.random(20) < 0.5).astype(float)
    prob = fn.GLMRegression(A, y, lam=2.0)
    assert prob.d == 4 and prob.n_features == 3
    np.testing.assert_array_equal(prob.lam, [2.0, 2.0, 2.0, 0.0])
    coef, b = prob.split(np.arange(4.0))
    np.testing.assert_array_equal(coef, [0.0, 1.0, 2.0])
    assert b == 3.0
    prob = fn.GLMRegression(A, y, lam=2.0, fit_intercept=False)
    assert prob.lam == 2.0 and prob.split(np.ones(3))[1] == 0.0
    assert "GLMRegression(n=20, n_features=3, family='binomial'" in repr(prob)
    assert fn.problems.PROBLEMS["glm"] is fn.GLMRegression


def test_zero_weight_samples_take_no_part(rng):
    A = rng.standard_normal((40, 2))
    y = rng.poisson(1.0, 40).astype(float)
    sw = np.ones(40)
    sw[:10] = 0.0
    full = fn.minimize(fn.GLMRegression(A, y, family="poisson", sample_weight=sw), tol=1e-12)
    sub = fn.minimize(fn.GLMRegression(A[10:], y[10:], family="poisson"), tol=1e-12)
    assert _rel(full.x, sub.x) < 1e-9


def test_cli_solves_a_glm(tmp_path, rng):
    from fastnewton import cli

    A = sp.csr_array(_A(rng, 200, 4, True))
    y = rng.poisson(np.exp(A @ np.full(4, 0.2))).astype(float)
    sp.save_npz(tmp_path / "A.npz", A)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "x.npz"
    rc = cli.main(["solve", "--problem", "glm", "--A", str(tmp_path / "A.npz"),
                   "--param", f"y={tmp_path / 'y.npy'}", "--param", 'family="poisson"',
                   "--lam", "1.0", "--out", str(out), "--quiet", "--tol", "1e-10"])
    assert rc == 0
    ref = fn.minimize(fn.GLMRegression(A, y, family="poisson", lam=1.0), tol=1e-10)
    assert _rel(np.load(out)["x"], ref.x) < 1e-8


# -- the default start ------------------------------------------------------------------------

@pytest.mark.parametrize("family, power", CASES, ids=IDS)
def test_initial_point_minimizes_the_intercept_at_zero_coef(family, power, rng):
    prob, A, y, sw, off = _instance(rng, family, power, intercept=True, weights=True,
                                    offset=False)
    x0 = prob.initial_point()
    fg = _reference_objective(family, power, A, y, sw, off, True, prob.alpha)
    _, g = fg(x0)
    assert x0.shape == (prob.d,) and np.all(x0[:-1] == 0.0)
    # the intercept's derivative vanishes: the exact minimizer over it at coef = 0
    _, g_zero = fg(np.zeros(prob.d))
    assert abs(g[-1]) <= 1e-10 * max(abs(g_zero[-1]), 1.0)
    # minimize starts there when no x0 is given
    with pytest.warns(fn.ConvergenceWarning):
        res = fn.minimize(prob, method="exact", maxiter=0)
    np.testing.assert_array_equal(res.x, x0)


def test_initial_point_with_offsets_and_without_intercept(rng):
    prob, A, y, sw, off = _instance(rng, "normal", None, intercept=True, weights=True,
                                    offset=True)
    b = prob.initial_point()[-1]
    assert b == pytest.approx(np.average(y, weights=sw) - np.average(off, weights=sw),
                              rel=1e-12)
    prob, *_ = _instance(rng, "poisson", None, intercept=False, weights=False, offset=True)
    np.testing.assert_array_equal(prob.initial_point(), np.zeros(prob.d))
    # degenerate means stay finite: all-zero counts, all-one labels
    A = rng.standard_normal((20, 3))
    assert fn.GLMRegression(A, np.zeros(20), family="poisson").initial_point()[-1] == 0.0
    b = fn.GLMRegression(A, np.ones(20), family="binomial").initial_point()[-1]
    assert np.isfinite(b) and b > 20


@pytest.mark.parametrize("method", ["exact", "sketch", "sample", "pcg", "wide", "auto"])
@pytest.mark.parametrize("family,fit_intercept", [("binomial", True), ("poisson", False),
                                                  ("normal", True)])
def test_zero_column_without_ridge_keeps_its_coefficient_at_zero(family, fit_intercept,
                                                                 method, rng):
    """A column of A that is zero (a one-hot level absent from the training rows) and no
    ridge: no curvature and no gradient there. The coefficient stays at 0 (the
    minimum-norm solution, as L-BFGS and Newton-CG give), never a rounding error blown
    up by the Jacobi scaling of the model Hessian; the others are the fit without it."""
    n, d = 400, 5
    X = rng.standard_normal((n, d))
    eta = 0.5 * X @ rng.standard_normal(d)
    y = {"binomial": lambda: (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float),
         "poisson": lambda: rng.poisson(np.exp(eta)).astype(float),
         "normal": lambda: eta + 0.1 * rng.standard_normal(n)}[family]()
    X[:, 2] = 0.0
    kw = dict(family=family, fit_intercept=fit_intercept, lam=0.0)
    res = fn.minimize(fn.GLMRegression(X, y, **kw), method=method, tol=1e-10, seed=0)
    keep = [0, 1, 3, 4] + ([5] if fit_intercept else [])
    ref = fn.minimize(fn.GLMRegression(np.delete(X, 2, axis=1), y, **kw), method="exact",
                      tol=1e-12)
    assert res.success and res.x[2] == 0.0
    np.testing.assert_allclose(res.x[keep], ref.x, rtol=1e-7, atol=1e-9)


def test_an_iterate_on_the_edge_of_the_loss_domain_ends_without_an_exception(monkeypatch):
    """A user's loss undefined beyond z = 1 whose minimizer lies on that edge: z = A x
    recomputed can cross it by a rounding error. The solve ends without an exception, not
    a success (status 5 where the recomputed point is not finite, else stalled), with the
    loop's finite f and jac."""
    import numba

    @numba.njit
    def capped(z, y):
        if z > 1.0:
            return np.nan, np.nan, np.nan
        return 0.5 * (z - y) ** 2, z - y, 1.0

    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 4))
    y = A @ np.ones(4) + 0.1 * rng.standard_normal(300)
    prob = fn.SeparableLoss(A, y, capped)
    for method in ("exact", "sketch", "wide"):
        with pytest.warns(fn.ConvergenceWarning):
            res = fn.minimize(prob, method=method, tol=1e-10, seed=0)
        assert res.status in (5, 6) and not res.success
        assert res.status == 6 or "z = A x recomputed (loss function" in res.message
        assert np.isfinite(res.fun) and np.isfinite(res.jac).all()
        assert np.max(A @ res.x) <= 1.0 + 1e-12
    # the path itself, deterministically: the final check meets a non-finite derivative
    import fastnewton.newton as newton

    import inspect

    evaluate = newton._objective_and_gradient

    def not_finite_at_the_check(problem, x, z):
        if inspect.stack()[1].function == "_exact_point":
            raise fn.NonFiniteError("loss function 'capped' returned a non-finite derivative")
        return evaluate(problem, x, z)
    monkeypatch.setattr(newton, "_objective_and_gradient", not_finite_at_the_check)
    prob = fn.SeparableLoss(A, y, capped, lam=1.0)
    with pytest.warns(fn.ConvergenceWarning, match="z = A x recomputed.*'capped'"):
        res = fn.minimize(prob, method="exact", tol=1e-10)
    assert res.status == 5 and not res.success and np.isfinite(res.fun)
