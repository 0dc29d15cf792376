"""The wide step model: matrix-free Newton-CG for d from 1e4 to 1e6 and beyond.

Registered as ``method="wide"`` in :data:`fastnewton._steps.STEP_MODELS`. A step costs
a few passes over A per CG iteration plus O(d) (Jacobi) or O(k d) (Nyström) work, in
memory O(nnz + k d): nothing d x d or m x d with m ~ d is ever allocated.
"""

from __future__ import annotations

import time

import numpy as np

from ._steps import Direction, NewtonCG
from ._validation import check_scalar
from .exceptions import ValidationError
from .hessian import DiagonalPreconditioner, HessianOperator, ScaledNystromPreconditioner
from .linalg._design import ridge_value

__all__ = ["WideStep"]


class WideStep(NewtonCG):
    r"""Inexact Newton direction by CG on the exact Hessian, with an O(d) or O(k d) preconditioner.

    Each step solves :math:`H p = -g`, :math:`H = A^T B A + \lambda I`, by
    :func:`~fastnewton.linalg.pcg` on the matrix-free
    :class:`~fastnewton.hessian.HessianOperator` (one fused pass over A per iteration,
    plus the low-rank part of the family's Hessian parts in O(n k)).

    **Preconditioner.** By default (``sketch_size=None``) the Jacobi preconditioner
    :class:`~fastnewton.hessian.DiagonalPreconditioner`: the diagonal of
    :math:`A^T B_+ A + \lambda I`, one pass over A, recomputed at every step. With
    ``sketch_size=k`` the low-rank-plus-diagonal
    :class:`~fastnewton.hessian.ScaledNystromPreconditioner` of rank k (k Hessian
    products to build, O(k d) memory), kept across steps and rebuilt for the current
    Hessian when the last CG solve needed more than ``refactor_ratio`` times the
    iterations per decade of residual reduction of the first solve after the previous
    build (as :class:`~fastnewton._steps.PcgStep` re-sketches).

    **Forcing terms** as :class:`~fastnewton._steps.NewtonCG`: CG stops at
    :math:`\|H p + g\| \le \eta_k \|g\|`, :math:`\eta_k = \min(0.5, \|g_k\| / \|g_0\|)`
    (not below what the driver's gradient target needs), at most
    ``max(50, min(d, 500))`` iterations. The direction carries its image ``A p``, summed
    from the CG directions' images, so a Newton step costs one pass over A for the
    gradient (and the Jacobi diagonal) plus one per CG iteration.

    **Negative curvature.** CG stops at the first direction of non-positive curvature
    and returns the current iterate; at the first iteration the preconditioned gradient
    :math:`-M g` is used. ``history["inner_iters"]`` counts CG iterations and
    ``history["sketch_size"]`` is k on steps that (re)built a Nyström preconditioner.
    """

    name = "wide"
    accepts_shift = True

    def __init__(self, problem, rng, sketch, sketch_size):
        d = problem.d
        if sketch_size is not None:
            check_scalar(sketch_size, "sketch_size", low=1, integer=True)
            if sketch_size > d:
                raise ValidationError(
                    f"sketch_size (the rank of the Nystrom preconditioner of method='wide') "
                    f"must be at most d = {d}, got {sketch_size}")
        self.problem = problem
        self.rng = rng
        self.rank = None if sketch_size is None else int(sketch_size)
        self.maxiter = max(50, min(d, 500))
        self._operator = (None, None)
        self._precond = (None, None)

    def _preconditioner(self, parts, H, timings):
        """(M, rebuilt) for the current parts: Jacobi every step, Nyström while it works."""
        problem = self.problem
        held_parts, M = self._precond
        if self.rank is None:
            if held_parts is not parts:
                M = DiagonalPreconditioner(problem.design, parts, problem.lam, AU=H._AU)
                timings["assemble"] += M.build_time
                self._precond = (parts, M)
            return M, False
        if M is None or (held_parts is not parts and self._needs_new_preconditioner()):
            M = ScaledNystromPreconditioner(problem.design, parts, self.rank, problem.lam,
                                            seed=self.rng)
            timings["sketch"] += M.build_time
            self._precond = (parts, M)
            self._base_rate = None
            return M, True
        return M, False

    def objective_gradient(self, x, z, timings, pre=None):
        """``(f, g, parts)`` at (x, z) with the Jacobi preconditioner's diagonal computed
        in the gradient's pass over A (not with low-rank Hessian parts; None, the driver's
        usual path, with a Nyström preconditioner or an overflowing loss). ``pre``:
        ``loss_grad_parts_z(z)`` when already computed."""
        prob = self.problem
        if self.rank is not None or not hasattr(prob, "loss_grad_parts_z"):
            return None
        f, gz, parts = prob.loss_grad_parts_z(z) if pre is None else pre
        if parts is None:
            return None
        if parts.U is not None:
            return f + ridge_value(prob.lam, x), prob.design.rmatvec(gz) + prob.lam * x, parts
        Atg, diag = prob.design.rmatvec_diag(gz, parts.beta_plus())
        diag += prob.lam
        self._precond = (parts, DiagonalPreconditioner.from_diagonal(diag))
        return f + ridge_value(prob.lam, x), Atg + prob.lam * x, parts

    def direction(self, parts, g, timings, shift=0.0):
        problem = self.problem
        gnorm = float(np.linalg.norm(g))
        t0 = time.perf_counter()
        if self._operator[0] is not parts:
            self._operator = (parts, HessianOperator(problem.design, parts, ridge=problem.lam))
        H = self._operator[1]
        if shift:
            H = H.with_ridge(problem.lam + shift)
        timings["assemble"] += time.perf_counter() - t0
        M, rebuilt = self._preconditioner(parts, H, timings)
        if shift and isinstance(M, DiagonalPreconditioner):
            M = M.with_shift(shift)
        eta = self._forcing(gnorm)
        t0 = time.perf_counter()
        res, p = self._newton_cg(H, g, M, eta)
        timings["solve"] += time.perf_counter() - t0
        Ap, image_err = self._image(res, p)
        return Direction(p, inner_iters=res.nit, sketch_size=self.rank if rebuilt else 0,
                         Ap=Ap, image_err=image_err)
