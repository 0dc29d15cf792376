"""Randomized Nyström preconditioner of a symmetric positive semidefinite operator."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import LinearOperator

from .._validation import check_rng, check_scalar
from ..exceptions import ValidationError
from ._pcg import _as_operator

__all__ = ["NystromPreconditioner"]


class NystromPreconditioner(LinearOperator):
    r"""Inverse of the randomized Nyström approximation of a PSD K, as a preconditioner.

    Frangella, Tropp & Udell, *Randomized Nyström preconditioning* (SIMAX 2023), Alg. 2.1
    and eq. (5.3): with a Gaussian test matrix Ω (n x r, orthonormalized) and
    :math:`Y = K\Omega` (one block product), the stable shifted Nyström approximation
    :math:`\hat K = U \Lambda U^T` (rank r) gives, for :math:`K + \mu I`,

    .. math:: P^{-1} = (\lambda_r + \mu)\, U (\Lambda + \mu I)^{-1} U^T + (I - U U^T),

    so :math:`\kappa(P^{-1/2}(K + \mu I)P^{-1/2}) \le (\lambda_{r+1}(K) + \mu)/\mu` in
    expectation-like bounds; for :math:`\mu = 0` the preconditioned spectrum is
    :math:`[\lambda_{\min}(K)/\lambda_r, \, O(1)]`: the top r eigenvalues are deflated.
    Eigenvalues below ``n·eps·λ₁`` are dropped (``rank`` says how many are kept).

    Parameters
    ----------
    K : LinearOperator or array, shape (n, n)
        Symmetric positive semidefinite (only the block product ``K @ Ω`` is used).
    rank : int
        Sketch size r (1 <= r <= n).
    mu : float
        Regularization μ >= 0 of the system :math:`K + \mu I` the preconditioner is for.
    seed : None, int, SeedSequence or Generator

    Attributes
    ----------
    U : ndarray (n, rank); eigenvalues : ndarray (rank,), descending

    Examples
    --------
    >>> import numpy as np
    >>> from fastnewton.linalg import pcg
    >>> rng = np.random.default_rng(0)
    >>> Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    >>> lam = np.concatenate([np.logspace(0, -6, 30), np.full(170, 1e-6)])
    >>> K = (Q * lam) @ Q.T  # 30 large eigenvalues, then a flat tail: kappa = 1e6
    >>> P = NystromPreconditioner(K, rank=40, seed=0)
    >>> b = np.ones(200)
    >>> pcg(K, b, M=P, rtol=1e-10).nit < pcg(K, b, rtol=1e-10).nit // 4
    True
    """

    def __init__(self, K, rank, mu=0.0, seed=None):
        K = _as_operator(K, "K")
        n = K.shape[0]
        if K.shape != (n, n):
            raise ValidationError(f"K must be square, got shape {K.shape}")
        rank = int(check_scalar(rank, "rank", low=1, high=n, integer=True))
        self.mu = float(check_scalar(mu, "mu", low=0.0))
        rng = check_rng(seed)
        Omega, _ = np.linalg.qr(rng.standard_normal((n, rank)))
        Y = np.asarray(K.matmat(Omega), dtype=np.float64)
        nu = np.finfo(float).eps * max(float(np.linalg.norm(Y)), np.finfo(float).tiny)
        Y += nu * Omega
        C = sla.cholesky(0.5 * (Omega.T @ Y + Y.T @ Omega), lower=False)
        Bm = sla.solve_triangular(C, Y.T, trans="T", lower=False).T  # Y C^{-1}
        U, sigma, _ = np.linalg.svd(Bm, full_matrices=False)
        lam = np.maximum(sigma * sigma - nu, 0.0)
        keep = lam > n * np.finfo(float).eps * max(float(lam[0]), np.finfo(float).tiny)
        if not keep.any():
            raise ValidationError("K is numerically zero on the random test subspace")
        self.U, self.eigenvalues = U[:, keep], lam[keep]
        self.rank = int(keep.sum())
        super().__init__(np.float64, (n, n))

    def _matvec(self, v):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        c = self.U.T @ v
        scale = (self.eigenvalues[-1] + self.mu) / (self.eigenvalues + self.mu)
        return v + self.U @ ((scale - 1.0) * c)

    def _adjoint(self):
        return self
