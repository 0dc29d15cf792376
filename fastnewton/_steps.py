"""Step models of the Newton driver: how each method turns (parts, g) into a direction.

A step model is built once per solve (``__init__(problem, rng, sketch, sketch_size)``)
and then called once per Newton step: ``direction(parts, g, timings) -> Direction``.
It adds the seconds it spends to the phases of ``timings`` (``sketch``, ``assemble``,
``factor``, ``solve``). New methods register a class in :data:`STEP_MODELS`.
Step models with ``accepts_shift = True`` also take ``direction(..., shift=mu)`` and
then solve with the model Hessian plus ``mu * I`` (the gradient-regularized
globalization of the driver needs this); repeated calls with the same ``parts``
object reuse the assembled model. Step models with ``accepts_radius = True`` also take
``direction(..., radius=r)`` and then return their step within a trust region of radius r
(in the model's own norm, reported as ``Direction.step_norm``; the trust-region
globalization needs this, and cuts other models' steps to the radius). A
:class:`Direction` with ``indefinite`` set tells the driver the model was not positive
definite (``auto`` then takes a trust-region step). A step model may also define
``objective_gradient(x, z, timings, pre=None) -> (f, g, parts) or None``: the driver then
evaluates the objective, the gradient and the Hessian parts at a new point through it,
so the model can share the gradient's pass over A (``None``: evaluate as usual).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._threads import solver_blas
from ._validation import check_scalar
from .exceptions import ValidationError
from .hessian import HessianOperator, SketchPreconditioner, gram, sketched_gram
from .hessian._gram import hessian_from_sketch
from .linalg import shifted_cholesky
from .linalg._factor import FactorizationResult
from .linalg._pcg import newton_cg
from .linalg._trcg import steihaug_cg
from .linalg._trsub import ModelFactor
from .linalg._tallgram import tall_gram
from .linalg._design import ridge_scalar, ridge_value
from .sketch import CountSketch, RowSampler, leverage_sampler, make_sketch

__all__ = ["Direction", "STEP_MODELS", "default_sketch_size", "ExactStep", "SketchStep",
           "SampleStep", "PcgStep", "WideStep"]


def default_sketch_size(n, d):
    """Default sketch size of the ``sketch`` method: ``min(n, max(8 d, 64))``."""
    return int(min(n, max(8 * d, 64)))


def _sketch_rows(sketch, sketch_size, n, d):
    """The sketch size of ``sketch`` and ``pcg``: a sketch object's own rows (a
    ``sketch_size`` that disagrees with them is refused), else ``sketch_size``, else the
    default."""
    if not isinstance(sketch, str) and hasattr(sketch, "shape"):
        rows = int(sketch.shape[0])
        if sketch_size is not None and sketch_size != rows:
            raise ValidationError(f"sketch_size={sketch_size!r} but the sketch object given "
                                  f"as sketch has {rows} rows; give one of them")
        return rows
    return default_sketch_size(n, d) if sketch_size is None else sketch_size


@dataclass
class Direction:
    """A search direction and what it cost.

    ``p`` is the direction (descent for g), ``shift`` the diagonal shift used to factor
    an indefinite/singular model Hessian, ``inner_iters`` iterations of an inner
    iterative solver (0 for direct solves), ``sketch_size`` rows of the sketch used (0
    for none). ``subspace`` asks the driver to refine p with the previous step (exact
    quadratic model over span{p, previous step}; used by fixed-sketch methods).
    """

    p: np.ndarray
    shift: float = 0.0
    inner_iters: int = 0
    sketch_size: int = 0
    subspace: bool = False
    #: The model was indefinite (or singular): p is its trust-region step, of norm
    #: ``step_norm`` (the model's own norm) with a shift sized by its most negative
    #: curvature, not a Newton step.
    indefinite: bool = False
    #: The model's value g.p + p^T H~ p / 2 at p, where the model knows it (else None).
    model_value: object = None
    #: ‖p‖ in the norm the model measures its trust region in (None: not measured).
    step_norm: object = None
    #: ``A p`` where the model computed it on the way (Newton-CG sums the images of its
    #: directions), else None; ``image_err`` bounds its rounding error (max norm).
    Ap: object = None
    image_err: float = 0.0


class _FactoredStep:
    """Shared part of the direct step models: factor the model Hessian, solve.

    A positive definite model gives the Newton step (a Cholesky solve). An indefinite or
    singular one gives the exact trust-region step of the Jacobi-scaled model
    (:class:`~fastnewton.linalg._trsub.ModelFactor`): with ``radius`` given (the
    trust-region globalization) on that radius, else on the radius where the model's
    most negative curvature balances its slope; its shift is sized by that curvature,
    never by ``max|diag H|``. ``radius`` also bounds a positive definite model's step.
    """

    accepts_shift = True
    accepts_radius = True

    def _solve(self, H, g, timings, shift=0.0, radius=None):
        t0 = time.perf_counter()
        if shift:
            H = H.copy()
            H[np.diag_indices_from(H)] += shift
        key = (id(H), shift) if H is getattr(self, "_factored_H", None) else None
        fac = self._factor if key is not None and key == self._factor_key else None
        if fac is None:
            try:
                fac = shifted_cholesky(H, max_attempts=1)  # positive definite as it is
            except np.linalg.LinAlgError:
                fac = ModelFactor(H)
            self._factored_H, self._factor, self._factor_key = H, fac, (id(H), shift)
        t1 = time.perf_counter()
        timings["factor"] += t1 - t0
        if isinstance(fac, FactorizationResult):
            p = -fac.solve(g)
            if radius is None:
                timings["solve"] += time.perf_counter() - t1
                return Direction(p, shift=shift)
            norm = float(np.linalg.norm(p * np.sqrt(np.abs(np.diag(H)))))
            if norm <= radius:
                timings["solve"] += time.perf_counter() - t1
                return Direction(p, shift=shift, model_value=0.5 * float(g @ p),
                                 step_norm=norm)
            fac = ModelFactor(H)
            self._factor = fac
        if fac.positive_definite and radius is None:
            p = fac.newton(g)
            timings["solve"] += time.perf_counter() - t1
            return Direction(p, shift=shift, model_value=0.5 * float(g @ p),
                             step_norm=float(np.linalg.norm(p / fac.scale)))
        r = fac.default_radius(g) if radius is None else radius
        p, sigma, model = fac.trust_region(g, r)
        timings["solve"] += time.perf_counter() - t1
        return Direction(p, shift=shift + sigma, indefinite=not fac.positive_definite,
                         model_value=model, step_norm=float(np.linalg.norm(p / fac.scale)))


class ExactStep(_FactoredStep):
    """Newton direction from the exactly assembled Hessian."""

    name = "exact"

    def __init__(self, problem, rng, sketch, sketch_size):
        self.problem = problem
        self._model = (None, None)

    def direction(self, parts, g, timings, shift=0.0, radius=None):
        if self._model[0] is not parts:
            t0 = time.perf_counter()
            self._model = (parts, gram(self.problem.design, parts, ridge=self.problem.lam))
            timings["assemble"] += time.perf_counter() - t0
        return self._solve(self._model[1], g, timings, shift, radius)


class SketchStep(_FactoredStep):
    """Approximate Newton direction from the Hessian of a fixed sketch of diag(sqrt(beta_+)) A.

    Where beta has negative mass (see :func:`_sketches_negative_part`) the same sketch of
    diag(sqrt(beta_-)) A is subtracted: the model is then indefinite like the Hessian.
    """

    name = "sketch"

    def __init__(self, problem, rng, sketch, sketch_size):
        n, d = problem.n, problem.d
        m = _sketch_rows(sketch, sketch_size, n, d)
        check_scalar(m, "sketch_size", low=1, integer=True)
        if m > n:  # more rows than A: never cheaper than exact, and memory ~ m
            raise ValidationError(f"sketch_size must be at most n = {n} (the rows of A), "
                                  f"got {m}; use method='exact' for the full Hessian")
        self.problem = problem
        self.sketch_size = int(m)
        self.sketch = make_sketch(sketch, self.sketch_size, n, seed=rng)
        self._buf = np.empty((self.sketch_size, d))
        self._model = (None, None)  # (parts, H); H None: self._buf holds parts' sketch
        # A^T g and the sketch in one pass over A's bucket-grouped copy (CountSketch;
        # problems outside the Problem base may lack loss_grad_parts_z)
        self._fused = (isinstance(self.sketch, CountSketch) and self.sketch.reorder
                       and problem.design.sparse and hasattr(problem, "loss_grad_parts_z"))

    def objective_gradient(self, x, z, timings, pre=None):
        """``(f, g, parts)`` at (x, z), the sketch of parts' Hessian made in the pass over A
        that computes g (None where the sketch cannot share it, or f overflows). ``pre``:
        ``loss_grad_parts_z(z)`` when already computed."""
        if not self._fused:
            return None
        prob = self.problem
        f, gz, parts = prob.loss_grad_parts_z(z) if pre is None else pre
        if parts is None:  # the loss overflows: the driver's usual path reports it
            return None
        t0 = time.perf_counter()
        _, Atg = self.sketch.apply_and_rmatvec(prob.design, gz, row_weights=parts.beta_plus(),
                                               out=self._buf)
        self._model = (parts, None)
        timings["sketch"] += time.perf_counter() - t0
        return f + ridge_value(prob.lam, x), Atg + prob.lam * x, parts

    def direction(self, parts, g, timings, shift=0.0, radius=None):
        if self._model[0] is not parts or self._model[1] is None:
            t0 = time.perf_counter()
            if self._model[0] is parts:  # the sketch was made with the gradient
                H = hessian_from_sketch(self._buf, self.problem.design, parts,
                                        ridge=self.problem.lam)
            else:
                H = sketched_gram(self.problem.design, parts, self.sketch,
                                  ridge=self.problem.lam, out=self._buf)
            _subtract_negative_part(H, self.problem, parts, self.sketch)
            self._model = (parts, H)
            timings["sketch"] += time.perf_counter() - t0
        direc = self._solve(self._model[1], g, timings, shift, radius)
        direc.sketch_size = self.sketch_size
        direc.subspace = radius is None
        return direc


class SampleStep(_FactoredStep):
    """Approximate Newton direction from leverage-score row sampling of diag(sqrt(beta_+)) A.

    The papers' algorithm: every step computes approximate (ridge) leverage scores of
    diag(sqrt(beta_+)) A (a SparseSign sketch, an SVD and a JL projection, see
    :func:`~fastnewton.sketch.leverage_scores`), samples ``sketch_size`` rows
    (default :meth:`RowSampler.default_size`) with replacement and uses the Gram of the
    rescaled rows plus the exact low-rank part. The rows are re-sampled at every step
    (beta, hence the leverage scores, change with x) from a stream derived from the
    solve's seed: same seed, same iterates; a resumed solve draws the stream afresh.
    """

    name = "sample"

    def __init__(self, problem, rng, sketch, sketch_size):
        n, d = problem.n, problem.d
        m = RowSampler.default_size(n, d) if sketch_size is None else sketch_size
        check_scalar(m, "sketch_size", low=1, integer=True)
        self.problem = problem
        self.sketch_size = int(m)
        self.rng = rng
        self._model = (None, None)

    def direction(self, parts, g, timings, shift=0.0, radius=None):
        if self._model[0] is not parts:  # a new point: a new sample
            t0 = time.perf_counter()
            beta = parts.beta
            # where beta has negative mass, rows are sampled by the leverage of
            # diag(sqrt|beta|) A and keep their sign (the model is indefinite there too)
            weights = (np.abs(beta) if _sketches_negative_part(self.problem, parts)
                       else parts.beta_plus())
            S = leverage_sampler(self.problem.design, self.sketch_size, row_weights=weights,
                                 seed=self.rng, ridge=ridge_scalar(self.problem.lam))
            H = sketched_gram(self.problem.design, parts, S, ridge=self.problem.lam)
            _subtract_negative_part(H, self.problem, parts, S)
            self._model = (parts, H)
            timings["sketch"] += time.perf_counter() - t0
        direc = self._solve(self._model[1], g, timings, shift, radius)
        direc.sketch_size = self.sketch_size
        return direc


def _sketches_negative_part(problem, parts):
    """Whether the sketched models represent beta_- = max(-beta, 0) too.

    Where beta has negative mass and B = diag(beta) has no low-rank part (exp/cosh/sinh,
    GLMs, separable losses), or the problem says it is non-convex (``problem.convex``
    False), or the negative mass is at least ``NEGATIVE_MASS`` of the positive one
    (``sum beta_- >= 0.5 sum beta_+``: the diagonal part is far from positive
    semi-definite). A small negative beta beside a low-rank part (softmax-type losses)
    is mostly an artifact of the split B = diag(beta) + U C U^T, compensated by the
    exact low-rank part: sketching it would only add variance, so the model stays
    diag(beta_+) + U C U^T there.
    """
    beta = parts.beta
    if not (beta < 0).any():
        return False
    if parts.U is None or getattr(problem, "convex", None) is False:
        return True
    minus = float(np.maximum(-beta, 0.0).sum())
    return minus >= NEGATIVE_MASS * float(np.maximum(beta, 0.0).sum())


#: See :func:`_sketches_negative_part`.
NEGATIVE_MASS = 0.5


def _subtract_negative_part(H, problem, parts, sketch):
    """H -= (S D_-^{1/2} A)^T (S D_-^{1/2} A) with beta_- = max(-beta, 0), in place, for
    the same sketch S as the positive part (see :func:`_sketches_negative_part` for
    where): the sketched model then approximates A^T diag(beta) A itself, negative
    curvature included, and the driver handles it as the exact indefinite model."""
    if not _sketches_negative_part(problem, parts):
        return H
    design = problem.design
    beta_minus = np.maximum(-parts.beta, 0.0)
    H -= tall_gram(sketch.apply(design, row_weights=beta_minus))
    H += H.T
    H *= 0.5
    return H


class NewtonCG:
    r"""What the Newton-CG step models (``pcg``, ``wide``) share: forcing terms, the CG
    solve with the image A p of its direction, and the test that asks for a new
    preconditioner.

    **Forcing terms.** CG stops at :math:`\|H p + g\| \le \eta_k \|g\|` with
    :math:`\eta_k = \min(0.5, \|g_k\| / \|g_0\|)` (quadratic convergence, Dembo,
    Eisenstat & Steihaug), but never tighter than ``0.1 gtol / ‖g_k‖`` (capped at 0.5)
    where the driver's gradient target ``gtol = tol ‖g_0‖`` is known: a residual ten
    times below the target leaves nothing for a tighter solve to gain.
    """

    #: Ask for a new preconditioner when iterations per decade grow by this factor ...
    refactor_ratio = 1.5
    #: ... and the last solve took more than this many iterations.
    refactor_min_iters = 6
    _g0norm = None
    _gtol = 0.0
    _base_rate = None
    _last = (0, 0.0)  # (iterations, decades) of the last solve

    def start(self, g0norm, gtol):
        """The driver's reference gradient norm and absolute gradient target."""
        self._g0norm = g0norm if g0norm > 0 else 1.0
        self._gtol = float(gtol)

    def _forcing(self, gnorm):
        if self._g0norm is None:  # used without the driver: the first gradient
            self._g0norm = gnorm if gnorm > 0 else 1.0
        eta = min(0.5, gnorm / self._g0norm)
        if gnorm > 0 and self._gtol > 0:
            eta = max(eta, min(0.5, 0.1 * self._gtol / gnorm))
        return eta

    def _needs_new_preconditioner(self):
        nit, decades = self._last
        if self._base_rate is None or nit <= self.refactor_min_iters:
            return False
        return nit / max(decades, 1.0) > self.refactor_ratio * self._base_rate

    def _newton_cg(self, H, g, M, eta):
        """``(res, p)``: CG on H p = -g; ``p = -M g`` where the first direction already
        has non-positive curvature (``res.image`` is then not p's image)."""
        # one BLAS thread (already so inside minimize): the CG's vector work is small, its
        # products are numba kernels, and a second OpenBLAS thread competes with numba's
        # spinning workers for the cores (measured 2-5x slower per CG iteration on 2 cores)
        with solver_blas(H.shape[0]):
            res = newton_cg(H, g, rtol=eta, maxiter=self.maxiter, M=M)
            p = -M.matvec(g) if res.negative_curvature and res.nit == 0 else res.x
        decades = float(np.log10(max(res.residual_norms[0], 1e-300)
                                 / max(res.residual_norms[-1], 1e-300)))
        self._last = (res.nit, decades)
        if self._base_rate is None and res.nit > 0:
            self._base_rate = res.nit / max(decades, 1.0)
        return res, p

    @staticmethod
    def _image(res, p):
        """(A p, its error bound) where CG summed it for this p, else (None, 0)."""
        if res.negative_curvature and res.nit == 0:
            return None, 0.0
        return res.image, res.image_err


class PcgStep(NewtonCG):
    r"""Inexact Newton direction by CG on the exact Hessian, preconditioned by a sketch.

    Each step solves :math:`H p = -g` with :math:`H = A^T B A + \lambda I` applied
    matrix-free (:class:`~fastnewton.hessian.HessianOperator`, one pass over A per CG
    iteration) by :func:`~fastnewton.linalg.pcg`, preconditioned by the Cholesky
    factor of the sketched Hessian (:class:`~fastnewton.hessian.SketchPreconditioner`,
    one sketch drawn from ``rng`` and kept for the whole solve).

    **Forcing terms** as :class:`NewtonCG`: the outer iteration converges quadratically
    near a non-degenerate minimizer while early steps stay cheap. The image ``A p`` of
    the direction comes with it (the line search needs no pass over A for it).

    **Preconditioner reuse.** The factor is kept across Newton steps (beta changes
    little between them) and re-sketched for the current beta (``update``) when the
    last CG solve needed more than ``refactor_ratio`` times the iterations per decade
    of residual reduction of the first solve after the previous re-factorization (and
    more than ``refactor_min_iters`` iterations). ``history["sketch_size"]`` is the
    sketch size on steps that (re-)sketched and 0 on steps that reused the factor;
    ``history["inner_iters"]`` counts CG iterations.

    **Negative curvature.** Where H is indefinite (non-convex regime) CG stops at the
    first direction of non-positive curvature and the current CG iterate is used; if
    that happens at the first iteration the preconditioned steepest-descent direction
    :math:`-M g` is used. Both are descent directions; the globalization takes over.
    """

    name = "pcg"
    accepts_shift = True
    accepts_radius = True

    def __init__(self, problem, rng, sketch, sketch_size):
        n, d = problem.n, problem.d
        m = _sketch_rows(sketch, sketch_size, n, d)
        check_scalar(m, "sketch_size", low=1, integer=True)
        self.problem = problem
        self.sketch_size = int(m)
        self.sketch = make_sketch(sketch, self.sketch_size, n, seed=rng)
        self.maxiter = max(50, min(d, 500))
        self.precond = None
        self._operator = (None, None)

    def direction(self, parts, g, timings, shift=0.0, radius=None):
        problem = self.problem
        gnorm = float(np.linalg.norm(g))
        ridge = problem.lam + shift
        t0 = time.perf_counter()
        if self._operator[0] is not parts:
            self._operator = (parts, HessianOperator(problem.design, parts, ridge=problem.lam))
        H = self._operator[1]
        if shift:
            H = H.with_ridge(ridge)
        timings["assemble"] += time.perf_counter() - t0
        resketched = refactored = False
        if self.precond is None:
            self.precond = SketchPreconditioner(problem.design, parts, self.sketch, ridge=ridge)
            resketched = True
        elif self._needs_new_preconditioner():
            self.precond.update(parts, ridge=ridge)
            resketched = True
        elif not np.array_equal(ridge, self.precond.ridge):
            self.precond.update(ridge=ridge)
            refactored = True
        if resketched:
            timings["sketch"] += self.precond.sketch_time
            self._base_rate = None
        if resketched or refactored:
            timings["factor"] += self.precond.factor_time
        eta = self._forcing(gnorm)
        t0 = time.perf_counter()
        if radius is not None:  # Steihaug CG in the trust region (M^{-1}-norm)
            tr = steihaug_cg(H, g, radius, M=self.precond, rtol=eta, maxiter=self.maxiter)
            timings["solve"] += time.perf_counter() - t0
            self._last = (tr.nit, 1.0)
            return Direction(tr.s, shift=self.precond.shift + shift, inner_iters=tr.nit,
                             sketch_size=self.sketch_size if resketched else 0,
                             indefinite=tr.negative_curvature,
                             model_value=tr.model_value, step_norm=tr.step_norm)
        res, p = self._newton_cg(H, g, self.precond, eta)
        # a Hessian that may be indefinite (beta_- represented, see _sketches_negative_part)
        # is handled in a trust region by Steihaug CG (globalization "auto"), whatever CG
        # met on its Krylov space
        indefinite = bool(res.negative_curvature) or _sketches_negative_part(problem, parts)
        # ‖p‖ in the preconditioner's M^{-1}-norm, the norm Steihaug CG measures radii in
        step_norm = float(np.linalg.norm(self.precond._fac.factor @ p))
        timings["solve"] += time.perf_counter() - t0
        Ap, image_err = self._image(res, p)
        return Direction(p, shift=self.precond.shift + shift, inner_iters=res.nit,
                         sketch_size=self.sketch_size if resketched else 0,
                         indefinite=indefinite, step_norm=step_norm, Ap=Ap,
                         image_err=image_err)


from ._wide import WideStep  # noqa: E402  (it builds on Direction above)

#: Registry of step models by method name (``minimize(method=...)``).
STEP_MODELS = {"exact": ExactStep, "sketch": SketchStep, "sample": SampleStep, "pcg": PcgStep,
               "wide": WideStep}
