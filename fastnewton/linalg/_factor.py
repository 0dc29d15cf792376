"""Factorization helpers: Cholesky that never crashes on an indefinite matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .._threads import blas_for

__all__ = ["shifted_cholesky", "FactorizationResult"]


@dataclass(frozen=True)
class FactorizationResult:
    """Cholesky factor of ``H + shift * I`` (lower=False: ``factor`` is upper triangular)."""

    factor: np.ndarray
    shift: float
    attempts: int

    def solve(self, b):
        """Return ``(H + shift I)^{-1} b``."""
        return sla.cho_solve((self.factor, False), b, check_finite=False)


def shifted_cholesky(H, *, initial_shift=None, max_attempts=60):
    """Cholesky of H, adding the smallest tried multiple of I that makes it positive definite.

    Tries ``H`` itself first, then ``H + tau I`` with tau starting at
    ``1e-10 * max|diag(H)|`` (or ``initial_shift``) and growing tenfold each try
    (Nocedal & Wright, Algorithm 3.3). Singular (rank-deficient A, lam = 0) and
    indefinite (non-convex regime) Hessians both end in a usable factor.

    Returns
    -------
    FactorizationResult
        The factor, the shift used (0.0 when none was needed) and the number of tries.
    """
    H = np.asarray(H, dtype=np.float64)
    if not np.isfinite(H).all():
        raise FloatingPointError("the Hessian contains NaN or infinite entries")
    scale = float(np.max(np.abs(np.diag(H)))) if H.size else 1.0
    scale = scale if scale > 0 else 1.0
    tau = 0.0
    for attempt in range(1, max_attempts + 1):
        try:
            M = H if tau == 0.0 else H + tau * np.eye(H.shape[0])
            with blas_for(H.shape[0] ** 3 / 3):
                c = sla.cholesky(M, lower=False, check_finite=False)
            # LAPACK accepts numerically singular matrices with a tiny pivot: guard them.
            dmin = np.min(np.abs(np.diag(c)))
            if dmin > np.sqrt(scale) * 1e-7 or tau > 0 and dmin > 0:
                return FactorizationResult(c, tau, attempt)
        except np.linalg.LinAlgError:
            pass
        tau = initial_shift if (tau == 0.0 and initial_shift) else max(10.0 * tau, 1e-10 * scale)
    raise np.linalg.LinAlgError("could not factor the Hessian even with a large diagonal shift")
