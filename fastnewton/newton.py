"""The globally convergent Newton driver: ``fastnewton.minimize``.

Template (after scikit-learn's Newton solver): setup (``_Solve.__init__``), then per
step ``check_convergence`` -> ``step`` (Hessian parts -> inner solve by the step model ->
globalization -> update) -> ``report`` (history, callback), then ``finalize``. The step models differ only in
how they approximate the Hessian A^T B A + lam I:

``exact``   the assembled Hessian, Cholesky-factored (trust-region step if indefinite).
``sketch``  the Hessian of a fixed sketch S of diag(sqrt(beta_+)) A, plus the exact
            low-rank part and ridge, Cholesky-factored (approximate Newton).
``pcg``     the exact Hessian applied matrix-free, CG preconditioned by the factor of
            the sketched Hessian, inexact-Newton forcing terms (Newton-CG).

Where the model Hessian is indefinite (non-convex losses) the d x d models take the
exact trust-region step of their Jacobi-scaled form (a shift sized by the most negative
curvature, see ``fastnewton.linalg._trsub``), the sketched ones represent beta_- too,
``pcg`` runs Steihaug CG. Globalizations are objects with one interface
(``fastnewton._globalization``): ``auto`` (default: Armijo on positive definite models,
trust region otherwise), ``armijo``, ``trust-region``, ``gradreg`` (arXiv 2506.13710).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import OptimizeResult

from ._threads import solver_blas
from ._validation import check_rng, check_scalar, check_x
from ._state import NewtonState, check_resume
from .exceptions import ConvergenceWarning, NonFiniteError, ValidationError
from .linalg._design import axpby, ridge_value
from ._convergence import (CONVERGED_DECREMENT, CONVERGED_GRADIENT, LINE_SEARCH_FAILED,
                           MAXITER, MESSAGES, NON_FINITE, REMEDIES, STALLED,
                           STOPPED_BY_CALLBACK, rounding_level, stalled, stop_status)
from . import _memory
from ._steps import STEP_MODELS, default_sketch_size
from ._globalization import (GLOBALIZATIONS, _curvatures, _objective_and_gradient,  # noqa: F401
                             subspace_coefficients)
from ._family_solvers import family_solver, minimize_family
from .problems import REQUIRED_METHODS

__all__ = ["minimize", "NewtonResult", "NewtonState", "METHODS", "GLOBALIZATIONS",
           "default_sketch_size", "stop_status", "stalled"]


METHODS = ("auto",) + tuple(STEP_MODELS)
_EPS = np.finfo(np.float64).eps
_PHASES = ("gradient", "sketch", "assemble", "factor", "solve", "line_search")

# status codes (see fastnewton._convergence)
_MESSAGES = MESSAGES
#: Refresh z = A x exactly once the running bound on the drift of the incrementally
#: updated z exceeds this fraction of ‖z‖∞ (plain steps add 2 eps each: one matvec every
#: ~500 steps; subspace steps that cancel add more, see ``_subspace_step``).
_DRIFT_REFRESH = 1e3 * _EPS
#: Added to the remedy where the step models met indefinite Hessians.
_INDEFINITE_REMEDY = ("; where the model Hessian is indefinite or badly scaled, method='exact' "
                      "or 'pcg' (exact curvature) with globalization='trust-region', or a "
                      "start closer to the data (smaller |A x0|)")


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


def _resolve_nonconvex(method, problem, sketch_size):
    """``_resolve_method``, then the non-convexity rule of ``auto``: a problem known to
    be non-convex (``problem.convex`` False) gets ``pcg`` where ``auto`` picked
    ``sketch``: its exact Hessian-vector products see the negative curvature a fixed
    sketch only estimates (Steihaug CG in the trust region), at a few passes over A."""
    resolved = _resolve_method(method, problem, sketch_size)
    if method == "auto" and resolved == "sketch" and getattr(problem, "convex", True) is False:
        return "pcg"
    return resolved


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
             armijo=1e-4, max_backtracks=60, resume=None, globalization="auto",
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
        CPU model and library versions; "bitwise" always means that here) for ``exact``,
        ``sketch`` and ``wide``; ``pcg`` (its preconditioner is sketched afresh) and
        ``sample`` (its random stream is drawn afresh) continue to the same tolerance.
    globalization : {"auto", "armijo", "trust-region", "gradreg"}
        ``auto`` (default): ``armijo`` on steps whose model Hessian is positive definite
        (convex problems take exactly the ``armijo`` steps), ``trust-region`` on steps
        where it is not (negative or numerically zero curvature). ``armijo``:
        backtracking line search along the step (an indefinite d x d model's step is
        its trust-region step on the radius where its most negative curvature balances
        its slope). ``trust-region``: every step in a trust region, the exact subproblem
        of the d x d models (eigendecomposition of the Jacobi-scaled model) or Steihaug
        CG for ``pcg``, the radius from the ratio of actual to predicted decrease
        (``history["radius"]``; see ``fastnewton._globalization.TrustRegion``). ``gradreg``: the
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
    with solver_blas(getattr(getattr(problem, "design", None), "d", None)):
        # vector work on one BLAS thread, large dense calls on all (d >= 4096)
        solve = _Solve(problem, x0, method=method, sketch=sketch, sketch_size=sketch_size,
                       tol=tol, maxiter=maxiter, seed=seed, callback=callback,
                       verbose=verbose, dtol=dtol, armijo=armijo,
                       max_backtracks=max_backtracks, resume=resume,
                       globalization=globalization, options=options, t_start=t_start)
        while True:
            status = solve.check_convergence()  # stop tests; verified at z = A x recomputed
            if status is None:
                status = solve.step()  # Hessian parts -> step model -> globalization -> update
            if status is None:
                status = solve.report()  # history, verbose line, callback
            if status is not None:
                return solve.finalize(status)


def _check_options(problem, options, sketch_size, tol, maxiter, armijo, max_backtracks, dtol,
                   callback, globalization):
    _check_problem(problem)
    if options:
        raise ValueError(f"options applies to the matrix-valued families only; "
                         f"{type(problem).__name__} takes none, got {sorted(options)}")
    if sketch_size is not None:
        check_scalar(sketch_size, "sketch_size", low=1, integer=True)
    check_scalar(tol, "tol", low=0.0)
    check_scalar(maxiter, "maxiter", low=0, integer=True)
    check_scalar(armijo, "armijo", low=0.0, high=0.5, low_inclusive=False)
    check_scalar(max_backtracks, "max_backtracks", low=1, integer=True)
    if dtol is not None:
        check_scalar(dtol, "dtol", low=0.0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if not isinstance(globalization, str) or globalization not in GLOBALIZATIONS:
        raise ValueError(f"globalization must be one of {tuple(GLOBALIZATIONS)}, "
                         f"got {globalization!r}")


def _start_point(problem, x0):
    """x0, else the problem's ``initial_point()`` (GLMRegression: the intercept at
    link(mean y)), else zeros; always a fresh float64 array."""
    d = problem.design.d
    if x0 is not None:
        return check_x(x0, d, "x0").copy()
    if hasattr(problem, "initial_point"):
        return check_x(problem.initial_point(), d, "problem.initial_point()").copy()
    return np.zeros(d)


class _Solve:
    """The state of one :func:`minimize` solve and its named steps (setup in
    ``__init__``, then ``check_convergence`` -> ``step`` -> ``report`` per iteration,
    ``finalize`` at the end)."""

    def __init__(self, problem, x0, *, method, sketch, sketch_size, tol, maxiter, seed,
                 callback, verbose, dtol, armijo, max_backtracks, resume, globalization,
                 options, t_start):
        _check_options(problem, options, sketch_size, tol, maxiter, armijo, max_backtracks,
                       dtol, callback, globalization)
        self.method = method = _resolve_nonconvex(method, problem, sketch_size)
        self.problem, self.tol, self.maxiter, self.dtol = problem, tol, maxiter, dtol
        self.callback, self.verbose, self.t_start = callback, verbose, t_start
        design = self.design = problem.design
        stepper = self.stepper = STEP_MODELS[method](problem, check_rng(seed), sketch,
                                                     sketch_size)
        self.glob = GLOBALIZATIONS[globalization](problem, stepper, c1=armijo,
                                                  max_trials=max_backtracks, dtol=dtol)
        self.timings = dict.fromkeys(_PHASES, 0.0)
        t0 = time.perf_counter()
        if resume is None:
            state = self._start(_start_point(problem, x0), t0)
        else:
            state = check_resume(resume, method, design)
            self.parts = None
        self.x, self.z, self.f, self.g = state.x, state.z, state.f, state.g
        self.gnorm = float(np.linalg.norm(self.g))
        self.nfev, self.g0norm, self.nit = state.nfev, state.g0norm, state.nit
        self.hist, self.state = state.history, state
        if hasattr(stepper, "start"):  # Newton-CG: forcing terms relative to g0, tol
            stepper.start(self.g0norm, tol * self.g0norm)
        t1 = time.perf_counter()
        self.glob.start(self.hist, self.z, self.g, self.gnorm)
        self.timings["gradient"] += time.perf_counter() - t1 if resume is None else \
            time.perf_counter() - t0
        self.t_offset = self.hist["time"][-1]
        self.prev_step = None if state.prev_s is None else (state.prev_s, state.prev_As)
        self.drift, self.drift_step = state.drift, state.drift_step
        self.verified = False  # (f, g) are _objective_and_gradient at z = A x recomputed
        self.flat_step = False
        self.indefinite_steps = 0  # steps whose model Hessian was not positive definite
        if verbose:
            print(f"fastnewton: method={method}  n={design.n}  d={design.d}  "
                  f"nnz={design.nnz}")
            print(f"{'iter':>4} {'objective':>22} {'grad_norm':>10} {'step':>8} {'time_s':>8}")
            print(f"{self.nit:4d} {self.f:22.15e} {self.gnorm:10.3e} {'':>8} "
                  f"{self.hist['time'][-1]:8.3f}")

    def _start(self, x, t0):
        problem = self.problem
        z = self.design.matvec(x)
        if hasattr(problem, "check_point"):
            problem.check_point(z)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
            f, g, self.parts = _evaluate(problem, self.stepper, x, z, self.timings, t0)
        if not np.isfinite(f):
            raise ValidationError("the objective is not finite at x0 (f(A x0) overflows); "
                                  "choose a start with smaller |A x0|")
        gnorm = float(np.linalg.norm(g))
        return NewtonState(x=x, z=z, f=f, g=g, g0norm=gnorm, nit=0, nfev=1, prev_s=None,
                           prev_As=None, method=self.method,
                           history={"fun": [f], "grad_norm": [gnorm], "step_size": [0.0],
                                    "inner_iters": [0], "sketch_size": [0], "shift": [0.0],
                                    "decrement": [np.nan], "time": [0.0]})

    def _exact_point(self):
        """f and g at x with z = A x recomputed (one matvec); False (the loop's z, f and g
        kept, ``exact_failure`` says why) where the loss or its derivatives are not
        finite there: an iterate on the edge of a loss's domain, which the recomputed z
        can cross by a rounding error."""
        t0 = time.perf_counter()
        z = self.design.matvec(self.x)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                f, g = _objective_and_gradient(self.problem, self.x, z)
            if not (np.isfinite(f) and np.isfinite(g).all()):
                raise NonFiniteError(f"the objective or its gradient is not finite (f = {f!r})")
        except NonFiniteError as err:
            self.exact_failure = str(err)
            return False
        finally:
            self.timings["gradient"] += time.perf_counter() - t0
        self.z, self.f, self.g = z, f, g
        self.gnorm = float(np.linalg.norm(self.g))
        return True

    def check_convergence(self):
        """The stopping status, or None to go on. A candidate stop (tol met, stalled) is
        decided at the point that is returned: z = A x recomputed, f and g there; where
        the incremental z had drifted, the solve goes on from the exact point."""
        while True:
            status = stop_status(self.gnorm, self.g0norm, self.tol, self.nit, self.maxiter)
            if status is None and (self.flat_step or stalled(self.hist)):
                status = STALLED
            if status not in (CONVERGED_GRADIENT, STALLED) or self.verified:
                return status
            self.nfev += 1
            if not self._exact_point():
                self.verified = True  # nothing to verify at: end here, not a success
                return NON_FINITE
            self.hist["fun"][-1], self.hist["grad_norm"][-1] = self.f, self.gnorm
            self.parts, self.drift, self.verified, self.flat_step = None, 0.0, True, False

    def step(self):
        """One globalized step from the step model's direction; a status where it ends
        the solve, else None (``flat_step`` set: nothing left to resolve in f)."""
        if self.parts is None:
            self.parts = self.problem.parts_z(self.z)
        try:
            res = self.glob.step(self.parts, self.x, self.z, self.f, self.g, self.gnorm,
                                 self.hist, self.prev_step, self.drift_step, self.timings)
        except (FloatingPointError, np.linalg.LinAlgError):
            return NON_FINITE
        self.nfev += res.trials
        self.indefinite_steps += bool(getattr(res.direction, "indefinite", False))
        if res.step is None:  # the Newton decrement fell below dtol: no step taken
            return CONVERGED_DECREMENT
        if res.step == 0.0:
            if 0.5 * res.decrement <= rounding_level(self.f):
                self.flat_step = True  # stalled (or drifted): decided at the exact point
                self.skip_report = True
                return None
            return LINE_SEARCH_FAILED
        self.glob.record(self.hist, res)
        self._update(res)
        return None

    def _update(self, res):
        """Move to the accepted point, keeping the drift bound of the incremental z."""
        x_new, z_new, g_new, pre = res.x, res.z, res.g, res.pre
        drift_step = 2.0 * _EPS + res.step * res.image_err
        if self.drift + drift_step > _DRIFT_REFRESH:
            t0 = time.perf_counter()
            z_new = self.design.matvec(x_new)
            self.timings["gradient"] += time.perf_counter() - t0
            drift_step, self.drift = self.drift + 2.0 * _EPS, 0.0  # A s carries z's drift
            g_new = pre = None  # evaluate at the exact z_new below
            self.nfev += 1
        else:
            self.drift += drift_step
        self.drift_step = drift_step
        self.prev_step = (x_new - self.x, axpby(1.0, z_new, -1.0, self.z))
        self.x, self.z = x_new, z_new
        if g_new is None:
            stepper = self.stepper if self.glob.fused_evaluation else None
            self.f, self.g, self.parts = _evaluate(self.problem, stepper, self.x, self.z,
                                                   self.timings, pre=pre)
        else:
            self.f, self.g, self.parts = res.f, g_new, None
        self.gnorm = float(np.linalg.norm(self.g))
        self.nit += 1
        self.verified = False
        self.last = res

    def report(self):
        """History entries, the verbose line and the callback of the step just taken."""
        if getattr(self, "skip_report", False):
            self.skip_report = False
            return None
        res, hist, nit = self.last, self.hist, self.nit
        elapsed = self.t_offset + time.perf_counter() - self.t_start
        self.state = NewtonState(x=self.x, z=self.z, f=self.f, g=self.g, g0norm=self.g0norm,
                                 nit=nit, nfev=self.nfev, prev_s=self.prev_step[0],
                                 prev_As=self.prev_step[1], method=self.method,
                                 history=hist, drift=self.drift, drift_step=self.drift_step)
        direc = res.direction
        for key, val in (("fun", self.f), ("grad_norm", self.gnorm), ("step_size", res.step),
                         ("inner_iters", direc.inner_iters),
                         ("sketch_size", direc.sketch_size), ("shift", direc.shift),
                         ("decrement", res.decrement), ("time", elapsed)):
            hist[key].append(val)
        if self.verbose:
            print(f"{nit:4d} {self.f:22.15e} {self.gnorm:10.3e} {res.step:8.2e} "
                  f"{elapsed:8.3f}")
        if self.callback is None:
            return None
        inter = OptimizeResult(x=self.x.copy(), fun=self.f, grad_norm=self.gnorm, nit=nit,
                               state=self.state)
        try:
            stop = self.callback(inter)
        except StopIteration:
            stop = True
        return STOPPED_BY_CALLBACK if stop else None

    def finalize(self, status):
        """The NewtonResult: success is decided at x with z = A x recomputed."""
        verified = self.verified
        if not verified and not self._exact_point():  # one evaluation more (nfev below)
            status = NON_FINITE
        timings, gnorm, g0norm, nit = self.timings, self.gnorm, self.g0norm, self.nit
        timings["total"] = time.perf_counter() - self.t_start
        met = bool(gnorm <= self.tol * g0norm)
        if met and status in (MAXITER, LINE_SEARCH_FAILED, STALLED):
            status = CONVERGED_GRADIENT  # the exact gradient meets tol where the loop's did not
        elif not met and status == CONVERGED_GRADIENT:  # pragma: no cover - tested at exact z
            status = STALLED
        success = met and status in (CONVERGED_GRADIENT, CONVERGED_DECREMENT)
        message = _MESSAGES[status]
        if status not in (STOPPED_BY_CALLBACK, NON_FINITE):
            message += f" (relative gradient {gnorm / g0norm if g0norm else 0.0:.2e})"
        exact_failure = getattr(self, "exact_failure", None)
        if exact_failure is not None:
            message += (f" at x with z = A x recomputed ({exact_failure}); x is on the edge "
                        f"of the loss's domain, f and jac are the last finite ones")
        if not success and self.indefinite_steps and status != STOPPED_BY_CALLBACK:
            message += (f"; the model Hessian was indefinite or numerically singular on "
                        f"{self.indefinite_steps} of the steps (non-convex, or curvature "
                        f"spread over more orders of magnitude than float64 resolves)")
        if not success and status != STOPPED_BY_CALLBACK:
            warnings.warn(f"fastnewton.minimize did not converge after {nit} steps: {message}; "
                          f"gradient norm {gnorm:.3e} vs target {self.tol * g0norm:.3e}. "
                          f"Remedy: {REMEDIES[status]}{_INDEFINITE_REMEDY if self.indefinite_steps else ''}.",
                          ConvergenceWarning, stacklevel=3)
        if self.verbose:
            print(f"fastnewton: {message}; fun={self.f:.15e} grad_norm={gnorm:.3e} nit={nit} "
                  f"time={timings['total']:.3f}s")
        history = {k: np.asarray(v, dtype=np.int64 if k in ("inner_iters", "sketch_size")
                                 else float) for k, v in self.hist.items()}
        return NewtonResult(x=self.x, fun=self.f, jac=self.g, grad_norm=gnorm, nit=nit,
                            nfev=self.nfev + (0 if verified else 1), success=success,
                            status=status, message=message, method=self.method,
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
