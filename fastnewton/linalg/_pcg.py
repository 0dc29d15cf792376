"""Preconditioned conjugate gradients with scipy's vocabulary and a result object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import aslinearoperator

from .._validation import check_scalar, check_vector
from ..exceptions import ValidationError
from ._design import axpy_max_abs

__all__ = ["pcg", "PCGResult"]

_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class PCGResult:
    """Result of :func:`pcg`.

    Attributes
    ----------
    x : ndarray (d,)
        Last iterate.
    nit : int
        Iterations taken (products with A, not counting one for a non-zero ``x0``).
    residual_norms : ndarray (nit + 1,)
        ``‖r_k‖₂`` of the recurrence residual ``r_k = b - A x_k`` (entry 0 from ``x0``).
    converged : bool
        ``residual_norms[-1] <= max(rtol ‖b‖, atol)``.
    negative_curvature : bool
        Stopped because a search direction p had ``pᵀ A p <= 0`` (A not positive
        definite); ``x`` is the iterate before that direction.
    direction : ndarray (d,) or None
        The direction of non-positive curvature when ``negative_curvature``.
    image : ndarray (n,) or None
        Only from :func:`newton_cg`: the image ``A x`` of the returned iterate under the
        Hessian operator's design (the sum of the CG directions' images, no extra pass
        over A); None elsewhere.
    image_err : float
        A bound on the rounding error of ``image`` in the max norm (0 without one).
    """

    x: np.ndarray
    nit: int
    residual_norms: np.ndarray
    converged: bool
    negative_curvature: bool = False
    direction: np.ndarray | None = None
    image: np.ndarray | None = None
    image_err: float = 0.0

    @property
    def iterations(self):
        """Alias of ``nit``."""
        return self.nit

    @property
    def residual_norm(self):
        """Final ``‖r‖₂`` (of the recurrence)."""
        return float(self.residual_norms[-1])


def _as_operator(M, name):
    try:
        return aslinearoperator(M)
    except TypeError:
        raise TypeError(f"{name} must be a matrix or a scipy LinearOperator, "
                        f"got {type(M).__name__}") from None


def pcg(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None):
    r"""Solve :math:`A x = b` for symmetric positive definite A by preconditioned CG.

    Iterates until :math:`\|b - A x_k\|_2 \le \max(\text{rtol}\,\|b\|_2, \text{atol})`
    (scipy's ``cg`` criterion, on the recurrence residual). Each iteration costs one
    product with A, one with M and O(d) vector work.

    **Negative curvature.** If a search direction p has :math:`p^T A p \le 0`, or a
    positive curvature :math:`p^T A p / p^T p` below eps times the largest seen so far
    (A is indefinite or singular, e.g. a non-convex Hessian or a zero column; the step
    along p would be a rounding error blown up), the iteration stops there and
    returns the current iterate with ``negative_curvature=True`` and p in
    ``direction``. From ``x0 = 0`` every iterate before it is a descent direction for
    the quadratic :math:`\tfrac12 x^T A x - b^T x`, which is what Newton-CG uses.

    Parameters
    ----------
    A : LinearOperator, ndarray or sparse matrix, shape (d, d)
        Symmetric positive definite (only products ``A @ v`` are used).
    b : array_like (d,)
    x0 : array_like (d,), optional
        Start (zeros by default).
    rtol, atol : float
        Relative and absolute tolerance on the residual norm.
    maxiter : int, optional
        Most iterations (default ``10 d``).
    M : LinearOperator, ndarray or sparse matrix, shape (d, d), optional
        Symmetric positive definite approximation of :math:`A^{-1}` (e.g. a
        :class:`~fastnewton.hessian.SketchPreconditioner`).
    callback : callable, optional
        ``callback(xk)`` after each iteration.

    Returns
    -------
    PCGResult

    Examples
    --------
    >>> import numpy as np
    >>> res = pcg(np.diag([1.0, 2.0, 4.0]), np.ones(3), rtol=1e-12)
    >>> res.converged, np.allclose(res.x, [1.0, 0.5, 0.25])
    (True, True)
    """
    A = _as_operator(A, "A")
    if A.shape[0] != A.shape[1]:
        raise ValidationError(f"A must be square, got shape {A.shape}")
    d = A.shape[0]
    b = check_vector(b, d, "b")
    if M is not None:
        M = _as_operator(M, "M")
        if M.shape != A.shape:
            raise ValidationError(f"M (the preconditioner) has shape {M.shape} but A has "
                                  f"shape {A.shape}")
    check_scalar(rtol, "rtol", low=0.0)
    check_scalar(atol, "atol", low=0.0)
    maxiter = 10 * d if maxiter is None else int(check_scalar(maxiter, "maxiter", low=0,
                                                              integer=True))
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")

    if x0 is None:
        x = np.zeros(d)
        r = b.copy()
    else:
        x = check_vector(x0, d, "x0").copy()
        r = b - np.asarray(A.matvec(x), dtype=np.float64).reshape(-1)
    tol = max(float(rtol) * float(np.linalg.norm(b)), float(atol))

    def product(p):
        return np.asarray(A.matvec(p), dtype=np.float64).reshape(-1), None

    return _cg(product, x, r, M, tol, maxiter, callback)


def newton_cg(H, g, *, rtol, maxiter, M=None):
    r"""The inexact Newton direction: CG on :math:`H p = -g` from p = 0, with its image.

    As :func:`pcg` (same iterates, same stopping test ``‖H p + g‖ <= rtol ‖g‖``), for a
    :class:`~fastnewton.hessian.HessianOperator` ``H``: each product also yields the
    image ``A q`` of the CG direction q (the fused pass computes it anyway), and the
    result carries ``image = A p = Σ α_k A q_k`` with a bound ``image_err`` on its
    rounding error (``nit · eps · Σ |α_k| ‖A q_k‖∞``), so the line search needs no
    pass over A for ``A p``. Internal: no input validation beyond :func:`pcg`'s
    assumptions (float64 ``g`` of length ``H.shape[0]``, ``M`` a LinearOperator).
    """
    d = H.shape[0]
    x = np.zeros(d)
    r = -np.asarray(g, dtype=np.float64)
    tol = float(rtol) * float(np.linalg.norm(r))
    return _cg(H.matvec_image, x, r, M, tol, maxiter, None, image_size=H.design.n)


def _cg(product, x, r, M, tol, maxiter, callback, image_size=None):
    """The CG loop of :func:`pcg` and :func:`newton_cg` from iterate x with residual r.
    ``product(p)`` returns ``(H p, A p or None)``; with ``image_size`` the images of the
    directions are summed into the iterate's image."""
    rnorm = float(np.linalg.norm(r))
    history = [rnorm]
    image = None if image_size is None else np.zeros(image_size)
    image_abs = 0.0  # Σ |α_k| ‖A q_k‖∞

    def result(nit, converged, negative=False, direction=None):
        err = 0.0 if image is None else max(nit, 1) * _EPS * image_abs
        return PCGResult(x, nit, np.asarray(history), converged, negative, direction,
                         image, err)

    if rnorm <= tol:
        return result(0, True)
    z = r if M is None else np.asarray(M.matvec(r), dtype=np.float64).reshape(-1)
    rz = float(r @ z)
    if not rz > 0:
        raise ValidationError(f"M is not positive definite: r^T M r = {rz:.3e}")
    p = z.copy()
    converged = False
    nit = 0
    curv = 0.0  # the largest Rayleigh quotient p^T A p / p^T p so far (<= ‖A‖)
    for nit in range(1, maxiter + 1):
        q, t = product(p)
        pq, pp = float(p @ q), float(p @ p)
        # non-positive curvature, or positive only at the rounding level of the largest
        # curvature seen (A singular: the step length would explode)
        if not pq > _EPS * pp * curv:
            return result(nit - 1, False, True, p)
        curv = max(curv, pq / pp)
        alpha = rz / pq
        x += alpha * p
        if image is not None:
            image_abs += abs(alpha) * axpy_max_abs(alpha, t, image)
        r -= alpha * q
        rnorm = float(np.linalg.norm(r))
        history.append(rnorm)
        if callback is not None:
            callback(x)
        if rnorm <= tol:
            converged = True
            break
        z = r if M is None else np.asarray(M.matvec(r), dtype=np.float64).reshape(-1)
        rz_new = float(r @ z)
        if not rz_new > 0:
            raise ValidationError(f"M is not positive definite: r^T M r = {rz_new:.3e}")
        p *= rz_new / rz
        p += z
        rz = rz_new
    return result(nit, converged)
