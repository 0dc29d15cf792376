"""Factor of a d x d model Hessian that may be indefinite, and its trust-region steps.

:class:`ModelFactor` works on the Jacobi-scaled matrix ``Hs = D^{-1/2} H D^{-1/2}``
(``D = |diag H|``), so that its decisions (positive definite or not, how negative the
curvature is) do not depend on the scale of single coordinates: a row of A whose
curvature is 1e40 cannot hide the O(1) curvature of the others, as a shift sized by
``max|diag H|`` does. Where the Cholesky factor of ``Hs`` exists (all pivots above
``PIVOT_RTOL``) the Newton step is a triangular solve; otherwise the eigendecomposition
of ``Hs`` (the same O(d³) as the factor) gives the exact trust-region step in the scaled
norm ``‖D^{1/2} p‖`` (Moré & Sorensen 1983; the hard case included): the shift it
applies is sized by the most negative eigenvalue, and its step has a component along the
direction of most negative curvature where the gradient has none.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._threads import blas_for

__all__ = ["ModelFactor", "PIVOT_RTOL", "NEG_RTOL"]

#: Smallest squared Cholesky pivot of the Jacobi-scaled matrix (unit diagonal) accepted
#: as positive definite.
PIVOT_RTOL = 1e-10
#: Eigenvalues of the scaled model above ``-NEG_RTOL * max|eig|`` count as zero curvature.
NEG_RTOL = 1e-10


class ModelFactor:
    """Factor of a symmetric (possibly indefinite) model Hessian H.

    Attributes
    ----------
    positive_definite : bool
        The Cholesky factor of the scaled matrix exists with pivots above ``PIVOT_RTOL``.
    lam_min : float
        Smallest eigenvalue of the scaled matrix (computed only when not positive
        definite; ``nan`` otherwise).
    scale : ndarray (d,)
        ``D^{-1/2}``: the step in scaled coordinates is ``q = p / scale``.
    null : ndarray of bool (d,)
        Coordinates whose row of H is exactly zero (no curvature at all, e.g. a column
        of A that is zero, without ridge). The model gives them unit curvature: their
        step is ``-g_j``, exactly 0 where the gradient is 0 (so such a coefficient stays
        where it started, as the minimum-norm solution does).
    """

    def __init__(self, H):
        H = np.asarray(H, dtype=np.float64)
        if not np.isfinite(H).all():
            raise FloatingPointError("the Hessian contains NaN or infinite entries")
        d = H.shape[0]
        dg = np.abs(np.diag(H)).copy()
        # coordinates without any curvature (a zero column of A and no ridge): unit
        # curvature in their own units, so that a zero gradient there gives an exactly
        # zero step (the minimum-norm choice) instead of a rounding error blown up by
        # the scaling, and a nonzero one a gradient step for the line search to size
        self.null = ~H.any(axis=1)
        dg[self.null] = 1.0
        top = float(dg.max()) if d else 1.0
        dg[dg <= 1e-300 + 1e-30 * top] = max(1e-30 * top, 1e-300) if top > 0 else 1.0
        self.scale = 1.0 / np.sqrt(dg)
        Hs = self.scale[:, None] * H * self.scale[None, :]
        Hs[self.null, self.null] = 1.0
        self.chol = None
        self.eig = None
        self.lam_min = float("nan")
        try:
            with blas_for(d ** 3 / 3):
                c = sla.cholesky(Hs, lower=False, check_finite=False)
            if d == 0 or float(np.min(np.diag(c))) ** 2 > PIVOT_RTOL:
                self.chol = c
        except np.linalg.LinAlgError:
            pass
        if self.chol is None:
            with blas_for(4 * d ** 3):
                w, V = np.linalg.eigh(Hs)
            self.eig = (w, V)
            self.lam_min = float(w[0])

    @property
    def positive_definite(self):
        return self.chol is not None

    def newton(self, g):
        """``-H^{-1} g`` (positive definite models only)."""
        gs = self.scale * g
        q = sla.cho_solve((self.chol, False), -gs, check_finite=False)
        return self.scale * q

    @property
    def negative_curvature(self):
        """The scaled model has an eigenvalue below ``-NEG_RTOL * max|eig|`` (not just a
        numerically zero one)."""
        if self.eig is None:
            return False
        w = self.eig[0]
        return bool(w[0] < -NEG_RTOL * max(float(np.abs(w).max()), 1e-300))

    def default_radius(self, g):
        """The radius an indefinite or singular model's step is sized by when no trust
        region is given: ``min(‖gs‖ / |lam_min|, 10 × Cauchy length)`` in the scaled norm
        (gs = D^{-1/2} g): where the most negative curvature balances the slope, and no
        more than ten steepest-descent minimizers along gs (eigenvalues within rounding
        of zero, as in a badly scaled model, do not make it unbounded)."""
        w, V = self.eig
        gs = self.scale * g
        gn = float(np.linalg.norm(gs))
        wmax = max(float(np.abs(w).max()), 1e-300)
        radius = gn / max(abs(self.lam_min), NEG_RTOL * wmax)
        c = V.T @ gs
        curv = float(c @ (w * c))
        if curv > 0:
            radius = min(radius, 10.0 * gn ** 3 / curv)
        return radius

    def trust_region(self, g, radius):
        """Exact minimizer of ``g^T p + p^T H p / 2`` on ``‖p / scale‖ <= radius``.

        Returns ``(p, sigma, model)``: the step, the shift of the scaled matrix
        (``(Hs + sigma I) q = -gs``, sigma >= max(0, -lam_min)) and the model's value at p.
        """
        if self.eig is None:  # positive definite: Newton if inside, else the secular eq.
            p = self.newton(g)
            if np.linalg.norm(p / self.scale) <= radius:
                return p, 0.0, 0.5 * float(g @ p)
            with blas_for(4 * self.chol.shape[0] ** 3):
                Hs = self.chol.T @ self.chol
                self.eig = np.linalg.eigh(Hs)
            self.lam_min = float(self.eig[0][0])
        w, V = self.eig
        gs = self.scale * g
        c = V.T @ gs
        q, sigma = _secular(w, c, V, radius)
        model = float(c @ (V.T @ q)) + 0.5 * float(q @ (V @ (w * (V.T @ q))))
        return self.scale * q, sigma, model


def _secular(w, c, V, radius):
    """q minimizing c.(V^T q) + q^T V diag(w) V^T q / 2 on ‖q‖ <= radius, and its shift."""
    w0 = float(w[0])
    tiny = 1e-14 * max(1.0, float(np.abs(w).max()))
    lo = max(0.0, -w0)

    def norm_at(sigma):
        den = w + sigma
        return float(np.sqrt(np.sum((c / den) ** 2)))

    if w0 > tiny and norm_at(0.0) <= radius:
        return -(V @ (c / w)), 0.0
    # hard case: the gradient has (almost) no component along the lowest eigenvectors
    low = w <= w0 + tiny
    cnorm = float(np.linalg.norm(c))
    if float(np.linalg.norm(c[low])) <= 1e-10 * max(cnorm, 1e-300):
        sigma = lo + tiny
        den = np.where(low, np.inf, w + sigma)
        coef = -c / den
        nq = float(np.linalg.norm(coef))
        if nq <= radius:
            tau = np.sqrt(max(radius * radius - nq * nq, 0.0))
            return V @ coef + tau * V[:, 0], sigma  # the model is even along V[:, 0]
    # easy case: Newton on 1/‖q(sigma)‖ - 1/radius (concave, increasing) from the left
    a = lo + tiny
    b = lo + max(cnorm / radius, tiny) + float(np.abs(w).max())
    sigma = a
    for _ in range(100):
        den = w + sigma
        qn = float(np.sqrt(np.sum((c / den) ** 2)))
        if abs(qn - radius) <= 1e-10 * radius:
            break
        if qn > radius:
            a = sigma
        else:
            b = sigma
        dqn = -float(np.sum(c * c / den ** 3)) / qn  # d‖q‖/dsigma < 0
        new = sigma + (1.0 / qn - 1.0 / radius) * qn * qn / dqn if dqn < 0 else b
        if not (a < new < b):
            new = 0.5 * (a + b)
        if new == sigma:
            break
        sigma = new
    return -(V @ (c / (w + sigma))), sigma
