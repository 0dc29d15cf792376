"""The fused loss / gradient / curvature kernel of a user's per-sample loss.

A user loss ``loss(z_i, y_i) -> (value, d/dz, d2/dz2)`` (a numba function) is compiled
into one parallel pass over z, with offsets and sample weights folded in, exactly as
the GLM families' kernel (:mod:`fastnewton.problems._glm_kernels`): the loss summed
over fixed row blocks in block order (bitwise the same for any thread count).

The kernel is built once per user function and process by :func:`separable_kernel`
(a memoized factory: the user function is a compile-time constant of the kernel).
Numba cannot cache such kernels on disk (measured with numba 0.6x: a closure over a
dispatcher, or a dispatcher passed as an argument, misses the on-disk cache in every
new process), so each process compiles it once, about 1-2 s.
"""

import numpy as np
from numba import njit, prange

__all__ = ["separable_kernel"]

_KERNELS = {}


def separable_kernel(loss):
    """The fused kernel of ``loss`` (compiled on first call, kept for the process).

    ``kernel(z, y, offset, sw, buf, bad, grad, beta)`` returns the weighted loss
    ``sum_i s_i l(z_i + o_i, y_i)`` and fills ``grad`` / ``beta`` unless they are
    empty (empty ``offset`` / ``sw``: 0 / 1); ``bad[blk]`` gets the first sample of
    block blk (``buf`` and ``bad`` have one entry per block) whose value or
    derivatives are not finite, -1 if none. Samples of zero weight are skipped.
    """
    kernel = _KERNELS.get(loss)
    if kernel is not None:
        return kernel

    @njit(parallel=True)
    def kernel(z, y, offset, sw, buf, bad, grad, beta):
        n = z.shape[0]
        nb = buf.shape[0]
        step = (n + nb - 1) // nb
        has_off = offset.shape[0] > 0
        has_sw = sw.shape[0] > 0
        want_grad = grad.shape[0] > 0
        want_beta = beta.shape[0] > 0
        for blk in prange(nb):
            acc = 0.0
            first = -1
            for i in range(blk * step, min(n, (blk + 1) * step)):
                eta = z[i] + offset[i] if has_off else z[i]
                s = sw[i] if has_sw else 1.0
                if s == 0.0:
                    val = d1 = d2 = 0.0
                else:
                    out = loss(eta, y[i])
                    val = float(out[0])
                    d1 = float(out[1])
                    d2 = float(out[2])
                    if first < 0 and not (np.isfinite(val) and np.isfinite(d1)
                                          and np.isfinite(d2)):
                        first = i
                    if has_sw:
                        val *= s
                        d1 *= s
                        d2 *= s
                acc += val
                if want_grad:
                    grad[i] = d1
                if want_beta:
                    beta[i] = d2
            buf[blk] = acc
            bad[blk] = first
        total = 0.0
        for blk in range(nb):
            total += buf[blk]
        return total

    _KERNELS[loss] = kernel
    return kernel
