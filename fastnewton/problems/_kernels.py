"""Numba kernels for the elementwise work of the exp / cosh / sinh family and of the
softmax-type families (softmax, ResNet-softmax, rescaled exp / cosh / sinh).

One parallel pass over z computes what numpy needs several passes (and several
``exp`` calls) for. Sums go through a fixed number of row blocks (chosen from n only)
reduced in block order, so results do not depend on the thread count.
Family codes of the exp kernels: 0 exp, 1 cosh, 2 sinh (f'' == f for all three); the
softmax-type kernels (two passes: block statistics, then loss/gradient or Hessian parts)
have their own codes, see their section. The loss alone and the loss with its gradient
come from one kernel, so the value the line search accepts is, bit for bit, the value
recorded at the new point.
"""

import numpy as np
from numba import njit, prange

__all__ = ["exp_family_loss_grad", "exp_family_beta", "shifted_partials", "shifted_loss_grad",
           "shifted_parts"]


@njit(cache=True, inline="always")
def _f_df(kind, zi):
    if kind == 0:
        f = np.exp(zi)
        return f, f
    if kind == 1:
        return np.cosh(zi), np.sinh(zi)
    return np.sinh(zi), np.cosh(zi)


@njit(cache=True, parallel=True)
def exp_family_loss_grad(z, b, w2, kind, buf, grad, beta):
    """Return ½‖f(z) − b‖² + ½ Σ w2 z²; also ``grad = f'(z)(f(z) − b) + w2 z`` unless
    ``grad`` is empty (loss only), and ``beta`` as :func:`exp_family_beta` (same bits)
    unless ``beta`` is empty. ``buf`` holds one partial sum per fixed row block."""
    n = z.shape[0]
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    want_grad = grad.shape[0] > 0
    want_beta = beta.shape[0] > 0
    for blk in prange(nb):
        acc = 0.0
        for i in range(blk * step, min(n, (blk + 1) * step)):
            zi = z[i]
            f, df = _f_df(kind, zi)
            r = f - b[i]
            acc += r * r + w2[i] * zi * zi
            if want_grad:
                grad[i] = df * r + w2[i] * zi
            if want_beta:
                beta[i] = df * df + f * (f - b[i]) + w2[i]
        buf[blk] = acc
    total = 0.0
    for blk in range(nb):
        total += buf[blk]
    return 0.5 * total


@njit(cache=True, parallel=True)
def exp_family_beta(z, b, w2, kind, beta):
    """``beta = f'(z)² + f(z)(f(z) − b) + w2`` (the diagonal Hessian in z)."""
    for i in prange(z.shape[0]):
        f, df = _f_df(kind, z[i])
        beta[i] = df * df + f * (f - b[i]) + w2[i]


# -- softmax-type families: softmax (0), ResNet-softmax (1), rescaled exp/cosh/sinh (2/3/4) --
# Pass 1 (shifted_partials): per fixed row block, the shift m (softmax: max z; ResNet:
# max(max z, 0); rescaled: 0, no shift), e = exp(z - m) (rescaled: f(z)) written to the
# output array ``e`` and the block sums [m, Σv, Σv², Σbv, Σb²] of v = e (ResNet:
# v = e + z exp(-m)); the blocks are combined in Python in block order. Pass 2
# (shifted_loss_grad, shifted_parts) reads e back with the global statistics ``k`` and
# the per-block factor ``scale`` from the block's shift to the global one (M):
#   softmax  k = [<s,s-b>]                s = e * scale[blk]
#   ResNet   k = [<s,s-b>, e^-M/alpha]    e^z/alpha = e * scale[blk], s = e^z/alpha + z k[1],
#                                         q/alpha = e^z/alpha + k[1]  (e = exp(z - m) only)
#   rescaled k = [<b,c>, <f,1>, <b,b>]    c = f - k[1] b


@njit(cache=True, inline="always")
def _block_range(blk, step, n):
    lo = blk * step
    return lo, min(n, lo + step)


@njit(cache=True, inline="always")
def _shifted_value(kind, zi, m):
    if kind <= 1:
        return np.exp(zi - m)
    if kind == 2:
        return np.exp(zi)
    if kind == 3:
        return np.cosh(zi)
    return np.sinh(zi)


@njit(cache=True, parallel=True)
def shifted_partials(z, b, kind, part, e):
    """Block statistics ``part[blk] = [m, Σv, Σv², Σbv, Σb²]`` of the shifted values v
    (ResNet: v = e + z e^-m); ``e`` gets e."""
    n = z.shape[0]
    nb = part.shape[0]
    step = (n + nb - 1) // nb
    for blk in prange(nb):
        lo, hi = _block_range(blk, step, n)
        m = 0.0
        if kind <= 1:
            m = -np.inf
            for i in range(lo, hi):  # a NaN in z reaches the sums through e anyway
                m = max(m, z[i])
            if kind == 1 and hi > lo:
                m = max(m, 0.0)
        em = np.exp(-m) if kind == 1 else 0.0
        s1 = 0.0
        s2 = 0.0
        sb = 0.0
        sbb = 0.0
        for i in range(lo, hi):
            ei = _shifted_value(kind, z[i], m)
            e[i] = ei
            vi = ei + z[i] * em if kind == 1 else ei
            s1 += vi
            s2 += vi * vi
            sb += b[i] * vi
            sbb += b[i] * b[i]
        part[blk, 0] = m
        part[blk, 1] = s1
        part[blk, 2] = s2
        part[blk, 3] = sb
        part[blk, 4] = sbb


@njit(cache=True, inline="always")
def _row_terms(kind, zi, ei, bi, sc, k):
    """(c, q, r, s, t) of one row: loss c²/2, gradient q (c - r) (softmax: s (c - r)),
    s the model (softmax, ResNet) and t the factor of (c - r) in beta (ResNet, rescaled)."""
    if kind == 0:
        s = ei * sc
        return s - bi, s, k[0], s, s
    if kind == 1:
        ez = ei * sc
        s = ez + zi * k[1]
        return s - bi, ez + k[1], k[0], s, ez
    c = ei - k[1] * bi
    if kind == 2:
        q = ei
    elif kind == 3:
        q = np.sinh(zi)
    else:
        q = np.cosh(zi)
    return c, q, k[0], ei, ei


@njit(cache=True, inline="always")
def _parts_row(kind, bi, w2i, c, q, r, s, t):
    """(beta_i, U_i0, U_i1) of :func:`shifted_parts` from the row terms."""
    if kind == 0:
        v = s * (2.0 * s - bi)
        return v - r * s + w2i, s, v
    return q * q + t * (c - r) + w2i, q, (q * (2.0 * s - bi) if kind == 1 else q * bi)


@njit(cache=True, parallel=True)
def shifted_loss_grad(kind, z, b, w2, e, scale, k, buf, grad, beta, U):
    """Return ½‖c‖² + ½ Σ w2 z² after :func:`shifted_partials`; also (unless ``grad`` is
    empty) ``grad = q (c - r) + w2 z`` (softmax: s∘c − <s,c> s), and (unless ``beta`` is
    empty) ``beta`` and ``U`` as :func:`shifted_parts` (same bits). ``grad`` may be ``e``
    when ``beta`` is empty."""
    n = z.shape[0]
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    want_grad = grad.shape[0] > 0
    want_parts = beta.shape[0] > 0
    for blk in prange(nb):
        lo, hi = _block_range(blk, step, n)
        sc = scale[blk]
        acc = 0.0
        for i in range(lo, hi):
            zi = z[i]
            bi = b[i]
            c, q, r, s, t = _row_terms(kind, zi, e[i], bi, sc, k)
            acc += c * c + w2[i] * zi * zi
            if want_grad:
                grad[i] = q * (c - r) + w2[i] * zi
            if want_parts:
                beta[i], U[i, 0], U[i, 1] = _parts_row(kind, bi, w2[i], c, q, r, s, t)
        buf[blk] = acc
    total = 0.0
    for blk in range(nb):
        total += buf[blk]
    return 0.5 * total


@njit(cache=True, parallel=True)
def shifted_parts(kind, z, b, w2, e, scale, k, beta, U):
    """Diagonal ``beta`` (with w2) and the two columns of ``U`` after :func:`shifted_partials`
    (``beta`` may be ``e``): softmax s∘(2s−b) − <s,c> s, U = [s, s∘(2s−b)]; ResNet
    (q/α)² + e^z/α (c − <s,c>), U = [q/α, q/α (2s−b)]; rescaled q² + f (c − <b,c>),
    U = [q, q b]."""
    n = z.shape[0]
    nb = scale.shape[0]
    step = (n + nb - 1) // nb
    for blk in prange(nb):
        lo, hi = _block_range(blk, step, n)
        sc = scale[blk]
        for i in range(lo, hi):
            zi = z[i]
            bi = b[i]
            c, q, r, s, t = _row_terms(kind, zi, e[i], bi, sc, k)
            beta[i], U[i, 0], U[i, 1] = _parts_row(kind, bi, w2[i], c, q, r, s, t)
