"""``fastnewton.minimize`` for the matrix-valued families, which bring their own solver.

:class:`~fastnewton.MultiSoftmaxRegression`, :class:`~fastnewton.AttentionRegression` and
:class:`~fastnewton.AttentionKernelRegression` have no z-space interface (their designs
are Kronecker products or kernels that are never formed), so the step models of the
driver do not apply; each has a ``solve()`` of its own. :func:`minimize_family` maps the
options of :func:`fastnewton.minimize` onto that ``solve()``, refuses by name every option
that does not apply, and returns a :class:`~fastnewton.NewtonResult` whose ``success``
is decided as the driver's is: ``‖∇L(x)‖ <= tol ‖∇L(x0)‖`` at the returned x, with the
gradient evaluated there by ``problem.jac``.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult

from ._convergence import (CONVERGED_GRADIENT, LINE_SEARCH_FAILED, MAXITER, MESSAGES,
                           NON_FINITE, REMEDIES, STALLED, STOPPED_BY_CALLBACK)
from ._validation import check_scalar, check_x
from .exceptions import ConvergenceWarning

__all__ = ["family_solver", "minimize_family"]

_STOPPED = "stopped by the callback"


@dataclass(frozen=True)
class FamilySolver:
    """How one matrix-valued family is solved: the ``method`` name it reports, a
    description for messages, the options of ``minimize`` that apply (besides ``tol``,
    ``verbose`` and ``method``), the family-specific ``options`` keys its ``solve()``
    takes, and the status of a stop that is neither success, maxiter nor the callback."""

    method: str
    description: str
    applies: tuple
    options: tuple
    failure: int


_SOLVERS = {
    "MultiSoftmaxRegression": FamilySolver(
        "newton-cg", "matrix-free Newton-CG with a Kronecker preconditioner",
        ("x0", "maxiter", "callback", "seed"), ("cg_rtol", "cg_maxiter", "preconditioner"),
        LINE_SEARCH_FAILED),
    "AttentionRegression": FamilySolver(
        "varpro-trust-ncg", "variable projection with trust-region Newton-CG steps",
        ("x0", "maxiter", "callback", "seed"), ("cg_maxiter",), STALLED),
    "AttentionKernelRegression/gram": FamilySolver(
        "qr-refine", "triangular solves with the QR factor of A (or of a sketch of a "
        "sparse A) plus iterative refinement, a linear solve from x = 0",
        ("maxiter", "seed"), ("refine",), STALLED),
    "AttentionKernelRegression/exp": FamilySolver(
        "nystrom-pcg", "Nystrom-preconditioned CG on exp(A A^T) x = b, a linear solve "
        "from x = 0 (maxiter: CG iterations; tol is also CG's relative residual target)",
        ("maxiter", "seed"), ("rank",), STALLED),
}


def family_solver(problem):
    """The :class:`FamilySolver` of a matrix-valued family instance, or None."""
    from .problems import AttentionKernelRegression, AttentionRegression, MultiSoftmaxRegression

    if isinstance(problem, MultiSoftmaxRegression):
        return _SOLVERS["MultiSoftmaxRegression"]
    if isinstance(problem, AttentionRegression):
        return _SOLVERS["AttentionRegression"]
    if isinstance(problem, AttentionKernelRegression):
        kind = "exp" if problem.kind == "exp" else "gram"
        return _SOLVERS[f"AttentionKernelRegression/{kind}"]
    return None


def _defaults():
    from .newton import minimize

    return {name: p.default for name, p in inspect.signature(minimize).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _differs(value, default):
    if value is None or default is None:
        return value is not default
    if isinstance(value, str) or isinstance(default, str):
        return not (isinstance(value, str) and value == default)
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # arrays, objects: anything given counts
        return True


def _refuse_inapplicable(problem, spec, given, options):
    name = type(problem).__name__
    takes = ("tol", "verbose") + spec.applies
    takes_str = ", ".join(takes) + (
        f", options={{{', '.join(spec.options)}}}" if spec.options else "")
    method = given["method"]
    if method not in ("auto", spec.method):
        raise ValueError(f"method={method!r} does not apply to {name}, which is solved by "
                         f"{spec.description} (method {spec.method!r}); options it takes: "
                         f"{takes_str}")
    defaults = _defaults()
    for key, value in given.items():
        if key in takes or key == "method":
            continue
        if _differs(value, defaults[key]):
            shown = repr(value) if len(repr(value)) <= 40 else f"<{type(value).__name__}>"
            raise ValueError(f"{key}={shown} does not apply to {name}, which is solved by "
                             f"{spec.description} (method {spec.method!r}); options it "
                             f"takes: {takes_str}")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict of {name}.solve() options, got "
                        f"{type(options).__name__}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(f"options {unknown} do not apply to {name}; its solve() takes "
                         f"{list(spec.options) or 'none'} through options=")
    return dict(options)


def _wrap_callback(problem, callback):
    """``solve()``'s ``callback(x)`` -> the driver's ``callback(OptimizeResult)``."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    count = [0]

    def inner(x):
        count[0] += 1
        inter = OptimizeResult(x=x, fun=float(problem.fun(x)),
                               grad_norm=float(np.linalg.norm(problem.jac(x))), nit=count[0])
        return callback(inter)  # True / StopIteration: solve() stops

    return inner


def _run(problem, spec, x0, tol, maxiter, seed, callback, options):
    if spec.method in ("newton-cg", "varpro-trust-ncg"):
        return problem.solve(x0, tol=tol, maxiter=maxiter, callback=callback, **options)
    if spec.method == "nystrom-pcg":
        return problem.solve(rtol=tol, maxiter=maxiter, seed=seed, **options)
    return problem.solve(seed=seed, **options)


def minimize_family(problem, x0=None, *, tol, maxiter, callback, verbose, options, **given):
    """Solve a matrix-valued family by its own ``solve()`` and report a NewtonResult.

    Called by :func:`fastnewton.minimize`. ``given`` holds its other options as the
    caller passed them (``method``, ``sketch``, ...); one that does not apply to the
    family and differs from minimize's default raises a ValueError naming it and the
    options the family takes. What applies:

    ==========================================  ===================  ==========================
    family                                      ``method``           options (besides ``tol``,
                                                                     ``verbose``)
    ==========================================  ===================  ==========================
    ``MultiSoftmaxRegression``                  ``"newton-cg"``      x0, maxiter, callback,
                                                                     seed*; ``options=``:
                                                                     cg_rtol, cg_maxiter,
                                                                     preconditioner
    ``AttentionRegression``                     ``"varpro-trust-     x0, maxiter, callback,
                                                ncg"``               seed*; ``options=``:
                                                                     cg_maxiter
    ``AttentionKernelRegression`` gram, agram   ``"qr-refine"``      maxiter*, seed; ``options=``:
                                                                     refine
    ``AttentionKernelRegression`` exp           ``"nystrom-pcg"``    maxiter (CG iterations),
                                                                     seed; ``options=``: rank
    ==========================================  ===================  ==========================

    (*) accepted and without effect: these solvers draw no random numbers; a direct
    solve has no iterations to limit.

    The result: ``x`` flattened as the family's ``solve()`` documents (vec(X) row-major;
    theta = [vec(X), vec(Y)]; the kernel's x), ``fun``/``jac``/``grad_norm`` from
    ``problem.fun``/``problem.jac`` at that x, ``nit`` (Newton or trust-region steps; CG
    iterations for kind "exp", inner CG iterations of a sparse A's solves for
    "gram"/"agram"), ``nfev`` (as the solver counts them; 1 for the linear solves),
    ``success``/``status`` from the gradient test ``‖∇L(x)‖ <= tol ‖∇L(x0)‖`` (x0 = 0 for
    the kernel family, whose ``fun`` is ``½‖K x − b‖²``): 0 met, 1 maxiter, 3 line search
    failed (Newton-CG), 4 callback, 5 non-finite, 6 stopped short of tol otherwise (the
    trust region collapsed, or the linear solve's accuracy floor is above tol). The
    ``message`` adds the solver's own (the kernel's achieved relative residual);
    ``history`` is the solver's (``fun``, ``grad_norm``, ``step_size``, ``inner_iters`` =
    its ``cg_iters`` ...; for the kernel two entries: x = 0 and the solution);
    ``timings`` has ``solve`` and ``total``; the solver's extra fields (``X``, ``Y``,
    ``residual``, ``kappa``, ``rank``, ``eigenvalues``) are kept. The callback receives an
    ``OptimizeResult`` with ``x``, ``fun``, ``grad_norm`` (evaluated at x for it) and
    ``nit``; returning True or raising ``StopIteration`` stops (status 4). ``verbose``
    prints the per-step history when the solve returns.
    """
    from .newton import NewtonResult

    t_start = time.perf_counter()
    spec = family_solver(problem)
    name = type(problem).__name__
    given = dict(given, x0=x0, maxiter=maxiter, callback=callback)
    options = _refuse_inapplicable(problem, spec, given, options)
    check_scalar(tol, "tol", low=0.0)
    check_scalar(maxiter, "maxiter", low=0 if spec.method != "nystrom-pcg" else 1,
                 integer=True)
    start = np.zeros(problem.size) if x0 is None else check_x(x0, problem.size, "x0")
    g0norm = float(np.linalg.norm(problem.jac(start)))
    wrapped = _wrap_callback(problem, callback)
    if verbose:
        print(f"fastnewton: {name} method={spec.method} unknowns={problem.size}")
    with warnings.catch_warnings():
        # the solver's own non-convergence warning: re-issued once below
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = _run(problem, spec, x0, tol, maxiter, given["seed"], wrapped, options)
    t_solve = time.perf_counter() - t_start
    x = np.asarray(res.x, dtype=np.float64)
    f = float(problem.fun(x))
    g = np.asarray(problem.jac(x), dtype=np.float64)
    gnorm = float(np.linalg.norm(g))
    nit = int(res.get("nit", 0))
    met = bool(gnorm <= tol * g0norm)
    if res.get("message") == _STOPPED:
        status = STOPPED_BY_CALLBACK
    elif not (np.isfinite(gnorm) and np.isfinite(f)):
        status = NON_FINITE
    elif met:
        status = CONVERGED_GRADIENT
    elif spec.method != "qr-refine" and nit >= maxiter:
        status = MAXITER
    else:
        status = spec.failure
    success = status == CONVERGED_GRADIENT
    head = MESSAGES[status]
    if status == STALLED and spec.method in ("qr-refine", "nystrom-pcg"):
        head = "the linear solve stopped short of tol (its accuracy floor is above it)"
    message = (f"{head} (relative gradient "
               f"{gnorm / g0norm if g0norm else 0.0:.2e}); {name}.solve: {res.get('message', '')}")
    if not success and status != STOPPED_BY_CALLBACK:
        warnings.warn(f"fastnewton.minimize did not converge after {nit} steps of "
                      f"{spec.method}: {message}; gradient norm {gnorm:.3e} vs target "
                      f"{tol * g0norm:.3e}. Remedy: {REMEDIES[status]}.", ConvergenceWarning,
                      stacklevel=3)
    history = _history(res, g0norm, f, gnorm, nit, problem, start)
    if verbose:
        for k, (fk, gk) in enumerate(zip(history["fun"], history["grad_norm"])):
            print(f"{k:4d} {fk:22.15e} {gk:10.3e}")
        print(f"fastnewton: {message}; fun={f:.15e} grad_norm={gnorm:.3e} nit={nit}")
    timings = {"solve": t_solve, "total": time.perf_counter() - t_start}
    extra = {k: v for k, v in res.items()
             if k not in ("x", "fun", "jac", "grad_norm", "nit", "nfev", "success", "status",
                          "message", "history", "time")}
    return NewtonResult(x=x, fun=f, jac=g, grad_norm=gnorm, nit=nit,
                        nfev=int(res.get("nfev", 1)), success=success, status=status,
                        message=message, method=spec.method, history=history,
                        timings=timings, **extra)


def _history(res, g0norm, f, gnorm, nit, problem, start):
    """Per-iterate arrays: the solver's own (``cg_iters`` also as ``inner_iters``), or
    for a linear solve two entries, the start x = 0 and the solution."""
    hist = res.get("history")
    if hist:
        out = {k: np.asarray(v, dtype=float) for k, v in hist.items()}
        if "cg_iters" in out:
            out["inner_iters"] = np.asarray(hist["cg_iters"], dtype=np.int64)
        return out
    return {"fun": np.array([float(problem.fun(start)), f]),
            "grad_norm": np.array([g0norm, gnorm]),
            "inner_iters": np.array([0, nit], dtype=np.int64)}
