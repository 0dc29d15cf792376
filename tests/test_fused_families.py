"""The fused numba z-space path of the softmax-type families (softmax, ResNet, rescaled)
against their numpy block formulas (``Problem``'s generic path); thread-count invariance,
loss_z == loss_grad_z bitwise, overflow and domain handling."""

import numpy as np
import pytest

import fastnewton as fn
from fastnewton._threads import thread_limit
from fastnewton.exceptions import ValidationError
from fastnewton.linalg._design import n_row_blocks
from fastnewton.problems._base import Problem

N = 3 * 4096 + 123  # four row blocks of unequal length
assert n_row_blocks(N) >= 3


def _prob_vector(rng, n):
    b = rng.random(n)
    return b / b.sum()


def _make(name, rng, w_kind):
    """The family on a trivial design (only the z-space calls are used)."""
    A = np.zeros((N, 1))
    w = {"none": None, "scalar": 0.3, "vector": rng.random(N)}[w_kind]
    b = _prob_vector(rng, N)
    if name == "softmax":
        return fn.SoftmaxRegression(A, b, w=w)
    if name == "resnet":
        return fn.ResNetSoftmaxRegression(A, b, w=w)
    return fn.RescaledRegression(A, b, f=name.split("-")[1], w=w, lam=1e-3)


NAMES = ("softmax", "resnet", "rescaled-exp", "rescaled-cosh", "rescaled-sinh")


def _z(name, rng, scale):
    z = scale * rng.standard_normal(N)
    if name == "resnet":
        z = np.abs(z)  # alpha = sum(e^z + z) > 0
    return z


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _scales(name):
    # softmax-type: huge z (max-shifted, no overflow); rescaled: f(z) must stay finite
    return (0.5, 30.0, 1e3) if name in ("softmax", "resnet") else (0.5, 3.0, 30.0)


@pytest.mark.parametrize("w_kind", ["none", "scalar", "vector"])
@pytest.mark.parametrize("name", NAMES)
def test_fused_path_matches_numpy_formulas(name, w_kind, rng):
    prob = _make(name, rng, w_kind)
    for scale in _scales(name):
        z = _z(name, rng, scale)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss, g = prob.loss_grad_z(z)
            parts = prob.parts_z(z)
        ref_loss, ref_g = Problem.loss_grad_z(prob, z)
        ref = Problem.parts_z(prob, z)
        assert np.isfinite(loss) and np.isfinite(g).all() and np.isfinite(parts.beta).all()
        assert abs(loss - ref_loss) <= 1e-13 * abs(ref_loss)
        assert _rel(g, ref_g) < 1e-13
        assert _rel(parts.beta, ref.beta) < 1e-13
        assert _rel(parts.U, ref.U) < 1e-13
        assert _rel(parts.C, ref.C) < 1e-13
        assert prob.loss_z(z) == loss  # bitwise: one kernel for both


@pytest.mark.parametrize("name", NAMES)
def test_fused_path_bitwise_identical_for_1_and_2_threads(name, rng):
    prob = _make(name, rng, "vector")
    z = _z(name, rng, 2.0)
    out = {}
    for t in (1, 2):
        with thread_limit(t):
            loss, g = prob.loss_grad_z(z)
            parts = prob.parts_z(z)
            out[t] = (loss, g, parts.beta, parts.U, parts.C, prob.loss_z(z))
    for a, b in zip(out[1], out[2]):
        assert np.array_equal(a, b)
    assert out[1][0] == out[1][5]


def test_loss_z_equals_loss_grad_z_on_many_points(rng):
    """The line search compares loss_z at trial points with loss_grad_z at accepted ones."""
    prob = _make("softmax", rng, "vector")
    for _ in range(5):
        z = rng.standard_normal(N) * rng.choice([1e-3, 1.0, 50.0]) + rng.normal() * 100
        assert prob.loss_z(z) == prob.loss_grad_z(z)[0]


def test_softmax_fused_is_shift_invariant_and_finite_at_large_z(rng):
    prob = _make("softmax", rng, "none")
    z = rng.standard_normal(N)
    loss, g = prob.loss_grad_z(z)
    for shift in (700.0, -900.0, 1e5):
        loss_s, g_s = prob.loss_grad_z(z + shift)
        assert loss_s == pytest.approx(loss, rel=1e-12)
        assert _rel(g_s, g) < 1e-10


def test_nonfinite_z_gives_inf_loss_like_numpy(rng):
    for name in NAMES:
        prob = _make(name, rng, "none")
        z = _z(name, rng, 0.5)
        z[7] = np.nan
        assert prob.loss_z(z) == np.inf and prob.loss_grad_z(z)[0] == np.inf
        assert Problem.loss_z(prob, z) == np.inf


def test_rescaled_overflow_is_inf(rng):
    prob = _make("rescaled-cosh", rng, "none")
    z = _z("rescaled-cosh", rng, 1.0)
    z[3] = 1e4
    assert prob.loss_z(z) == np.inf and prob.loss_grad_z(z)[0] == np.inf
    assert Problem.loss_z(prob, z) == np.inf


def test_resnet_outside_domain(rng):
    prob = _make("resnet", rng, "scalar")
    z = np.full(N, -3.0)  # e^z + z < 0 on every row: alpha < 0
    assert prob.loss_z(z) == np.inf
    loss, g = prob.loss_grad_z(z)
    assert loss == np.inf and np.isnan(g).all()
    with pytest.raises(ValidationError, match="alpha <= 0"):
        prob.parts_z(z)


@pytest.mark.parametrize("name", NAMES)
def test_fused_path_rejects_wrong_z_shape(name, rng):
    prob = _make(name, rng, "none")
    with pytest.raises(ValueError, match=rf"z must have shape \({N},\)"):
        prob.loss_grad_z(np.zeros(N - 1))
