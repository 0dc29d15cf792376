"""The gradient and the Hessian sketch in one pass over A (``CountSketch.apply_and_rmatvec``,
``Problem.loss_grad_parts_z`` and the ``sketch`` step model's ``objective_gradient``)
against the separate computations."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton._steps import SketchStep
from fastnewton._threads import thread_limit
from fastnewton.exceptions import ValidationError
from fastnewton.linalg import Design
from fastnewton.sketch import CountSketch


def _csr(rng, n, d, density=0.05):
    A = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float64)
    A.data = rng.standard_normal(A.nnz)
    return A


@pytest.mark.parametrize("m, dtype, index", [(1, np.float64, np.int32),
                                             (37, np.float32, np.int64),
                                             (400, np.float64, np.int64)])
def test_apply_and_rmatvec_matches_separate_products(rng, m, dtype, index):
    n, d = 5000, 30
    A = _csr(rng, n, d).astype(dtype)
    A.indices, A.indptr = A.indices.astype(index), A.indptr.astype(index)
    A.data[A.indptr[3]:A.indptr[4]] = 0.0  # an empty row
    A.eliminate_zeros()
    design = Design(A)
    assert design.A.data.dtype == dtype and design.A.indices.dtype == index
    y = rng.standard_normal(n)
    y[rng.random(n) < 0.2] = 0.0  # rows with y = 0 or w = 0 take the kernel's other branches
    w = rng.random(n)
    w[rng.random(n) < 0.2] = 0.0
    S = CountSketch(m, n, seed=rng)
    SA, g = S.apply_and_rmatvec(design, y, row_weights=w)
    assert np.array_equal(SA, S.apply(design, row_weights=w))  # the same additions
    ref = design.A.T @ y
    np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    runs = []
    for t in (1, 2, 3):
        with thread_limit(t):
            runs.append(S.apply_and_rmatvec(design, y, row_weights=w))
    for SA_t, g_t in runs:
        assert np.array_equal(SA_t, SA) and np.array_equal(g_t, runs[0][1])
    out = np.full((m, d), np.nan)  # a reused buffer is overwritten
    SA2, _ = S.apply_and_rmatvec(design, y, out=out)
    assert SA2 is out and np.array_equal(out, S.apply(design))


@pytest.mark.parametrize("kind", ["dense", "no-reorder"])
def test_apply_and_rmatvec_without_the_bucket_layout(rng, kind):
    n, d = 800, 12
    A = _csr(rng, n, d, density=0.2)
    design = Design(A.toarray() if kind == "dense" else A)
    S = CountSketch(50, n, seed=rng, reorder=kind != "no-reorder")
    y, w = rng.standard_normal(n), rng.random(n)
    SA, g = S.apply_and_rmatvec(design, y, row_weights=w)
    assert np.array_equal(SA, S.apply(design, row_weights=w))
    assert np.array_equal(g, design.rmatvec(y))


def test_apply_and_rmatvec_rejects_bad_input(rng):
    n, d = 300, 5
    A = _csr(rng, n, d, density=0.3)
    S = CountSketch(20, n, seed=0)
    design = Design(A)
    with pytest.raises(TypeError, match="design must be a fastnewton Design"):
        S.apply_and_rmatvec(A, np.ones(n))
    with pytest.raises(ValidationError, match=r"y must have shape \(300,\)"):
        S.apply_and_rmatvec(design, np.ones(n + 1))
    with pytest.raises(ValidationError, match="row_weights"):
        S.apply_and_rmatvec(design, np.ones(n), row_weights=-np.ones(n))
    with pytest.raises(ValidationError, match="out must be"):
        S.apply_and_rmatvec(design, np.ones(n), out=np.empty((20, d + 1)))


def _problems(rng, n=3000, d=8):
    A = _csr(rng, n, d, density=0.3)
    data = fn.datasets.make_regression(n, d, nnz_per_row=3, seed=rng, family="softmax")
    for f in ("exp", "cosh", "sinh"):
        yield f, fn.ExpRegression(A, 0.5 + rng.random(n), w=1.5, f=f, lam=1e-3)
    yield "softmax", fn.SoftmaxRegression(data.A, data.b, data.w)
    yield "resnet", fn.ResNetSoftmaxRegression(data.A, data.b, w=0.4)
    for f in ("exp", "cosh", "sinh"):
        yield f"rescaled-{f}", fn.RescaledRegression(A, data.b, f=f, w=0.4, lam=1e-3)
    H = rng.standard_normal((n, 2))  # no fused kernels: Problem's generic three calls
    yield "two-layer", fn.TwoLayerRegression(A, H, np.array([0.3, -0.2]), w=0.4)


def test_loss_grad_parts_z_is_the_three_calls_bitwise(rng):
    for name, prob in _problems(rng):
        z = 0.3 * rng.standard_normal(prob.n)
        f, gz, parts = prob.loss_grad_parts_z(z)
        f_ref, gz_ref = prob.loss_grad_z(z)
        ref = prob.parts_z(z)
        assert f == f_ref and np.array_equal(gz, gz_ref), name
        assert np.array_equal(parts.beta, ref.beta), name
        assert (parts.U is None) == (ref.U is None), name
        if ref.U is not None:
            assert np.array_equal(parts.U, ref.U) and np.array_equal(parts.C, ref.C), name
        if name not in ("softmax", "resnet", "two-layer"):  # (no overflow there)
            f, _, parts = prob.loss_grad_parts_z(np.full(prob.n, 800.0))  # f(800) overflows
            assert f == np.inf and parts is None, name


def test_sketch_step_objective_gradient_matches_the_separate_path(rng):
    prob = next(_problems(rng))[1]
    x = 0.1 * rng.standard_normal(prob.d)
    z = prob.design.matvec(x)
    step = SketchStep(prob, np.random.default_rng(1), "countsketch", 64)
    timings = dict.fromkeys(("gradient", "sketch", "factor", "solve"), 0.0)
    f, g, parts = step.objective_gradient(x, z, timings)
    assert f == pytest.approx(prob.fun(x), rel=1e-14)
    np.testing.assert_allclose(g, prob.jac(x), rtol=1e-12, atol=1e-14)
    p = step.direction(parts, g, timings).p
    fresh = SketchStep(prob, np.random.default_rng(1), "countsketch", 64)
    p_ref = fresh.direction(prob.parts_z(z), g, timings).p  # sketch made by sketched_gram
    assert np.array_equal(p, p_ref)
    assert timings["sketch"] > 0
    # overflow: no fused evaluation (the driver then reports the non-finite objective)
    assert step.objective_gradient(x, np.full(prob.n, 1e3), timings) is None


def test_minimize_sketch_same_answer_with_and_without_the_fused_pass(rng, monkeypatch):
    data = fn.datasets.make_regression(20000, 30, nnz_per_row=5, cond=100, seed=rng)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    fused = fn.minimize(prob, method="sketch", tol=1e-10, seed=3)
    monkeypatch.setattr(SketchStep, "objective_gradient", lambda self, x, z, t, pre=None: None)
    plain = fn.minimize(prob, method="sketch", tol=1e-10, seed=3)
    assert fused.success and plain.success
    np.testing.assert_allclose(fused.x, plain.x, rtol=1e-9, atol=1e-12)
    assert abs(fused.nit - plain.nit) <= 1
    assert fused.timings["sketch"] > 0 and fused.timings["gradient"] > 0


def test_sketch_method_on_a_problem_without_the_fused_call(rng):
    """A duck-typed problem with only the required z-space calls still solves (the
    gradient and the sketch are then made in separate passes)."""
    data = fn.datasets.make_regression(5000, 10, nnz_per_row=4, cond=30, seed=rng)
    inner = fn.ExpRegression(data.A, data.b, data.w)

    class Minimal:
        design, lam, n, d = inner.design, inner.lam, inner.n, inner.d

        def loss_z(self, z):
            return inner.loss_z(z)

        def loss_grad_z(self, z):
            return inner.loss_grad_z(z)

        def parts_z(self, z):
            return inner.parts_z(z)

    res = fn.minimize(Minimal(), method="sketch", tol=1e-10, seed=1)
    ref = fn.minimize(inner, method="sketch", tol=1e-10, seed=1)
    assert res.success and not hasattr(Minimal(), "loss_grad_parts_z")
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("family", ["softmax", "rescaled"])
def test_sketch_resume_bitwise_with_a_low_rank_part(rng, family):
    """A solve resumed from a saved state (whose first model is not made in the
    gradient's pass) follows the uninterrupted one bit for bit."""
    from fastnewton.newton import NewtonState

    data = fn.datasets.make_regression(6000, 12, nnz_per_row=4, cond=100, seed=rng,
                                       family="softmax")
    prob = (fn.SoftmaxRegression(data.A, data.b, data.w) if family == "softmax"
            else fn.RescaledRegression(data.A, data.b, f="exp", w=0.4, lam=1e-3))
    full = fn.minimize(prob, method="sketch", tol=1e-10, seed=4)
    saved = {}

    def stop_at_3(inter):
        if inter.nit == 3:
            saved.update(inter.state.to_arrays())
            return True
        return False

    fn.minimize(prob, method="sketch", tol=1e-10, seed=4, callback=stop_at_3)
    resumed = fn.minimize(prob, method="sketch", tol=1e-10, seed=4,
                          resume=NewtonState.from_arrays(saved))
    assert full.success and resumed.nit == full.nit
    assert np.array_equal(resumed.x, full.x)
    assert np.array_equal(resumed.history["fun"], full.history["fun"])


@pytest.mark.parametrize("method", ["exact", "sketch", "pcg"])
@pytest.mark.parametrize("family", ["exp", "softmax"])
def test_line_search_first_trial_fusion_changes_no_bit(rng, method, family):
    """The first trial evaluates loss, gradient and parts in one pass (``fused_z``): the
    iterates are bitwise those of the separate evaluations."""
    data = fn.datasets.make_regression(8000, 15, nnz_per_row=4, cond=100, seed=rng,
                                       family=family)
    make = fn.ExpRegression if family == "exp" else fn.SoftmaxRegression
    fused, plain = (make(data.A, data.b, data.w) for _ in range(2))
    plain.fused_z = False
    a = fn.minimize(fused, method=method, tol=1e-10, seed=2)
    b = fn.minimize(plain, method=method, tol=1e-10, seed=2)
    assert a.success and a.nit == b.nit
    assert np.array_equal(a.x, b.x)
    for key in ("fun", "grad_norm", "step_size"):
        assert np.array_equal(a.history[key], b.history[key]), key
