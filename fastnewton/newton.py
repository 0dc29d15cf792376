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
from ._steps import STEP_MODELS, default_sketch_size
from .problems import REQUIRED_METHODS

__all__ = ["minimize", "NewtonResult", "NewtonState", "METHODS", "GLOBALIZATIONS",
           "default_sketch_size"]


METHODS = ("auto",) + tuple(STEP_MODELS)
GLOBALIZATIONS = ("armijo", "gradreg")
_EPS = np.finfo(np.float64).eps
_PHASES = ("gradient", "sketch", "assemble", "factor", "solve", "line_search")

# status codes
CONVERGED_GRADIENT = 0
MAXITER = 1
CONVERGED_DECREMENT = 2
LINE_SEARCH_FAILED = 3
STOPPED_BY_CALLBACK = 4
NON_FINITE = 5
_MESSAGES = {
    CONVERGED_GRADIENT: "gradient norm below tol * initial gradient norm",
    MAXITER: "maximum number of iterations reached",
    CONVERGED_DECREMENT: "Newton decrement below dtol",
    LINE_SEARCH_FAILED: "line search could not decrease the objective",
    STOPPED_BY_CALLBACK: "stopped by the callback",
    NON_FINITE: "the gradient or Hessian became non-finite",
}


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
        Whether a convergence criterion was met.
    status : int
        0 gradient tolerance met, 1 maxiter reached, 2 Newton decrement below ``dtol``,
        3 line search failed, 4 stopped by the callback, 5 non-finite gradient/Hessian.
    message : str
        Human-readable reason for stopping.
    method : str
        The step model used (``"auto"`` resolved).
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
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    design = problem.design
    n, d = design.n, design.d
    m = default_sketch_size(n, d) if sketch_size is None else sketch_size
    if m >= n:
        return "exact"
    # Step costs in multiply-adds of a sparse pass over A (one BLAS flop of a syrk costs
    # about 0.037 of one; calibrated on 2 cores, see docs/performance.md): an exact step
    # scatters sum_i nnz_i^2 / 2 products into the Gram (dense A: a syrk) plus about 4
    # passes over A; a sketched step about 6 passes (the fused gradient + sketch pass,
    # A p and the O(n) work) plus the m d^2 Gram of the sketch. Exact steps converge
    # quadratically (about 5 to tol 1e-8), sketched ones linearly (about 17 at m = 8d).
    nnz = float(design.nnz)
    if design.sparse:  # an intercept column adds one entry to every row
        row_nnz = np.diff(design.base.A.indptr).astype(np.float64) + design.intercept
        gram_exact = 0.5 * float(row_nnz @ row_nnz)
    else:
        gram_exact = 0.037 * n * d * d
    cost_exact = gram_exact + 4.0 * nnz
    cost_sketch = 6.0 * nnz + 0.037 * m * d * d
    if not _is_linear_model(problem):
        return "exact" if 5.0 * cost_exact <= 17.0 * cost_sketch else "sketch"
    # GLMs and user separable losses also weigh pcg: one sketched preconditioner, kept
    # across steps, plus about 5 steps of 20 passes (sparse; 8 dense A passes, BLAS);
    # and the exact Gram's scattered products cost more once the d x d accumulator
    # leaves the cache ((d / 512)^2.2; calibrated on the method-choice table of
    # docs/performance.md: pcg fastest at d = 1000 and on dense 2e5 x 500).
    if design.sparse:
        cost_exact += gram_exact * (max(1.0, d / 512.0) ** 2.2 - 1.0)
    costs = {"exact": 5.0 * cost_exact, "sketch": 17.0 * cost_sketch,
             "pcg": cost_sketch + 5.0 * (20.0 if design.sparse else 8.0) * nnz}
    return min(costs, key=costs.get)


def _is_linear_model(problem):
    from .problems._linear_model import LinearModelProblem

    return isinstance(problem, LinearModelProblem)


def _check_problem(problem):
    missing = [name for name in REQUIRED_METHODS if not hasattr(problem, name)]
    if missing:
        raise TypeError(
            f"problem must be a fastnewton problem (e.g. fn.ExpRegression); "
            f"{type(problem).__name__} lacks {', '.join(missing)}")


def minimize(problem, x0=None, *, method="auto", sketch="countsketch", sketch_size=None,
             tol=1e-8, maxiter=100, seed=None, callback=None, verbose=False, dtol=None,
             armijo=1e-4, max_backtracks=60, resume=None, globalization="armijo"):
    r"""Minimize a fastnewton problem by a globally convergent (approximate) Newton method.

    Each step solves :math:`\tilde H p = -\nabla L(x)` with :math:`\tilde H` the exact or
    sketched Hessian, then backtracks along p until the Armijo condition holds. A trial
    point where the objective overflows is rejected like any other failed trial.

    Parameters
    ----------
    problem : a fastnewton problem (``fn.ExpRegression`` ...)
    x0 : array_like (d,), optional
        Start; zeros by default.
    method : {"auto", "exact", "sketch", "sample", "pcg"}
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
        (see ``fastnewton._steps.PcgStep``). ``auto`` picks ``exact`` or ``sketch`` by
        an estimate of the time to converge (about 5 exact against 17 sketched steps,
        each step's cost from A's row lengths, nnz(A) and the sketch's m d² Gram).
    sketch : str or sketch object
        Sketch kind for ``method="sketch"``: "countsketch", "sparse-sign", "srht",
        "gaussian" (``fastnewton.sketch.SKETCHES``) or a sketch instance.
    sketch_size : int, optional
        Rows of the sketch; default :func:`default_sketch_size` = ``min(n, max(8 d, 64))``
        (``sample``: ``RowSampler.default_size`` = ``max(64, ceil(4 d ln(d + 1)))`` rows).
    tol : float
        Stop when ``‖∇L(x)‖ <= tol * ‖∇L(x0)‖``.
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
        Vandenberghe's criterion; it estimates L(x) - L*). By default only a decrement
        below the objective's rounding level (``10 eps |L(x)|``) stops.
    armijo : float
        Sufficient-decrease constant c1 of the line search.
    max_backtracks : int
        Trials per line search before giving up.
    resume : NewtonState, optional
        Continue a solve from a state saved by a callback (``intermediate.state``, see
        :class:`NewtonState`): with the same problem, method and integer ``seed`` the
        continued run takes bitwise the same steps as an uninterrupted one.
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

    Returns
    -------
    NewtonResult
        See :class:`NewtonResult`. ``success=False`` comes with a ``ConvergenceWarning``.

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
    _check_problem(problem)
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
    x = np.zeros(d) if x0 is None else check_x(x0, d, "x0").copy()
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

    status = None
    while True:
        status = stop_status(gnorm, g0norm, tol, nit, maxiter)
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
                                   dtol, armijo, max_backtracks, timings)
        except (FloatingPointError, np.linalg.LinAlgError):
            status = NON_FINITE
            break
        step, f_new, z_new, x_new, g_new, trials, direc, decrement, gamma, pre = out
        nfev += trials
        if step is None:  # the Newton decrement fell below dtol: no step taken
            status = CONVERGED_DECREMENT
            break
        if step == 0.0:
            if 0.5 * decrement <= 10 * _EPS * max(abs(f), np.finfo(float).tiny):
                status = CONVERGED_DECREMENT
            else:
                status = LINE_SEARCH_FAILED
            break
        if gradreg:
            hist["gamma"].append(gamma)
        prev_step = (x_new - x, axpby(1.0, z_new, -1.0, z))
        x, z = x_new, z_new
        if g_new is None:
            f, g, parts = _evaluate(problem, None if gradreg else stepper, x, z, timings, pre=pre)
        else:
            f, g, parts = f_new, g_new, None
        gnorm = float(np.linalg.norm(g))
        nit += 1
        elapsed = t_offset + time.perf_counter() - t_start
        state = NewtonState(x=x, z=z, f=f, g=g, g0norm=g0norm, nit=nit, nfev=nfev,
                            prev_s=prev_step[0], prev_As=prev_step[1], method=method,
                            history=hist)
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

    # -- finalize: recompute at x exactly (z was updated incrementally) --------------------
    t0 = time.perf_counter()
    z = design.matvec(x)
    f, g = _objective_and_gradient(problem, x, z)
    timings["gradient"] += time.perf_counter() - t0
    gnorm = float(np.linalg.norm(g))
    timings["total"] = time.perf_counter() - t_start
    success = status in (CONVERGED_GRADIENT, CONVERGED_DECREMENT)
    message = _MESSAGES[status]
    if status in (CONVERGED_GRADIENT, CONVERGED_DECREMENT, MAXITER, LINE_SEARCH_FAILED):
        message += f" (relative gradient {gnorm / g0norm if g0norm else 0.0:.2e})"
    if not success and status != STOPPED_BY_CALLBACK:
        remedy = {
            MAXITER: "raise maxiter, or use method='exact' for quadratic convergence",
            LINE_SEARCH_FAILED: "the requested tol may be below what float64 resolves here; "
                                "loosen tol, or add a ridge (lam > 0) if A is rank-deficient",
            NON_FINITE: "check the data scale (f(A x) may overflow) or add a ridge (lam > 0)",
        }[status]
        warnings.warn(f"fastnewton.minimize did not converge after {nit} steps: {message}; "
                      f"gradient norm {gnorm:.3e} vs target {tol * g0norm:.3e}. Remedy: {remedy}.",
                      ConvergenceWarning, stacklevel=2)
    if verbose:
        print(f"fastnewton: {message}; fun={f:.15e} grad_norm={gnorm:.3e} nit={nit} "
              f"time={timings['total']:.3f}s")
    history = {k: np.asarray(v, dtype=np.int64 if k in ("inner_iters", "sketch_size") else float)
               for k, v in hist.items()}
    return NewtonResult(x=x, fun=f, jac=g, grad_norm=gnorm, nit=nit, nfev=nfev + 1,
                        success=success, status=status, message=message, method=method,
                        history=history, timings=timings)


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
                 max_backtracks, timings):
    """One step with Armijo backtracking along the step model's direction.

    Returns ``(step, f, z, x, g or None, trials, direction, decrement, None, pre)``;
    step is None when the Newton decrement is below ``dtol`` (no step taken), 0.0 on
    failure; ``pre`` is ``loss_grad_parts_z`` at the new z when the line search computed
    it (its first trial, accepted), else None.
    """
    direc, p, gp = _direction(stepper, parts, g, gnorm, timings)
    decrement = -gp
    if dtol is not None and 0.5 * decrement <= dtol:
        return None, f, z, x, None, 0, direc, decrement, None, None
    t0 = time.perf_counter()
    Ap = problem.design.matvec(p)
    t_init = 1.0
    if direc.subspace:
        p, Ap, gp, t_init = _subspace_step(parts, problem.lam, g, p, Ap, gp, prev_step)
    step, f_new, z_new, x_new, g_new, trials, pre = _armijo(
        problem, x, z, f, g, gnorm, p, Ap, gp, c1, max_backtracks, t_init,
        first_full=getattr(problem, "fused_z", False))
    timings["line_search"] += time.perf_counter() - t0
    return step, f_new, z_new, x_new, g_new, trials, direc, decrement, None, pre


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
    :func:`_armijo_step` with the new gamma last.
    """
    fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
    first_decrement = None
    for trial in range(1, max_trials + 1):
        mu = gnorm / gamma
        direc, p, gp = _direction(stepper, parts, g, gnorm, timings, shift=mu)
        if first_decrement is None:
            first_decrement = -gp
            if dtol is not None and 0.5 * first_decrement <= dtol:
                return None, f, z, x, None, 0, direc, first_decrement, gamma, None
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
            return 1.0, f_t, z_t, x_t, g_t, trial, direc, -gp, 2.0 * gamma, None
        gamma *= 0.5
    return 0.0, f, z, x, None, max_trials, direc, first_decrement, gamma, None


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


def stop_status(gnorm, g0norm, tol, nit, maxiter):
    """The stopping test at the top of a Newton step: a status code, or None to go on."""
    if not np.isfinite(gnorm):
        return NON_FINITE
    if gnorm <= tol * g0norm:
        return CONVERGED_GRADIENT
    if nit >= maxiter:
        return MAXITER
    return None


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


def _subspace_step(parts, lam, g, p, Ap, gp, prev_step):
    """Minimize the exact local quadratic model over span{p, previous step}.

    p is the sketched-Newton direction. Its error is systematic (the sketch is fixed),
    so plain steps along p converge at the sketch's distortion rate; minimizing the
    exact quadratic model (curvatures from A p, A s and B, O(n), no extra pass over A)
    over p and the previous step s makes the iteration the nonlinear analogue of
    preconditioned CG, with the sketched Hessian as preconditioner.

    Returns (direction, A direction, g.direction, initial step).
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
        return p, Ap, gp, t_init
    return a * p + b * s, axpby(a, Ap, b, As), a * gp + b * gs, t_init


def _armijo(problem, x, z, f, g, gnorm, p, Ap, gp, c1, max_backtracks, t_init=1.0,
            first_full=False):
    """Backtracking along p from step ``t_init``: returns
    ``(step, f, z, x, g or None, trials, pre)``.

    A trial is accepted when ``f(x + t p) <= f + c1 t g.p``. Near the solution, where
    the decrease is below the objective's rounding error, a trial is also accepted
    when it decreases the gradient norm (its gradient is then returned). A step of 0
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
            if abs(f_t - f) <= fscale:
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
