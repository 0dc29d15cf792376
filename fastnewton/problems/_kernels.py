"""Numba kernels for the elementwise work of the exp / cosh / sinh family.

One parallel pass over z computes what numpy needs several passes (and several
``exp`` calls) for. Sums go through a fixed number of row blocks (chosen from n only)
reduced in block order, so results do not depend on the thread count.
Family codes: 0 exp, 1 cosh, 2 sinh (f'' == f for all three). The loss alone and the
loss with its gradient come from one kernel, so the value the line search accepts is,
bit for bit, the value recorded at the new point.
"""

import numpy as np
from numba import njit, prange

__all__ = ["exp_family_loss_grad", "exp_family_beta"]


@njit(cache=True, inline="always")
def _f_df(kind, zi):
    if kind == 0:
        f = np.exp(zi)
        return f, f
    if kind == 1:
        return np.cosh(zi), np.sinh(zi)
    return np.sinh(zi), np.cosh(zi)


@njit(cache=True, parallel=True)
def exp_family_loss_grad(z, b, w2, kind, buf, grad):
    """Return ½‖f(z) − b‖² + ½ Σ w2 z²; also ``grad = f'(z)(f(z) − b) + w2 z`` unless
    ``grad`` is empty (loss only). ``buf`` holds one partial sum per fixed row block."""
    n = z.shape[0]
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    want_grad = grad.shape[0] > 0
    for blk in prange(nb):
        acc = 0.0
        for i in range(blk * step, min(n, (blk + 1) * step)):
            zi = z[i]
            f, df = _f_df(kind, zi)
            r = f - b[i]
            acc += r * r + w2[i] * zi * zi
            if want_grad:
                grad[i] = df * r + w2[i] * zi
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
