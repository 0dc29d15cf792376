"""Globalizations of the Newton driver: how a step model's direction becomes a step.

Each globalization is a small object with one interface, chosen by name in
:data:`GLOBALIZATIONS` (``minimize(globalization=...)``)::

    glob = GLOBALIZATIONS[name](problem, stepper, c1=..., max_trials=..., dtol=...)
    glob.start(history, z, g, gnorm)          # its own history entries at the start
    res = glob.step(parts, x, z, f, g, gnorm, history, prev_step, drift_step, timings)
    glob.record(history, res)                 # after an accepted step

``step`` returns a :class:`StepResult`: ``step`` None (the Newton decrement is below
``dtol``, no step taken), 0.0 (no acceptable trial) or the step length taken.

``armijo``        backtracking along the direction (Armijo condition); fixed-sketch
                  models refine it over span{p, previous step}.
``gradreg``       gradient-regularized Newton (arXiv 2506.13710): shift mu = ‖g‖/gamma.
``trust-region``  trust-region steps on the step model: the exact subproblem of the
                  d x d models (eigendecomposition), Steihaug CG for ``pcg``; the
                  radius follows the ratio of actual to predicted decrease.
``auto``          ``armijo`` where the step model is positive definite (the same steps
                  as ``armijo`` on convex problems), ``trust-region`` on the steps where it
                  is not (negative or numerically zero curvature), the radius kept from
                  one such step to the next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .linalg._design import axpby, curvature_sums, ridge_dot, ridge_value

__all__ = ["GLOBALIZATIONS", "StepResult", "Armijo", "GradReg", "TrustRegion", "Auto",
           "subspace_coefficients"]

_EPS = np.finfo(np.float64).eps


@dataclass
class StepResult:
    """One step of a globalization: ``step`` (None: decrement below dtol, 0.0: failed),
    the new ``f, z, x`` and ``g`` (None: not computed), objective evaluations ``trials``,
    the step model's ``direction``, the decrement ``-g.p``, ``pre`` (``loss_grad_parts_z``
    at the new z when computed) and ``image_err`` (drift bound of the image A p per unit
    step, relative to ‖z‖∞; see :func:`_subspace_step`)."""

    step: object
    f: float
    z: np.ndarray
    x: np.ndarray
    g: object
    trials: int
    direction: object
    decrement: float
    pre: object = None
    image_err: float = 0.0


def _objective_and_gradient(problem, x, z):
    f, gz = problem.loss_grad_z(z)
    g = problem.design.rmatvec(gz) + problem.lam * x
    return f + ridge_value(problem.lam, x), g


def _direction(stepper, parts, g, gnorm, timings, shift=None, radius=None):
    """The step model's direction (forced to be a descent direction) and g.p."""
    kw = {} if shift is None else {"shift": shift}
    if radius is not None and getattr(stepper, "accepts_radius", False):
        kw["radius"] = radius
    direc = stepper.direction(parts, g, timings, **kw)
    p = direc.p
    gp = float(g @ p)
    if not (np.isfinite(gp) and gp < 0):
        direc.p = p = -g  # cannot happen with a PD model; be safe anyway
        gp = -gnorm * gnorm
        direc.model_value = direc.step_norm = direc.Ap = None
    return direc, p, gp


class Globalization:
    """Interface of the globalizations (see the module docstring)."""

    name = ""
    #: The driver may evaluate (f, g, parts) through the step model's fused pass.
    fused_evaluation = True

    def __init__(self, problem, stepper, *, c1=1e-4, max_trials=60, dtol=None):
        self.problem, self.stepper = problem, stepper
        self.c1, self.max_trials, self.dtol = c1, max_trials, dtol

    def start(self, hist, z, g, gnorm):
        """Add this globalization's history entries for the start (or a resumed state)."""

    def record(self, hist, res):
        """Append this globalization's history entries after an accepted step."""

    def _below_dtol(self, decrement):
        return self.dtol is not None and 0.5 * decrement <= self.dtol


class Armijo(Globalization):
    """Backtracking along the direction until ``f(x + t p) <= f + c1 t g.p``."""

    name = "armijo"

    def step(self, parts, x, z, f, g, gnorm, hist, prev_step, drift_step, timings, direc=None):
        problem = self.problem
        if direc is None:
            direc, p, gp = _direction(self.stepper, parts, g, gnorm, timings)
        else:
            p, gp = direc.p, float(g @ direc.p)
        decrement = -gp
        if self._below_dtol(decrement):
            return StepResult(None, f, z, x, None, 0, direc, decrement)
        t0 = time.perf_counter()
        Ap, image_err = _image(problem, direc, p, z)
        t_init = 1.0
        if direc.subspace:
            p, Ap, gp, t_init, image_err = _subspace_step(parts, problem.lam, g, p, Ap, gp,
                                                          prev_step, z, drift_step)
        step, f_new, z_new, x_new, g_new, trials, pre = _armijo(
            problem, x, z, f, g, gnorm, p, Ap, gp, self.c1, self.max_trials, t_init,
            first_full=getattr(problem, "fused_z", False))
        timings["line_search"] += time.perf_counter() - t0
        return StepResult(step, f_new, z_new, x_new, g_new, trials, direc, decrement, pre,
                          image_err)


class GradReg(Globalization):
    """The gradient-regularized Newton method of arXiv 2506.13710 (see ``minimize``).

    Trial: ``p = -(H~ + mu I)^{-1} g`` with ``mu = ‖g‖/gamma``; accepted when
    ``f - f(x + p) >= ‖g(x + p)‖² / (8 mu)`` (gamma doubles), else gamma halves. Near the
    solution, where the decrease is below the objective's rounding error, a trial that
    decreases the gradient norm is accepted too. ``history["gamma"]``: gamma after each
    step.
    """

    name = "gradreg"
    fused_evaluation = False

    def __init__(self, problem, stepper, **kw):
        if not getattr(stepper, "accepts_shift", False):
            raise ValueError(f"globalization='gradreg' needs a step model that accepts a "
                             f"diagonal shift; method {stepper.name!r} does not")
        super().__init__(problem, stepper, **kw)
        self.gamma = None

    def start(self, hist, z, g, gnorm):
        if not hist.get("gamma"):
            hist["gamma"] = [_initial_gamma(self.problem, z, g, gnorm)]

    def record(self, hist, res):
        hist["gamma"].append(self.gamma)

    def step(self, parts, x, z, f, g, gnorm, hist, prev_step, drift_step, timings):
        problem, gamma = self.problem, hist["gamma"][-1]
        fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
        first_decrement = direc = None
        for trial in range(1, self.max_trials + 1):
            mu = gnorm / gamma
            direc, p, gp = _direction(self.stepper, parts, g, gnorm, timings, shift=mu)
            if first_decrement is None:
                first_decrement = -gp
                if self._below_dtol(first_decrement):
                    return StepResult(None, f, z, x, None, 0, direc, first_decrement)
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
                self.gamma = 2.0 * gamma
                return StepResult(1.0, f_t, z_t, x_t, g_t, trial, direc, -gp)
            gamma *= 0.5
        self.gamma = gamma
        return StepResult(0.0, f, z, x, None, self.max_trials, direc, first_decrement)


def _initial_gamma(problem, z, g, gnorm):
    """gamma_0 = ‖g‖³ / gᵀHg, so that mu_0 = ‖g‖/gamma_0 is the curvature along g."""
    if gnorm == 0.0:
        return 1.0
    Ag = problem.design.matvec(g)
    curv = _curvatures(problem.parts_z(z), problem.lam, g, Ag, g, Ag)[0] / (gnorm * gnorm)
    return gnorm / curv if np.isfinite(curv) and curv > 0 else 1.0


class TrustRegion(Globalization):
    r"""Trust-region steps on the step model (Conn, Gould & Toint, Alg. 6.1.1).

    Each trial asks the step model for its step within the radius (models with
    ``accepts_radius``: the exact subproblem of the d x d models in their Jacobi-scaled
    norm, Steihaug CG in the preconditioner's norm for ``pcg``; other models' steps are
    cut to the radius). The trial is accepted when the actual decrease is at least
    ``ETA`` times the decrease the exact quadratic model predicts along the step (its
    curvature from A p, O(n); where that model has its minimizer along the step short of
    it, as an approximate model's step can overshoot, the trial is that minimizer) (or, at rounding level, when it decreases
    the gradient norm); the radius then doubles where the ratio exceeds 0.75 on the
    boundary and shrinks to a quarter of the step where it is below 0.25. A rejected
    trial shrinks the radius to a quarter of the step and re-solves the subproblem (the
    d x d models reuse their factorization). The first radius is the length of the
    model's own step (Newton where the model is positive definite, else the radius
    where its most negative curvature balances the slope). ``history["radius"]``.
    """

    name = "trust-region"
    ETA = 0.1

    def __init__(self, problem, stepper, **kw):
        super().__init__(problem, stepper, **kw)
        self.radius = None

    def start(self, hist, z, g, gnorm):
        if "radius" not in hist or len(hist["radius"]) != len(hist["fun"]):
            hist["radius"] = [np.nan] * len(hist["fun"])
        r = hist["radius"][-1]
        self.radius = float(r) if np.isfinite(r) else None

    def record(self, hist, res):
        hist["radius"].append(np.nan if self.radius is None else self.radius)

    def step(self, parts, x, z, f, g, gnorm, hist, prev_step, drift_step, timings, direc=None):
        problem, radius = self.problem, self.radius
        fscale = 10 * _EPS * max(abs(f), np.finfo(float).tiny)
        first_decrement = None
        for trial in range(1, self.max_trials + 1):
            if direc is None:
                direc, p, gp = _direction(self.stepper, parts, g, gnorm, timings, radius=radius)
            else:
                p, gp = direc.p, float(g @ direc.p)
            if first_decrement is None:
                first_decrement = -gp
                if self._below_dtol(first_decrement):
                    return StepResult(None, f, z, x, None, 0, direc, first_decrement)
            t0 = time.perf_counter()
            norm = float(np.linalg.norm(p)) if direc.step_norm is None else direc.step_norm
            if radius is None:
                radius = norm
            elif norm > radius * (1 + 1e-8):  # a model without a radius: cut its step
                p, gp, norm = p * (radius / norm), gp * (radius / norm), radius
            Ap = problem.design.matvec(p)
            # the decrease predicted by the exact quadratic model along p (O(n) from A p):
            # a sketched model's own prediction carries its systematic error, which would
            # keep the ratio away from 1 and the radius shrinking near the solution
            pHp = _curvatures(parts, problem.lam, p, Ap, p, Ap)[0]
            if pHp > 0 and -gp < pHp:  # an approximate model's step overshoots the exact
                t = -gp / pHp          # model along p: take that model's minimizer on it
                p, Ap, gp, norm, pHp = t * p, t * Ap, t * gp, t * norm, t * t * pHp
            pred = -(gp + 0.5 * pHp)
            z_t, x_t = axpby(1.0, z, 1.0, Ap), x + p
            f_t = problem.loss_z(z_t) + ridge_value(problem.lam, x_t)
            g_t, ok, flat = None, False, False
            if np.isfinite(f_t):
                ok = pred > 0 and f - f_t >= self.ETA * pred
                # at rounding level: the predicted decrease is below f's rounding error and
                # f rose by no more than a sum over many rows can err (as _armijo's test)
                if not ok and pred <= fscale and f_t - f <= 100.0 * fscale:
                    f2, g_t = _objective_and_gradient(problem, x_t, z_t)
                    ok = flat = float(np.linalg.norm(g_t)) < gnorm
                    f_t = f2 if ok else f_t
            timings["line_search"] += time.perf_counter() - t0
            if ok:
                rho = 1.0 if flat else (f - f_t) / pred  # flat: the ratio is noise
                if rho > 0.75 and norm >= 0.99 * radius:
                    radius = 2.0 * radius
                elif rho < 0.25:
                    radius = 0.25 * norm
                self.radius = radius
                return StepResult(1.0, f_t, z_t, x_t, g_t, trial, direc, first_decrement)
            radius = 0.25 * min(radius, norm)
            direc = None
        self.radius = radius
        return StepResult(0.0, f, z, x, None, self.max_trials, direc, first_decrement)


class Auto(Globalization):
    """``armijo`` on steps where the step model is positive definite, ``trust-region``
    on those where it is not (``Direction.indefinite``)."""

    name = "auto"

    def __init__(self, problem, stepper, **kw):
        super().__init__(problem, stepper, **kw)
        self.armijo = Armijo(problem, stepper, **kw)
        self.trust = TrustRegion(problem, stepper, **kw)

    def start(self, hist, z, g, gnorm):
        r = hist["radius"][-1] if hist.get("radius") else np.nan
        self.trust.radius = float(r) if np.isfinite(r) else None

    def record(self, hist, res):
        """``history["radius"]`` appears with the first trust-region step (NaN before
        it: no radius yet); a solve whose models stay positive definite has none."""
        if self.trust.radius is not None:
            if "radius" not in hist:
                hist["radius"] = [np.nan] * len(hist["fun"])
            self.trust.record(hist, res)

    def step(self, parts, x, z, f, g, gnorm, hist, prev_step, drift_step, timings):
        direc, p, gp = _direction(self.stepper, parts, g, gnorm, timings)
        args = (parts, x, z, f, g, gnorm, hist, prev_step, drift_step, timings)
        if not getattr(direc, "indefinite", False) or direc.subspace:
            # positive definite, or a fixed sketch's step (refined with the exact model
            # over span{p, previous step}, which the 2 x 2 test keeps positive definite)
            return self.armijo.step(*args, direc=direc)
        # a stored radius: re-solve within it (the factored models reuse their factor)
        return self.trust.step(*args, direc=None if self.trust.radius else direc)


#: Globalizations by name (``minimize(globalization=...)``).
GLOBALIZATIONS = {"auto": Auto, "armijo": Armijo, "gradreg": GradReg,
                  "trust-region": TrustRegion}


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


def _image(problem, direc, p, z):
    """``(A p, drift bound per unit step relative to ‖z‖∞)``: the step model's image of p
    where it computed one on the way (Newton-CG), else one matvec (exact up to rounding:
    bound 0, the driver counts 2 eps per step for it)."""
    Ap = getattr(direc, "Ap", None)
    if Ap is None or direc.p is not p:
        return problem.design.matvec(p), 0.0
    scale = max(_max_abs(z), _max_abs(Ap), np.finfo(float).tiny)  # as _subspace_step's
    return Ap, direc.image_err / scale


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
