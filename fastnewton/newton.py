"""The globally convergent Newton driver: ``fastnewton.minimize``.

Template (after scikit-learn's Newton solver): setup, then per step
gradient + Hessian parts -> inner solve (the step model) -> globalization (Armijo
backtracking) -> convergence check, then finalize. The step models differ only in
how they approximate the Hessian A^T B A + lam I:

``exact``   the assembled Hessian, Cholesky-factored (shifted if indefinite).
``sketch``  the Hessian of a fixed sketch S of diag(sqrt(beta_+)) A, plus the exact
            low-rank part and ridge, Cholesky-factored (approximate Newton).
``pcg``     the exact Hessian applied matrix-free, CG preconditioned by the factor of
            the sketched Hessian, inexact-Newton forcing terms (Newton-CG).

Globalization: Armijo backtracking along the step (default), or the gradient-regularized
Newton method of arXiv 2506.13710 (``globalization="gradreg"``).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import OptimizeResult

from ._validation import check_rng, check_scalar, check_x
from ._state import NewtonState, check_resume
from .exceptions import ConvergenceWarning, ValidationError
from .linalg._design import axpby, curvature_sums, ridge_dot, ridge_value
from ._convergence import (CONVERGED_DECREMENT, CONVERGED_GRADIENT, LINE_SEARCH_FAILED,
                           MAXITER, MESSAGES, NON_FINITE, REMEDIES, STALLED,
                           STOPPED_BY_CALLBACK, rounding_level, stalled, stop_status)
from . import _memory
from ._steps import STEP_MODELS, default_sketch_size
from ._family_solvers import family_solver, minimize_family
from .problems import REQUIRED_METHODS

__all__ = ["minimize", "NewtonResult", "NewtonState", "METHODS", "GLOBALIZATIONS",
           "default_sketch_size", "stop_status", "stalled"]


METHODS = ("auto",) + tuple(STEP_MODELS)
GLOBALIZATIONS = ("armijo", "gradreg")
_EPS = np.finfo(np.float64).eps
_PHASES = ("gradient", "sketch", "assemble", "factor", "solve", "line_search")

# status codes (see fastnewton._convergence)
_MESSAGES = MESSAGES
#: Refresh z = A x exactly once the running bound on the drift of the incrementally
#: updated z exceeds this fraction of ‖z‖∞ (plain steps add 2 eps each: one matvec every
#: ~500 steps; subspace steps that cancel add more, see ``_subspace_step``).
_DRIFT_REFRESH = 1e3 * _EPS


class NewtonResult(OptimizeResult):
    """Result of :func:`minimize` (a scipy ``OptimizeResult``).

    Attributes
    ----------
    x : ndarray (d,)
        The solution.
    fun : float
        Objective at ``x``.
    jac : ndarray (d,)
        Gradient at ``x``.
    grad_norm : float
        ``‖jac‖₂``.
    nit : int
        Number of Newton steps taken.
    nfev : int
        Number of objective evaluations (line-search trials included).
    success : bool
        True only when ``‖∇L(x)‖ <= tol ‖∇L(x0)‖`` holds at the returned ``x``, with
        ``z = A x`` recomputed (never at the incrementally updated z of the loop).
    status : int
        0 gradient tolerance met, 1 maxiter reached, 2 Newton decrement below ``dtol``
        (only with ``dtol`` set; a success only if the gradient test holds too), 3 line
        search failed, 4 stopped by the callback, 5 non-finite gradient/Hessian, 6 stalled
        (no progress beyond rounding level over the last 5 steps: ``tol`` is likely below
        what float64 resolves for the problem). See ``fastnewton._convergence``.
    message : str
        Human-readable reason for stopping, with the achieved relative gradient.
    method : str
        The step model used (``"auto"`` resolved; for the matrix-valued families the
        family's own solver, e.g. ``"newton-cg"``).
    history : dict of ndarray
        Per iterate (entry 0 is the start, so each array has ``nit + 1`` entries):
        ``fun``, ``grad_norm``, ``step_size``, ``inner_iters``, ``sketch_size``,
        ``shift`` (diagonal shift added to factor the Hessian), ``decrement``
        (Newton decrement squared g^T H~^{-1} g of the step taken from the previous
        iterate), ``time`` (seconds since the start).
    timings : dict of float
        Seconds per phase: ``gradient``, ``sketch``, ``assemble``, ``factor``, ``solve``,
        ``line_search``, ``total``.
    """


def _resolve_method(method, problem, sketch_size):
    """The method to run (``auto`` resolved by ``_memory.choose_method``); raises
    ``MemoryBudgetError`` before any large allocation when a forced method cannot fit."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return _memory.choose_method(problem, sketch_size)
    _memory.check_fits(method, problem, sketch_size)
    return method


def _has_z_interface(problem):
    return all(hasattr(problem, name) for name in REQUIRED_METHODS)


def _check_problem(problem):
    missing = [name for name in REQUIRED_METHODS if not hasattr(problem, name)]
    if missing:
        raise TypeError(
            f"problem must be a fastnewton problem (e.g. fn.ExpRegression); "
            f"{type(problem).__name__} lacks {', '.join(missing)}")


def minimize(problem, x0=None, *, method="auto", sketch="countsketch", sketch_size=None,
             tol=1e-8, maxiter=100, seed=None, callback=None, verbose=False, dtol=None,
             armijo=1e-4, max_backtracks=60, resume=None, globalization="armijo",
             options=None):
    r"""Minimize a fastnewton problem by a globally convergent (approximate) Newton method.

    Each step solves :math:`\tilde H p = -\nabla L(x)` with :math:`\tilde H` the exact or
    sketched Hessian, then backtracks along p until the Armijo condition holds. A trial
    point where the objective overflows is rejected like any other failed trial.

    Every family of ``fastnewton.problems.PROBLEMS`` is accepted: the matrix-valued
    ones (``MultiSoftmaxRegression``, ``AttentionRegression``,
    ``AttentionKernelRegression``) go to their own ``solve()``, with ``x0``, ``tol``,
    ``maxiter``, ``callback``, ``verbose`` and ``options`` mapped onto it and any other
    option given with a non-default value refused by name; see
    :func:`fastnewton._family_solvers.minimize_family` for the methods they report and
    what their results hold.

    Parameters
    ----------
    problem : a fastnewton problem (``fn.ExpRegression`` ...)
    x0 : array_like (d,), optional
        Start. By default the problem's ``initial_point()`` where it has one
        (:meth:`GLMRegression.initial_point <fastnewton.GLMRegression.initial_point>`:
        coef 0, the intercept at the link of the mean of y), else zeros. ``tol`` is
        relative to the gradient there.
    method : {"auto", "exact", "sketch", "sample", "pcg", "wide"}
        ``exact``: assembled Hessian (quadratic convergence, ~sum of squared row
        nonzeros per step). ``sketch``: Hessian of a CountSketch of
        :math:`\mathrm{diag}(\sqrt{\beta_+}) A`, drawn once from ``seed`` and kept for all
        steps (linear convergence at a rate set by the sketch's distortion, about one
        pass over A per step). ``sample``: Hessian of leverage-score row samples of
        :math:`\mathrm{diag}(\sqrt{\beta_+}) A`, re-sampled every step (the papers'
        algorithm; see ``fastnewton._steps.SampleStep``). ``pcg``: Newton-CG with
        exact Hessian-vector products, preconditioned by the factor of the sketched
        Hessian (reused across steps while CG stays fast), forcing terms
        ``min(0.5, ‖g‖/‖g0‖)``: quadratic convergence at a few passes over A per step
        (see ``fastnewton._steps.PcgStep``). ``wide``: Newton-CG on the exact
        matrix-free Hessian with a Jacobi preconditioner (one pass over A), or a rank-k
        Nyström correction of it with ``sketch_size=k``; memory O(nnz + k d), nothing
        d x d (see ``fastnewton._wide.WideStep``). ``auto`` estimates the time and the
        memory of each method (``fastnewton._memory``): up to d = 2000 it picks ``exact``
        or ``sketch`` by an estimate of the time to converge (about 5 exact against 17
        sketched steps, each step's cost from A's row lengths, nnz(A) and the sketch's
        m d² Gram); beyond, the fastest estimate among the methods that fit in half the
        available memory. A forced method that does not fit raises
        :class:`~fastnewton.exceptions.MemoryBudgetError` before allocating.
    sketch : str or sketch object
        Sketch kind for ``method="sketch"``: "countsketch", "sparse-sign", "srht",
        "gaussian" (``fastnewton.sketch.SKETCHES``) or a sketch instance.
    sketch_size : int, optional
        Rows of the sketch; default :func:`default_sketch_size` = ``min(n, max(8 d, 64))``
        (``sample``: ``RowSampler.default_size`` = ``max(64, ceil(4 d ln(d + 1)))`` rows).
    tol : float
        Stop when ``‖∇L(x)‖ <= tol * ‖∇L(x0)‖``. The test that decides ``success`` is made
        at the returned x with z = A x recomputed (the loop updates z incrementally, z +
        t A p; where that has drifted the solve goes on from the exact point). A solve
        that stops making progress at rounding level (status 6) is not a success.
    maxiter : int
        Maximum number of Newton steps.
    seed : None, int, SeedSequence or Generator
        Randomness of the sketch. Same seed, same result, whatever the thread count.
    callback : callable, optional
        ``callback(intermediate_result)`` after each step, with an ``OptimizeResult``
        holding ``x``, ``fun``, ``grad_norm``, ``nit``; raise ``StopIteration`` (or return
        True) to stop.
    verbose : bool
        Print one line per step.
    dtol : float, optional
        Also stop when the Newton decrement ``λ²/2 = -g·p/2 <= dtol`` (Boyd &
        Vandenberghe's criterion; it estimates L(x) - L*): status 2, a success only when
        the gradient test holds at the returned x too (else ``success=False`` and a
        ``ConvergenceWarning``). By default the decrement stops nothing by itself; one
        below the objective's rounding level (``10 eps |L(x)|``) where the line search
        fails ends the solve as stalled (status 6) unless the gradient test holds.
    armijo : float
        Sufficient-decrease constant c1 of the line search.
    max_backtracks : int
        Trials per line search before giving up.
    resume : NewtonState, optional
        Continue a solve from a state saved by a callback (``intermediate.state``, see
        :class:`NewtonState`): with the same problem, method and integer ``seed`` the
        continued run takes bitwise the same steps as an uninterrupted one (on the same
        CPU model and library versions; "bitwise" always means that here).
    globalization : {"armijo", "gradreg"}
        ``armijo``: backtracking line search along the step. ``gradreg``: the
        gradient-regularized Newton method (arXiv 2506.13710):
        :math:`x^+ = x - (\tilde H + \mu I)^{-1} g` with :math:`\mu = \|g\|/\gamma`; the
        trial is accepted when :math:`f(x) - f(x^+) \ge \|\nabla f(x^+)\|^2 / (8\mu)`
        (then :math:`\gamma` doubles), otherwise :math:`\gamma` halves and the step is
        recomputed (at most ``max_backtracks`` trials). :math:`\gamma_0 = \|g_0\|^3 /
        g_0^T H g_0` (so that :math:`\mu_0` is the curvature along the gradient). As
        :math:`\mu \to 0` with :math:`\|g\|` the local rate of the step model is kept.
        ``history["shift"]`` holds :math:`\mu` (plus any factorization shift) and
        ``history["gamma"]`` the value of :math:`\gamma` after each step.

    options : dict, optional
        Options of a matrix-valued family's ``solve()`` that ``minimize`` has no name for:
        ``cg_rtol``, ``cg_maxiter``, ``preconditioner`` (``MultiSoftmaxRegression``),
        ``cg_maxiter`` (``AttentionRegression``), ``refine`` (``AttentionKernelRegression``,
        kind "gram"/"agram"), ``rank`` (kind "exp"). Unknown keys, and any options for
        the other families, raise a ValueError.

    Returns
    -------
    NewtonResult
        See :class:`NewtonResult`. ``success=False`` comes with a ``ConvergenceWarning``
        (except when the callback stopped the solve). Success always implies
        ``‖∇L(x)‖ <= tol ‖∇L(x0)‖`` for the x returned.

    Examples
    --------
    >>> import fastnewton as fn
    >>> data = fn.datasets.make_regression(2000, 20, seed=0)
    >>> prob = fn.ExpRegression(data.A, data.b, data.w)
    >>> res = fn.minimize(prob, method="exact")
    >>> bool(res.success), res.nit < 20
    (True, True)
    """
    t_start = time.perf_counter()
    if family_solver(problem) is not None and not _has_z_interface(problem):
        return minimize_family(problem, x0, tol=tol, maxiter=maxiter, callback=callback,
                               verbose=verbose, options=options, method=method,
                               sketch=sketch, sketch_size=sketch_size, seed=seed, dtol=dtol,
                               armijo=armijo, max_backtracks=max_backtracks, resume=resume,
                               globalization=globalization)
    _check_problem(problem)
    if options:
        raise ValueError(f"options applies to the matrix-valued families only; "
                         f"{type(problem).__name__} takes none, got {sorted(options)}")
    if sketch_size is not None:
        check_scalar(sketch_size, "sketch_size", low=1, integer=True)
    method = _resolve_method(method, problem, sketch_size)
    check_scalar(tol, "tol", low=0.0)
    check_scalar(maxiter, "maxiter", low=0, integer=True)
    check_scalar(armijo, "armijo", low=0.0, high=0.5, low_inclusive=False)
    check_scalar(max_backtracks, "max_backtracks", low=1, integer=True)
    if dtol is not None:
        check_scalar(dtol, "dtol", low=0.0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if globalization not in GLOBALIZATIONS:
        raise ValueError(f"globalization must be one of {GLOBALIZATIONS}, got {globalization!r}")
    gradreg = globalization == "gradreg"
    if gradreg and not getattr(STEP_MODELS[method], "accepts_shift", False):
        raise ValueError(f"globalization='gradreg' needs a step model that accepts a diagonal "
                         f"shift; method {method!r} does not")
    design = problem.design
    d = design.d
    if x0 is not None:
        x = check_x(x0, d, "x0").copy()
    elif hasattr(problem, "initial_point"):  # GLMRegression: the intercept at link(mean y)
        x = check_x(problem.initial_point(), d, "problem.initial_point()").copy()
    else:
        x = np.zeros(d)
    rng = check_rng(seed)
    stepper = STEP_MODELS[method](problem, rng, sketch, sketch_size)

    timings = dict.fromkeys(_PHASES, 0.0)
    t0 = time.perf_counter()
    if resume is None:
        z = design.matvec(x)
        if hasattr(problem, "check_point"):
            problem.check_point(z)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
            f, g, parts = _evaluate(problem, stepper, x, z, timings, t0)
        if not np.isfinite(f):
            raise ValidationError("the objective is not finite at x0 (f(A x0) overflows); "
                                  "choose a start with smaller |A x0|")
        gnorm = float(np.linalg.norm(g))
        state = NewtonState(x=x, z=z, f=f, g=g, g0norm=gnorm, nit=0, nfev=1, prev_s=None,
                            prev_As=None, method=method,
                            history={"fun": [f], "grad_norm": [gnorm], "step_size": [0.0],
                                     "inner_iters": [0], "sketch_size": [0], "shift": [0.0],
                                     "decrement": [np.nan], "time": [0.0]})
        if gradreg:
            t1 = time.perf_counter()
            state.history["gamma"] = [_initial_gamma(problem, z, g, gnorm)]
            timings["gradient"] += time.perf_counter() - t1
    else:
        state = check_resume(resume, method, design)
        x, z, f, g = state.x, state.z, state.f, state.g
        parts = None
        gnorm = float(np.linalg.norm(g))
        if gradreg and not state.history.get("gamma"):
            state.history["gamma"] = [_initial_gamma(problem, z, g, gnorm)]
        timings["gradient"] += time.perf_counter() - t0
    nfev, g0norm, nit, hist = state.nfev, state.g0norm, state.nit, state.history
    t_offset = hist["time"][-1]
    prev_step = None if state.prev_s is None else (state.prev_s, state.prev_As)
    if verbose:
        print(f"fastnewton: method={method}  n={design.n}  d={d}  nnz={design.nnz}")
        print(f"{'iter':>4} {'objective':>22} {'grad_norm':>10} {'step':>8} {'time_s':>8}")
        print(f"{nit:4d} {f:22.15e} {gnorm:10.3e} {'':>8} {hist['time'][-1]:8.3f}")

    drift, drift_step = state.drift, state.drift_step
    verified = False  # (f, g) are _objective_and_gradient at z = A x recomputed
    status, flat_step = None, False
    while True:
        status = stop_status(gnorm, g0norm, tol, nit, maxiter)
        if status is None and (flat_step or stalled(hist)):
            status = STALLED
        if status in (CONVERGED_GRADIENT, STALLED) and not verified:
            # decide at the point that is returned: z = A x recomputed (one matvec), f and
            # g there; where the incremental z had drifted, go on from the exact point
            t0 = time.perf_counter()
            z = design.matvec(x)
            f, g = _objective_and_gradient(problem, x, z)
            timings["gradient"] += time.perf_counter() - t0
            gnorm = float(np.linalg.norm(g))
            nfev += 1
            hist["fun"][-1], hist["grad_norm"][-1] = f, gnorm
            parts, drift, verified, flat_step = None, 0.0, True, False
            continue
        if status is not None:
            break
        # -- model, direction and globalization -------------------------------------------
        if parts is None:
            parts = problem.parts_z(z)
        try:
            if gradreg:
                out = _gradreg_step(problem, stepper, parts, x, z, f, g, gnorm,
                                    hist["gamma"][-1], dtol, max_backtracks, timings)
            else:
                out = _armijo_step(problem, stepper, parts, x, z, f, g, gnorm, prev_step,
                                   dtol, armijo, max_backtracks, timings, drift_step)
        except (FloatingPointError, np.linalg.LinAlgError):
            status = NON_FINITE
            break
        step, f_new, z_new, x_new, g_new, trials, direc, decrement, gamma, pre, image_err = out
        nfev += trials
        if step is None:  # the Newton decrement fell below dtol: no step taken
            status = CONVERGED_DECREMENT
            break
        if step == 0.0:
            if 0.5 * decrement <= rounding_level(f):
                flat_step = True  # nothing left to resolve in f: stalled (or drifted)
                continue
            status = LINE_SEARCH_FAILED
            break
        if gradreg:
            hist["gamma"].append(gamma)
        # running bound (relative to ‖z‖∞) on ‖z - A x‖∞ of the incremental update
        drift_step = 2.0 * _EPS + step * image_err
        if drift + drift_step > _DRIFT_REFRESH:
            t0 = time.perf_counter()
            z_new = design.matvec(x_new)
            timings["gradient"] += time.perf_counter() - t0
            drift_step, drift = drift + 2.0 * _EPS, 0.0  # A s = z_new - z carries z's drift
            g_new = pre = None  # evaluate at the exact z_new below
            nfev += 1
        else:
            drift += drift_step
        prev_step = (x_new - x, axpby(1.0, z_new, -1.0, z))
        x, z = x_new, z_new
        if g_new is None:
            f, g, parts = _evaluate(problem, None if gradreg else stepper, x, z, timings, pre=pre)
        else:
            f, g, parts = f_new, g_new, None
        gnorm = float(np.linalg.norm(g))
        nit += 1
        verified = False
        elapsed = t_offset + time.perf_counter() - t_start
        state = NewtonState(x=x, z=z, f=f, g=g, g0norm=g0norm, nit=nit, nfev=nfev,
                            prev_s=prev_step[0], prev_As=prev_step[1], method=method,
                            history=hist, drift=drift, drift_step=drift_step)
        for key, val in (("fun", f), ("grad_norm", gnorm), ("step_size", step),
                         ("inner_iters", direc.inner_iters),
                         ("sketch_size", direc.sketch_size), ("shift", direc.shift),
                         ("decrement", decrement), ("time", elapsed)):
            hist[key].append(val)
        if verbose:
            print(f"{nit:4d} {f:22.15e} {gnorm:10.3e} {step:8.2e} {elapsed:8.3f}")
        if callback is not None:
            inter = OptimizeResult(x=x.copy(), fun=f, grad_norm=gnorm, nit=nit, state=state)
            try:
                stop = callback(inter)
            except StopIteration:
                stop = True
            if stop:
                status = STOPPED_BY_CALLBACK
                break

    # -- finalize: success is decided at x with z = A x recomputed ------------------------
    if not verified:  # one evaluation more (counted in nfev below)
        t0 = time.perf_counter()
        z = design.matvec(x)
        f, g = _objective_and_gradient(problem, x, z)
        timings["gradient"] += time.perf_counter() - t0
        gnorm = float(np.linalg.norm(g))
    timings["total"] = time.perf_counter() - t_start
    met = bool(gnorm <= tol * g0norm)
    if met and status in (MAXITER, LINE_SEARCH_FAILED, STALLED):
        status = CONVERGED_GRADIENT  # the exact gradient meets tol where the loop's did not
    elif not met and status == CONVERGED_GRADIENT:  # pragma: no cover - tested at exact z
        status = STALLED
    success = met and status in (CONVERGED_GRADIENT, CONVERGED_DECREMENT)
    message = _MESSAGES[status]
    if status not in (STOPPED_BY_CALLBACK, NON_FINITE):
        message += f" (relative gradient {gnorm / g0norm if g0norm else 0.0:.2e})"
    if not success and status != STOPPED_BY_CALLBACK:
        warnings.warn(f"fastnewton.minimize did not converge after {nit} steps: {message}; "
                      f"gradient norm {gnorm:.3e} vs target {tol * g0norm:.3e}. "
                      f"Remedy: {REMEDIES[status]}.", ConvergenceWarning, stacklevel=2)
    if verbose:
        print(f"fastnewton: {message}; fun={f:.15e} grad_norm={gnorm:.3e} nit={nit} "
              f"time={timings['total']:.3f}s")
    history = {k: np.asarray(v, dtype=np.int64 if k in ("inner_iters", "sketch_size") else float)
               for k, v in hist.items()}
    return NewtonResult(x=x, fun=f, jac=g, grad_norm=gnorm, nit=nit,
                        nfev=nfev + (0 if verified else 1), success=success, status=status,
                        message=message, method=method, history=history, timings=timings)


def _evaluate(problem, stepper, x, z, timings, t0=None, pre=None):
    """``(f, g, parts or None)`` at (x, z): through the step model's
    ``objective_gradient`` where it has one (it may sketch the Hessian in the gradient's
    pass over A; that time goes to its phase), else f and g alone. ``pre`` is
    ``problem.loss_grad_parts_z(z)`` when the line search already computed it. Adds the
    rest of the time since ``t0`` (default: now) to the gradient phase."""
    t0 = time.perf_counter() if t0 is None else t0
    other = sum(timings.values())
    out = None
    fused = getattr(stepper, "objective_gradient", None)
    if fused is not None:
        out = fused(x, z, timings, pre=pre)
    if out is None and pre is not None:
        loss, gz, parts = pre
        out = (loss + ridge_value(problem.lam, x),
               problem.design.rmatvec(gz) + problem.lam * x, parts)
    if out is None:
        out = _objective_and_gradient(problem, x, z) + (None,)
    timings["gradient"] += time.perf_counter() - t0 - (sum(timings.values()) - other)
    return out


def _objective_and_gradient(problem, x, z):
    f, gz = problem.loss_grad_z(z)
    g = problem.design.rmatvec(gz) + problem.lam * x
    return f + ridge_value(problem.lam, x), g


def _direction(stepper, parts, g, gnorm, timings, shift=None):
    """The step model's direction (forced to be a descent direction) and g.p."""
    direc = (stepper.direction(parts, g, timings) if shift is None
             else stepper.direction(parts, g, timings, shift=shift))
    p = direc.p
    gp = float(g @ p)
    if not (np.isfinite(gp) and gp < 0):
        p, gp = -g, -gnorm * gnorm  # cannot happen with a PD model; be safe anyway
    return direc, p, gp


def _armijo_step(problem, stepper, parts, x, z, f, g, gnorm, prev_step, dtol, c1,
                 max_backtracks, timings, drift_step=0.0):
    """One step with Armijo backtracking along the step model's direction.

    Returns ``(step, f, z, x, g or None, trials, direction, decrement, None, pre,
    image_err)``; step is None when the Newton decrement is below ``dtol`` (no step
    taken), 0.0 on failure; ``pre`` is ``loss_grad_parts_z`` at the new z when the line
    search computed it (its first trial, accepted), else None; ``image_err`` bounds, per
    unit step and relative to ‖z‖∞, the rounding error of the direction's image under A
    (0 for a fresh matvec; see :func:`_subspace_step`, ``drift_step`` is the drift bound
    of the previous step's image).
    """
    direc, p, gp = _direction(stepper, parts, g, gnorm, timings)
    decrement = -gp
    if dtol is not None and 0.5 * decrement <= dtol:
        return None, f, z, x, None, 0, direc, decrement, None, None, 0.0
    t0 = time.perf_counter()
    Ap = problem.design.matvec(p)
    t_init, image_err = 1.0, 0.0
    if direc.subspace:
        p, Ap, gp, t_init, image_err = _subspace_step(parts, problem.lam, g, p, Ap, gp,
                                                      prev_step, z, drift_step)
    step, f_new, z_new, x_new, g_new, trials, pre = _armijo(
        problem, x, z, f, g, gnorm, p, Ap, gp, c1, max_backtracks, t_init,
        first_full=getattr(problem, "fused_z", False))
    timings["line_search"] += time.perf_counter() - t0
    return step, f_new, z_new, x_new, g_new, trials, direc, decrement, None, pre, image_err


def _initial_gamma(problem, z, g, gnorm):
    """gamma_0 = ‖g‖³ / gᵀHg, so that mu_0 = ‖g‖/gamma_0 is the curvature along g."""
    if gnorm == 0.0:
        return 1.0
    Ag = problem.design.matvec(g)
    curv = _curvatures(problem.parts_z(z), problem.lam, g, Ag, g, Ag)[0] / (gnorm * gnorm)
    return gnorm / curv if np.isfinite(curv) and curv > 0 else 1.0


def _gradreg_step(problem, stepper, parts, x, z, f, g, gnorm, gamma, dtol, max_trials,
                  timings):
    """One gradient-regularized Newton step (arXiv 2506.13710, see ``minimize``).

    Trial: ``p = -(H~ + mu I)^{-1} g`` with ``mu = ‖g‖/gamma``; accepted when
    ``f - f(x + p) >= ‖g(x + p)‖² / (8 mu)`` (gamma doubles), else gamma halves. Near the
    solution, where the decrease is below the objective's rounding error, a trial that
    decreases the gradient norm is accepted too. Returns the tuple of
    :func:`_armijo_step` with the new gamma in place of its None.
    """
    fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
    first_decrement = None
    for trial in range(1, max_trials + 1):
        mu = gnorm / gamma
        direc, p, gp = _direction(stepper, parts, g, gnorm, timings, shift=mu)
        if first_decrement is None:
            first_decrement = -gp
            if dtol is not None and 0.5 * first_decrement <= dtol:
                return None, f, z, x, None, 0, direc, first_decrement, gamma, None, 0.0
        t0 = time.perf_counter()
        z_t = z + problem.design.matvec(p)
        x_t = x + p
        f_t = problem.loss_z(z_t) + ridge_value(problem.lam, x_t)
        ok = False
        if np.isfinite(f_t):
            f_t, g_t = _objective_and_gradient(problem, x_t, z_t)
            gt_norm = float(np.linalg.norm(g_t))
            ok = (f - f_t >= gt_norm * gt_norm / (8.0 * mu)
                  or abs(f_t - f) <= fscale and gt_norm < gnorm)
        timings["line_search"] += time.perf_counter() - t0
        if ok:
            return 1.0, f_t, z_t, x_t, g_t, trial, direc, -gp, 2.0 * gamma, None, 0.0
        gamma *= 0.5
    return 0.0, f, z, x, None, max_trials, direc, first_decrement, gamma, None, 0.0


def _curvatures(parts, lam, u, Au, v, Av):
    """``(u^T H u, u^T H v, v^T H v)`` for the exact Hessian H = A^T B A + lam I, given
    A u and A v: one O(n) pass (:func:`~fastnewton.linalg._design.curvature_sums`)."""
    suu, suv, svv, Uu, Uv = curvature_sums(parts.beta, Au, Av, parts.U)
    cuu, cuv, cvv = (suu + ridge_dot(lam, u, u), suv + ridge_dot(lam, u, v),
                     svv + ridge_dot(lam, v, v))
    if parts.U is not None:
        CUv = parts.C @ Uv
        cuu += float(Uu @ (parts.C @ Uu))
        cuv += float(Uu @ CUv)
        cvv += float(Uv @ CUv)
    return cuu, cuv, cvv


def subspace_coefficients(cpp, cps, css, gp, gs):
    """Minimize the quadratic model over span{p, s}: returns (a, b, first trial step).

    With curvatures ``cpp = p^T H p``, ``cps = p^T H s``, ``css = s^T H s`` and slopes
    ``gp = g.p``, ``gs = g.s``, the minimizer is ``a p + b s``. Falls back to
    ``(1, 0, t)`` with t the model's step along p (clipped to [0.1, 4]) when there is no
    previous step (``cps is None``) or the 2 x 2 model is not positive definite, and
    to ``(1, 0, 1)`` when p itself has no positive curvature.
    """
    if not (np.isfinite(cpp) and cpp > 0):
        return 1.0, 0.0, 1.0
    if cps is not None:
        det = cpp * css - cps * cps
        if np.isfinite(det) and det > 1e-12 * cpp * css:
            a = (-gp * css + gs * cps) / det
            b = (-gs * cpp + gp * cps) / det
            if a * gp + b * gs < 0:
                return a, b, 1.0
    return 1.0, 0.0, float(min(max(-gp / cpp, 0.1), 4.0))


def _subspace_step(parts, lam, g, p, Ap, gp, prev_step, z=None, drift_step=0.0):
    """Minimize the exact local quadratic model over span{p, previous step}.

    p is the sketched-Newton direction. Its error is systematic (the sketch is fixed),
    so plain steps along p converge at the sketch's distortion rate; minimizing the
    exact quadratic model (curvatures from A p, A s and B, O(n), no extra pass over A)
    over p and the previous step s makes the iteration the nonlinear analogue of
    preconditioned CG, with the sketched Hessian as preconditioner.

    Returns (direction, A direction, g.direction, initial step, image error). The image
    ``a A p + b A s`` is formed without a pass over A; where p and s nearly cancel,
    its rounding error ``eps (|a| ‖A p‖∞ + |b| ‖A s‖∞) + |b| ‖A s - A(s)‖∞`` (the last
    term: ``drift_step``, the drift bound of the stored ``A s``) can be far above that
    of a fresh matvec: it is returned relative to ‖z‖∞ (0 when b = 0), and the driver
    adds it to its drift bound, which makes it recompute z = A x when it grows.
    """
    cps = css = gs = None
    if prev_step is None:
        cpp = _curvatures(parts, lam, p, Ap, p, Ap)[0]
    else:
        s, As = prev_step
        cpp, cps, css = _curvatures(parts, lam, p, Ap, s, As)
        gs = float(g @ s)
    a, b, t_init = subspace_coefficients(cpp, cps, css, gp, gs)
    if b == 0.0:
        return p, Ap, gp, t_init, 0.0
    image = axpby(a, Ap, b, As)
    image_err = 0.0
    if z is not None:
        scale = max(_max_abs(z), _max_abs(image), np.finfo(float).tiny)
        image_err = (_EPS * (abs(a) * _max_abs(Ap) + abs(b) * _max_abs(As)) / scale
                     + abs(b) * drift_step)
    return a * p + b * s, image, a * gp + b * gs, t_init, image_err


def _max_abs(v):
    return float(max(v.max(), -v.min())) if v.size else 0.0


def _armijo(problem, x, z, f, g, gnorm, p, Ap, gp, c1, max_backtracks, t_init=1.0,
            first_full=False):
    """Backtracking along p from step ``t_init``: returns
    ``(step, f, z, x, g or None, trials, pre)``.

    A trial is accepted when ``f(x + t p) <= f + c1 t g.p``. Near the solution, where
    the decrease is below the objective's rounding error, a trial is also accepted
    when it decreases the gradient norm (its gradient is then returned): a trial within
    ``10 eps |f|`` of f, or the first trial when the model's decrease ``-t g.p`` itself
    is below ``10 eps |f|`` and f rose by at most ``1000 eps |f|`` (the rounding error of
    a loss summed over many rows can exceed ``10 eps |f|``; the Armijo test then
    rejects the full step on noise alone and backtracking stalls). A step of 0
    means failure. With ``first_full`` the first trial (a Newton step, usually
    accepted) evaluates ``loss_grad_parts_z`` instead of ``loss_z`` (the same loss bits,
    in a fused pass); ``pre`` returns it when that trial is accepted.
    """
    lam = problem.lam
    t = t_init
    fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
    for trial in range(1, max_backtracks + 1):
        z_t = axpby(1.0, z, t, Ap)
        x_t = x + t * p
        pre = problem.loss_grad_parts_z(z_t) if first_full and trial == 1 else None
        loss_t = problem.loss_z(z_t) if pre is None else pre[0]
        f_t = loss_t + ridge_value(lam, x_t)
        if np.isfinite(f_t):
            if f_t <= f + c1 * t * gp:
                return t, f_t, z_t, x_t, None, trial, pre
            if abs(f_t - f) <= fscale or (trial == 1 and -gp * t <= fscale
                                           and f_t - f <= 100.0 * fscale):
                f2, g_t = _objective_and_gradient(problem, x_t, z_t)
                if np.linalg.norm(g_t) < gnorm:
                    return t, f2, z_t, x_t, g_t, trial, None
            # quadratic interpolation of f along p, kept within [0.1 t, 0.5 t]
            denom = 2.0 * (f_t - f - gp * t)
            t_new = -gp * t * t / denom if denom > 0 else 0.5 * t
            t = min(max(t_new, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1  # overflow: shrink hard
    return 0.0, f, z, x, None, max_backtracks, None
