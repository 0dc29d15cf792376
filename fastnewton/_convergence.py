"""Stopping rules of the Newton drivers: status codes, messages and the stall test.

Shared by :func:`fastnewton.minimize`, the distributed driver and the adapter of the
matrix-valued families, so that every ``NewtonResult`` speaks the same statuses:

====  =========================================================================
 0    gradient test met at the returned x: ``‖∇L(x)‖ <= tol ‖∇L(x0)‖`` (success)
 1    ``maxiter`` reached
 2    Newton decrement below ``dtol`` (only when the caller sets ``dtol``; a
      success only when the gradient test holds at the returned x too)
 3    the line search could not decrease the objective
 4    stopped by the callback
 5    the gradient or Hessian became non-finite
 6    stalled: no progress beyond rounding level over the last
      :data:`STALL_STEPS` steps (the gradient test is not met)
====  =========================================================================

``success`` is True only where the gradient test holds at the returned x with
``z = A x`` recomputed, whatever the status.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CONVERGED_GRADIENT", "MAXITER", "CONVERGED_DECREMENT", "LINE_SEARCH_FAILED",
           "STOPPED_BY_CALLBACK", "NON_FINITE", "STALLED", "MESSAGES", "STALL_STEPS",
           "stop_status", "stalled"]

_EPS = np.finfo(np.float64).eps

CONVERGED_GRADIENT = 0
MAXITER = 1
CONVERGED_DECREMENT = 2
LINE_SEARCH_FAILED = 3
STOPPED_BY_CALLBACK = 4
NON_FINITE = 5
STALLED = 6

#: Steps over which the stall test looks for progress.
STALL_STEPS = 5

MESSAGES = {
    CONVERGED_GRADIENT: "gradient norm below tol * initial gradient norm",
    MAXITER: "maximum number of iterations reached",
    CONVERGED_DECREMENT: "Newton decrement below dtol",
    LINE_SEARCH_FAILED: "line search could not decrease the objective",
    STOPPED_BY_CALLBACK: "stopped by the callback",
    NON_FINITE: "the gradient or Hessian became non-finite",
    STALLED: "stalled: no decrease beyond rounding level",
}

#: What a caller can do about each non-success status (the ConvergenceWarning's remedy).
REMEDIES = {
    MAXITER: "raise maxiter, or use method='exact' for quadratic convergence",
    CONVERGED_DECREMENT: "the decrement test stopped first; lower dtol, or loosen tol",
    LINE_SEARCH_FAILED: "the requested tol may be below what float64 resolves here; "
                        "loosen tol, or add a ridge (lam > 0) if A is rank-deficient",
    NON_FINITE: "check the data scale (f(A x) may overflow) or add a ridge (lam > 0)",
    STALLED: "tol is likely below what float64 resolves here (the objective no longer "
             "changes beyond its rounding error); loosen tol, or restart from res.x with "
             "method='exact'",
}


def stop_status(gnorm, g0norm, tol, nit, maxiter):
    """The stopping test at the top of a Newton step: a status code, or None to go on."""
    if not np.isfinite(gnorm):
        return NON_FINITE
    if gnorm <= tol * g0norm:
        return CONVERGED_GRADIENT
    if nit >= maxiter:
        return MAXITER
    return None


def rounding_level(f):
    """The objective's rounding level used by the line searches: ``10 eps |f|``."""
    return 10 * _EPS * max(abs(f), np.finfo(float).tiny)


def stalled(history, steps=STALL_STEPS):
    r"""Whether the last ``steps`` steps made no progress beyond rounding level.

    True when, over the last ``steps`` steps (history entries, entry 0 the start),
    the gradient norm never fell below half its value ``steps`` steps ago, and the
    objective is flat at rounding level: it did not decrease by more than
    ``10 eps |f|`` over those steps, or every one of them had a model decrease
    :math:`\lambda^2/2` (``history["decrement"] / 2``) below that. (Near a minimizer
    the objective stops resolving progress before the gradient does; the gradient
    clause keeps a run that still reduces ``‖∇L‖`` going.)
    """
    fun, gnorm = history["fun"], history["grad_norm"]
    if len(fun) <= steps:
        return False
    g_then = gnorm[-steps - 1]
    if not min(gnorm[-steps:]) >= 0.5 * g_then:
        return False
    scale = rounding_level(fun[-1])
    if fun[-steps - 1] - min(fun[-steps:]) <= scale:
        return True
    dec = history.get("decrement")
    return dec is not None and all(0.5 * v <= scale for v in dec[-steps:])
