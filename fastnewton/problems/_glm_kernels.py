"""Numba kernels of the GLM families: loss, gradient and Hessian diagonal in z in one pass.

One kernel for every family (a family code, see :data:`fastnewton.problems.glm.FAMILY_CODES`):
0 normal, 1 binomial (logit), 2 Poisson (log), 3 Gamma (log), 4 Tweedie (log, any
power p outside {0, 1, 2}). Per sample, with eta = z_i + offset_i and weight s_i,
the kernel adds ``s_i (l(eta, y_i) + c_i)`` to the loss (``c_i``: the constant that
makes ``l + c`` the half unit deviance, precomputed in Python), writes
``grad_i = s_i l'(eta, y_i)`` and ``beta_i = s_i l''(eta, y_i)``. Empty ``offset``,
``sw`` or ``const`` mean 0, 1 and 0. The loss is summed over fixed row blocks added
in block order: the same bits for any thread count. Overflow gives an infinite (or
NaN) loss, which the callers turn into ``inf``.
"""

import numpy as np
from numba import njit, prange

__all__ = ["glm_loss_grad"]


@njit(cache=True, inline="always")
def _glm_point(kind, power, eta, y):
    """(l, l', l'') of one sample (see the module docstring for the codes)."""
    if kind == 0:
        r = eta - y
        return 0.5 * r * r, r, 1.0
    if kind == 1:
        # log(1 + e^eta) - y eta = max(eta, 0) + log1p(e^-|eta|) - y eta
        e = np.exp(-abs(eta))
        inv = 1.0 / (1.0 + e)
        sig = inv if eta >= 0.0 else e * inv
        return max(eta, 0.0) + np.log1p(e) - y * eta, sig - y, e * inv * inv
    if kind == 2:
        mu = np.exp(eta)
        return mu - y * eta, mu - y, mu
    if kind == 3:
        t = y * np.exp(-eta)
        return eta + t, 1.0 - t, t
    a = y * np.exp((1.0 - power) * eta)
    b = np.exp((2.0 - power) * eta)
    return (-a / (1.0 - power) + b / (2.0 - power), b - a,
            (power - 1.0) * a + (2.0 - power) * b)


@njit(cache=True, parallel=True)
def glm_loss_grad(kind, power, z, y, offset, sw, const, buf, grad, beta):
    """Return ``sum_i s_i (l(z_i + offset_i, y_i) + c_i)``; fill ``grad`` (unless empty)
    with ``s_i l'`` and ``beta`` (unless empty) with ``s_i l''``. ``buf`` holds one
    partial sum per fixed row block."""
    n = z.shape[0]
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    has_off = offset.shape[0] > 0
    has_sw = sw.shape[0] > 0
    has_c = const.shape[0] > 0
    want_grad = grad.shape[0] > 0
    want_beta = beta.shape[0] > 0
    for blk in prange(nb):
        acc = 0.0
        for i in range(blk * step, min(n, (blk + 1) * step)):
            eta = z[i] + offset[i] if has_off else z[i]
            val, d1, d2 = _glm_point(kind, power, eta, y[i])
            if has_c:
                val += const[i]
            if has_sw:
                s = sw[i]
                if s == 0.0:  # a sample without weight takes no part (even if it overflows)
                    val = d1 = d2 = 0.0
                else:
                    val *= s
                    d1 *= s
                    d2 *= s
            acc += val
            if want_grad:
                grad[i] = d1
            if want_beta:
                beta[i] = d2
        buf[blk] = acc
    total = 0.0
    for blk in range(nb):
        total += buf[blk]
    return total
