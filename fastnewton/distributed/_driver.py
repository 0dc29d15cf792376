"""Client-side Newton loop of the distributed backend.

The step logic is that of :func:`fastnewton.minimize` (same model Hessians, same
subspace refinement for the sketch method, same Armijo rules and stopping tests), with
every pass over A done by the workers on their row blocks. Per step only d-vectors,
the m x d partial sketches (or d x d partial Grams) and d x k low-rank products travel;
the client reduces them in block order, factors and decides.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .._steps import default_sketch_size
from .._validation import check_scalar, check_x
from ..exceptions import ConvergenceWarning, ValidationError
from ..linalg import pcg, shifted_cholesky
from ..linalg._design import ridge_dot, ridge_value
from ..linalg._tallgram import tall_gram
from .._convergence import (CONVERGED_GRADIENT, LINE_SEARCH_FAILED, MESSAGES, NON_FINITE,
                            REMEDIES, STALLED, STOPPED_BY_CALLBACK, stalled, stop_status)
from ..newton import _EPS, NewtonResult, subspace_coefficients
from . import _blocks
from ._problem import DistributedProblem

__all__ = ["minimize"]

METHODS = ("exact", "sketch", "pcg")


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 8 if obj is not None else 0


class _Session:
    """Round trips to the blocks, with byte accounting."""

    def __init__(self, problem, model):
        self.problem = problem
        self.model = model
        self.bytes = 0
        self.has_stats = True

    def _map(self, func, *args):
        out = self.problem.map(func, *args)
        self.bytes += len(self.problem.blocks) * _nbytes(args) + _nbytes(out)
        return out

    def stats(self, func, *args):
        """Global statistics (and their loss term) from one round of partial statistics.

        Families without statistics (row-separable losses) skip the round trips once
        their partials are seen to be empty.
        """
        if not self.has_stats:
            return None, 0.0
        parts = self._map(func, *args)
        if all(np.asarray(p).size == 0 for p in parts):
            self.has_stats = False
            return None, 0.0
        fut = self.problem.client.submit(_blocks.block_combine, self.problem.blocks[0],
                                         parts, pure=False)
        stats, stats_loss = fut.result()
        self.bytes += _nbytes(parts) + 64
        return stats, stats_loss

    def evaluate(self, x, lam, with_model):
        stats, stats_loss = self.stats(_blocks.block_stats, x)
        outs = self._map(_blocks.block_derivatives, x, stats,
                         self.model if with_model else None)
        f = stats_loss
        g = np.zeros_like(x)
        for o in outs:  # fixed block order
            f += o["loss"]
            g += o["grad"]
        f += ridge_value(lam, x)
        g += lam * x
        if not np.isfinite(f):
            f = np.inf
        return f, g, stats, (outs if with_model else None)


def _model_hessian(outs, lam, d):
    if "H" in outs[0]:
        H = outs[0]["H"].copy()
        for o in outs[1:]:
            H += o["H"]
    else:
        SA = outs[0]["SA"].copy()
        for o in outs[1:]:
            SA += o["SA"]
        H = tall_gram(SA)
    AU, C = _low_rank(outs)
    if AU is not None:
        H += AU @ C @ AU.T
    H[np.diag_indices(d)] += lam
    return H


def minimize(problem, x0=None, *, client=None, method="sketch", sketch="countsketch",
             sketch_size=None, tol=1e-8, maxiter=100, seed=None, callback=None,
             verbose=False, armijo=1e-4, max_backtracks=60):
    """Minimize a :class:`DistributedProblem` by (approximate) Newton steps on Dask.

    Same options and result as :func:`fastnewton.minimize` (methods ``"exact"``,
    ``"sketch"`` and ``"pcg"``; for ``pcg`` each CG iteration is one round trip, and the
    preconditioner is re-sketched every step). With the same integer ``seed`` the sketch is the one the single-process
    solver draws, so both reach the same minimizer (to rounding: reductions over blocks
    add in a different order than reductions over threads). ``res.history["bytes"]``
    and ``res.timings["bytes"]`` count the bytes moved between client and workers.
    The objective and gradient of every iterate are evaluated from x itself (the workers
    compute their blocks of A x afresh), so ``success`` (status 0) always means
    ``‖∇L(x)‖ <= tol ‖∇L(x0)‖`` at the returned x; a solve that stops making progress at
    rounding level ends with status 6 (stalled, ``success=False``), as the local solver.

    Parameters
    ----------
    problem : DistributedProblem
    client : ignored (the problem's client is used); accepted for symmetry.
    seed : None or int
        Workers rebuild the sketch from it, so it must be an int (None draws one).
    """
    t_start = time.perf_counter()
    seed = _check_args(problem, method, tol, maxiter, seed)
    n, d, lam = problem.n, problem.d, problem.lam
    x = np.zeros(d) if x0 is None else check_x(x0, d, "x0").copy()
    m, model = _model_spec(method, sketch, sketch_size, n, d, seed)
    sess = _Session(problem, model)
    timings = {"gradient": 0.0, "factor": 0.0, "solve": 0.0, "curvature": 0.0,
               "line_search": 0.0}

    t0 = time.perf_counter()
    f, g, stats, outs = sess.evaluate(x, lam, True)
    timings["gradient"] += time.perf_counter() - t0
    if not np.isfinite(f):
        raise ValidationError("the objective is not finite at x0")
    gnorm = g0norm = float(np.linalg.norm(g))
    hist = _History(m, t_start, verbose)
    hist.record(0, f, gnorm, 0.0, 0.0, 0, sess.bytes)
    nit, nfev, status, prev_s = 0, 1, None, None
    while True:
        # f and g are evaluated at x itself (no incremental z): the test is at the point
        # that is returned
        status = stop_status(gnorm, g0norm, tol, nit, maxiter)
        if status is None and stalled(hist):
            status = STALLED
        if status is not None:
            break
        try:
            fac, p, gp, inner = _direction(sess, method, x, stats, outs, lam, g, gnorm,
                                           g0norm, timings)
        except (FloatingPointError, np.linalg.LinAlgError):
            status = NON_FINITE
            break
        decrement = -gp
        dirs, coefs, gq, t_init = (p,), (1.0,), gp, 1.0
        if method == "sketch":
            t0 = time.perf_counter()
            dirs, coefs, gq, t_init = _subspace(sess, x, stats, lam, g, p, gp, prev_s, outs)
            timings["curvature"] += time.perf_counter() - t0
        q = sum(c * v for c, v in zip(coefs[1:], dirs[1:])) + coefs[0] * dirs[0]
        t0 = time.perf_counter()
        step, trials = _armijo(sess, x, f, gnorm, lam, dirs, coefs, q, gq, t_init, armijo,
                               max_backtracks)
        nfev += trials
        timings["line_search"] += time.perf_counter() - t0
        if step == 0.0:  # at rounding level: stalled (the gradient test is not met)
            fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
            status = STALLED if 0.5 * decrement <= fscale else LINE_SEARCH_FAILED
            break
        prev_s = step * q
        x = x + prev_s
        t0 = time.perf_counter()
        f, g, stats, outs = sess.evaluate(x, lam, True)
        timings["gradient"] += time.perf_counter() - t0
        gnorm = float(np.linalg.norm(g))
        nit += 1
        hist.record(nit, f, gnorm, step, fac.shift, inner, sess.bytes)
        if callback is not None and _stop_requested(callback, x, f, gnorm, nit):
            status = STOPPED_BY_CALLBACK
            break

    timings["total"] = time.perf_counter() - t_start
    timings["bytes"] = float(sess.bytes)
    success = status == CONVERGED_GRADIENT and bool(gnorm <= tol * g0norm)
    message = MESSAGES[status] + f" (relative gradient {gnorm / g0norm if g0norm else 0.0:.2e})"
    if not success and status != STOPPED_BY_CALLBACK:
        warnings.warn(f"fastnewton.distributed.minimize did not converge after {nit} steps: "
                      f"{message}. Remedy: {REMEDIES[status]}.", ConvergenceWarning,
                      stacklevel=2)
    history = {k: np.asarray(v, dtype=float) for k, v in hist.items()}
    return NewtonResult(x=x, fun=f, jac=g, grad_norm=gnorm, nit=nit, nfev=nfev,
                        success=success, status=status, message=message, method=method,
                        history=history, timings=timings, n_blocks=len(problem.blocks))


class _History(dict):
    """Per-iterate history arrays (as lists) and the verbose line of each step."""

    def __init__(self, m, t_start, verbose):
        super().__init__((k, []) for k in ("fun", "grad_norm", "step_size", "inner_iters",
                                           "sketch_size", "shift", "bytes", "time"))
        self.m, self.t_start, self.verbose = m, t_start, verbose

    def record(self, nit, f, gnorm, step, shift, inner, nbytes):
        for k, v in (("fun", f), ("grad_norm", gnorm), ("step_size", step),
                     ("inner_iters", inner), ("sketch_size", self.m if step else 0),
                     ("shift", shift), ("bytes", nbytes),
                     ("time", time.perf_counter() - self.t_start)):
            self[k].append(v)
        if self.verbose and step:
            print(f"{nit:4d} {f:22.15e} {gnorm:10.3e} {step:8.2e} "
                  f"{self['time'][-1]:8.3f} {nbytes / 1e6:10.2f} MB")


def _check_args(problem, method, tol, maxiter, seed):
    """Validate minimize's arguments; returns the int seed (drawn where None)."""
    if not isinstance(problem, DistributedProblem):
        raise TypeError(f"problem must be a fastnewton.distributed.DistributedProblem, "
                        f"got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_scalar(tol, "tol", low=0.0)
    check_scalar(maxiter, "maxiter", low=0, integer=True)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    check_scalar(seed, "seed", low=0, integer=True)
    return seed


def _model_spec(method, sketch, sketch_size, n, d, seed):
    """``(m, model)``: the sketch size and the model the workers build (a sketch named
    and seeded so that every worker draws the same one, or the exact Gram)."""
    if method not in ("sketch", "pcg"):
        return 0, ("exact",)
    m = default_sketch_size(n, d) if sketch_size is None else sketch_size
    check_scalar(m, "sketch_size", low=1, integer=True)
    if not isinstance(sketch, str):
        raise TypeError("sketch must be a sketch name in the distributed solver")
    return m, ("sketch", (sketch, int(m), n, int(seed)))


def _direction(sess, method, x, stats, outs, lam, g, gnorm, g0norm, timings):
    """``(factor, p, g.p, CG iterations)``: the model Hessian reduced from the blocks and
    factored, then its Newton step (``pcg``: Newton-CG preconditioned by it), a descent
    direction (-g where the model's step is not one)."""
    t0 = time.perf_counter()
    fac = shifted_cholesky(_model_hessian(outs, lam, g.shape[0]))
    t1 = time.perf_counter()
    inner = 0
    if method == "pcg":
        p, inner = _newton_cg(sess, x, stats, lam, g, gnorm / g0norm, fac, outs)
    else:
        p = -fac.solve(g)
    gp = float(g @ p)
    if not (np.isfinite(gp) and gp < 0):
        p, gp = -g, -gnorm * gnorm
    timings["factor"] += t1 - t0
    timings["solve"] += time.perf_counter() - t1
    return fac, p, gp, inner


def _armijo(sess, x, f, gnorm, lam, dirs, coefs, q, gq, t_init, armijo, max_backtracks):
    """Backtracking along q = Σ coefs·dirs by the rules of the local driver's Armijo search
    (``fastnewton._globalization._armijo``), the trial losses from the workers: returns
    ``(step, trials)``, step 0.0 where no trial was accepted."""
    t = t_init
    fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
    for trial in range(1, max_backtracks + 1):
        st, f_t = sess.stats(_blocks.block_trial_stats, x, dirs, coefs, t)
        for part in sess._map(_blocks.block_trial_loss, x, dirs, coefs, t, st):
            f_t += part
        x_t = x + t * q
        f_t += ridge_value(lam, x_t)
        if np.isfinite(f_t):
            if f_t <= f + armijo * t * gq:
                return t, trial
            if abs(f_t - f) <= fscale or (trial == 1 and -gq * t <= fscale
                                          and f_t - f <= 100.0 * fscale):
                _, g_t, _, _ = sess.evaluate(x_t, lam, False)
                if np.linalg.norm(g_t) < gnorm:
                    return t, trial
            denom = 2.0 * (f_t - f - gq * t)
            t_new = -gq * t * t / denom if denom > 0 else 0.5 * t
            t = min(max(t_new, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    return 0.0, max_backtracks


def _stop_requested(callback, x, f, gnorm, nit):
    """The user's callback asks to stop (returns True or raises StopIteration)."""
    from scipy.optimize import OptimizeResult

    try:
        return bool(callback(OptimizeResult(x=x.copy(), fun=f, grad_norm=gnorm, nit=nit)))
    except StopIteration:
        return True


def _newton_cg(sess, x, stats, lam, g, rel_grad, fac, outs):
    """Inexact Newton direction: CG on the exact Hessian (one round trip per product),
    preconditioned by the factor of the sketched Hessian, forcing term min(0.5, ‖g‖/‖g0‖)
    as in the local ``pcg`` method. Returns (direction, CG iterations)."""
    from scipy.sparse.linalg import LinearOperator

    d = g.shape[0]
    AU, C = _low_rank(outs)

    def hessp(v):
        out = lam * v
        for part in sess._map(_blocks.block_hessp, x, stats, np.ascontiguousarray(v)):
            out = out + part
        if AU is not None:
            out = out + AU @ (C @ (AU.T @ v))
        return out

    H = LinearOperator((d, d), matvec=hessp, dtype=np.float64)
    M = LinearOperator((d, d), matvec=fac.solve, dtype=np.float64)
    res = pcg(H, -g, rtol=min(0.5, rel_grad), maxiter=max(50, min(d, 500)), M=M)
    if res.negative_curvature and res.nit == 0:
        return -fac.solve(g), 0
    return res.x, res.nit


def _low_rank(outs):
    if "AU" not in outs[0]:
        return None, None
    AU = outs[0]["AU"].copy()
    for o in outs[1:]:
        AU += o["AU"]
    return AU, outs[0]["C"]


def _subspace(sess, x, stats, lam, g, p, gp, prev_s, outs):
    """Curvatures from the workers, then the 2-D model minimization of the local driver.

    Returns the direction as (vectors, coefficients), so that the workers form its image
    under A from the products they cached for the curvatures, g.direction and the first
    trial step.
    """
    parts = sess._map(_blocks.block_curvatures, x, stats, p, prev_s)
    C = outs[0].get("C")

    def total(key):
        acc = parts[0][key]
        for o in parts[1:]:
            acc = acc + o[key]
        return acc

    def low_rank(k1, k2):
        if C is None:
            return 0.0
        return float(total(k1) @ (C @ total(k2)))

    cpp = total("pp") + ridge_dot(lam, p, p) + low_rank("UAp", "UAp")
    if prev_s is None:
        cps = css = gs = None
    else:
        cps = total("ps") + ridge_dot(lam, p, prev_s) + low_rank("UAp", "UAs")
        css = total("ss") + ridge_dot(lam, prev_s, prev_s) + low_rank("UAs", "UAs")
        gs = float(g @ prev_s)
    a, b, t_init = subspace_coefficients(cpp, cps, css, gp, gs)
    if b == 0.0:
        return (p,), (a,), a * gp, t_init
    return (p, prev_s), (a, b), a * gp + b * gs, t_init
