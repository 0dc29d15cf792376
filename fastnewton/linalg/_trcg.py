"""Steihaug-Toint truncated CG for the trust-region subproblem."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_scalar, check_vector
from ..exceptions import ValidationError
from ._pcg import _as_operator

__all__ = ["steihaug_cg", "SteihaugResult"]


@dataclass(frozen=True)
class SteihaugResult:
    r"""Result of :func:`steihaug_cg`.

    Attributes
    ----------
    s : ndarray (d,)
        The step.
    model_value : float
        :math:`m(s) = g^T s + \tfrac12 s^T H s` (from the recurrence, no extra product);
        always <= 0.
    nit : int
        Products with H.
    on_boundary : bool
        ``‖s‖_M = radius`` (the step was truncated by the trust region).
    negative_curvature : bool
        Stopped on a direction p with ``pᵀ H p <= 0`` (then also ``on_boundary``).
    converged : bool
        The residual ``‖g + H s‖`` met the tolerance inside the region.
    step_norm : float
        ``‖s‖_M``, the norm the radius is measured in (``M⁻¹``-norm of the preconditioner).
    """

    s: np.ndarray
    model_value: float
    nit: int
    on_boundary: bool
    negative_curvature: bool
    converged: bool
    step_norm: float


def _to_boundary(sMs, sMp, pMp, radius):
    """tau >= 0 with ‖s + tau p‖_M = radius (sMs <= radius²)."""
    gap = max(radius * radius - sMs, 0.0)
    return (-sMp + np.sqrt(sMp * sMp + pMp * gap)) / pMp


def steihaug_cg(H, g, radius, *, M=None, rtol=0.1, atol=0.0, maxiter=None):
    r"""Approximately minimize the model :math:`m(s) = g^T s + \tfrac12 s^T H s` on a ball.

    Steihaug-Toint truncated conjugate gradients (Conn, Gould & Toint, *Trust-Region
    Methods*, Alg. 7.5.1): preconditioned CG on :math:`H s = -g` from :math:`s_0 = 0`,
    stopped when the residual :math:`\|g + H s_k\|_2 \le \max(\text{rtol}\|g\|_2,
    \text{atol})`, when an iterate would leave the region
    :math:`\|s\|_{M^{-1}} \le \Delta`, or on a direction of non-positive curvature; in the
    last two cases the step goes to the boundary along the current direction. H may be
    indefinite (a non-convex Hessian); the model decreases monotonically along the
    iterates, so :math:`m(s) \le -\tfrac12\|g\|_M \min(\Delta, \ldots)` (Cauchy decrease).

    The region is measured in the norm :math:`\|s\|_{M^{-1}} = (s^T M^{-1} s)^{1/2}` of
    the preconditioner M (an SPD approximation of :math:`H^{-1}`); its norms of the
    iterates are updated by recurrences (no products with :math:`M^{-1}`).

    Parameters
    ----------
    H : LinearOperator, ndarray or sparse matrix, shape (d, d)
        Symmetric (only products ``H @ v``).
    g : array_like (d,)
        Gradient (the linear term).
    radius : float > 0
        Trust-region radius Δ.
    M : LinearOperator, ndarray or sparse matrix, shape (d, d), optional
        SPD preconditioner (approximates :math:`H^{-1}`); the identity by default.
    rtol, atol : float
        Relative (to ‖g‖) and absolute tolerance on the residual; Newton methods pass the
        forcing term here (e.g. ``rtol = min(0.5, sqrt(‖g‖/‖g0‖))`` for superlinear rate).
    maxiter : int, optional
        Most products with H (default ``max(d, 10)``).

    Returns
    -------
    SteihaugResult

    Examples
    --------
    >>> import numpy as np
    >>> H = np.diag([1.0, -1.0])  # indefinite: the step goes to the boundary
    >>> res = steihaug_cg(H, np.array([1.0, 1.0]), radius=2.0)
    >>> bool(res.on_boundary), round(float(np.linalg.norm(res.s)), 12)
    (True, 2.0)
    """
    H = _as_operator(H, "H")
    if H.shape[0] != H.shape[1]:
        raise ValidationError(f"H must be square, got shape {H.shape}")
    d = H.shape[0]
    g = check_vector(g, d, "g")
    radius = float(check_scalar(radius, "radius", low=0.0, low_inclusive=False))
    if M is not None:
        M = _as_operator(M, "M")
        if M.shape != H.shape:
            raise ValidationError(f"M (the preconditioner) has shape {M.shape} but H has "
                                  f"shape {H.shape}")
    check_scalar(rtol, "rtol", low=0.0)
    check_scalar(atol, "atol", low=0.0)
    maxiter = max(d, 10) if maxiter is None else int(
        check_scalar(maxiter, "maxiter", low=1, integer=True))

    def precond(r):
        return r.copy() if M is None else np.asarray(M.matvec(r), dtype=np.float64).reshape(-1)

    s = np.zeros(d)
    r = g.copy()
    tol = max(float(rtol) * float(np.linalg.norm(g)), float(atol))
    if float(np.linalg.norm(r)) <= tol:
        return SteihaugResult(s, 0.0, 0, False, False, True, 0.0)
    y = precond(r)
    ry = float(r @ y)
    if not ry > 0:
        raise ValidationError(f"M is not positive definite: g^T M g = {ry:.3e}")
    p = -y
    sMs, sMp, pMp = 0.0, 0.0, ry  # M⁻¹-inner products of s and p
    model = 0.0
    for nit in range(1, maxiter + 1):
        Hp = np.asarray(H.matvec(p), dtype=np.float64).reshape(-1)
        kappa = float(p @ Hp)
        if not kappa > 0:
            tau = _to_boundary(sMs, sMp, pMp, radius)
            model += -tau * ry + 0.5 * tau * tau * kappa
            return SteihaugResult(s + tau * p, model, nit, True, True, False, radius)
        alpha = ry / kappa
        if sMs + 2.0 * alpha * sMp + alpha * alpha * pMp >= radius * radius:
            tau = _to_boundary(sMs, sMp, pMp, radius)
            model += -tau * ry + 0.5 * tau * tau * kappa
            return SteihaugResult(s + tau * p, model, nit, True, False, False, radius)
        s += alpha * p
        r += alpha * Hp
        model -= 0.5 * alpha * ry  # m(s + αp) = m(s) − α rᵀy + ½α²κ with rᵀp = −rᵀy
        sMs += 2.0 * alpha * sMp + alpha * alpha * pMp
        if float(np.linalg.norm(r)) <= tol:
            return SteihaugResult(s, model, nit, False, False, True, float(np.sqrt(sMs)))
        y = precond(r)
        ry_new = float(r @ y)
        if not ry_new > 0:
            raise ValidationError(f"M is not positive definite: r^T M r = {ry_new:.3e}")
        beta = ry_new / ry
        ry = ry_new
        sMp = beta * (sMp + alpha * pMp)
        pMp = ry + beta * beta * pMp
        p *= beta
        p -= y
    return SteihaugResult(s, model, maxiter, False, False, False, float(np.sqrt(max(sMs, 0.0))))
