"""Attention kernel regression (arXiv 2308.14304): (AᵀA)^j x = b, A (AᵀA)^j x ≈ b and
exp(A Aᵀ) x = b."""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.optimize import OptimizeResult
from scipy.sparse.linalg import LinearOperator

from .._validation import check_matrix, check_scalar, check_vector, check_x
from ..exceptions import NumericalWarning, ValidationError
from ..hessian import weighted_gram
from ..linalg import NystromPreconditioner, pcg

__all__ = ["AttentionKernelRegression"]

_KINDS = ("gram", "agram", "exp")
#: Bound on the entries of A Aᵀ for kind="exp" (exp overflows above ~709.78).
EXP_MAX = 700.0
_BLOCK_ENTRIES = 1 << 20  # entries of one row block of exp(A Aᵀ) (8 MB)


class ExpKernel(LinearOperator):
    r"""The n x n attention kernel :math:`K = \exp(A A^T)` (entrywise), never stored.

    Products go over row blocks: :math:`(K V)_{I} = \exp(A_I A^T) V` with blocks of
    about 2^20 entries, O(n² (d + k)) time for k columns, O(n·k + 2^20) memory. K is
    symmetric positive semidefinite (Schur product theorem: the entrywise exponential
    of a PSD matrix is PSD).
    """

    def __init__(self, A):
        self.A = A
        n = A.shape[0]
        self.block = max(1, _BLOCK_ENTRIES // max(n, 1))
        super().__init__(np.float64, (n, n))

    def _matmat(self, V):
        V = np.asarray(V, dtype=np.float64)
        out = np.empty((self.shape[0], V.shape[1]))
        for i in range(0, self.shape[0], self.block):
            out[i:i + self.block] = np.exp(self.A[i:i + self.block] @ self.A.T) @ V
        return out

    def _matvec(self, v):
        return self._matmat(np.asarray(v, dtype=np.float64).reshape(-1, 1))[:, 0]

    def _adjoint(self):
        return self

    def to_dense(self):
        """K as an n x n array (small n only)."""
        return np.exp(self.A @ self.A.T)


class AttentionKernelRegression:
    r"""Attention kernel regression with the Gram kernel :math:`G = A^T A` or the
    exponential kernel :math:`K = \exp(A A^T)`.

    ``kind="gram"``: :math:`\min_x \tfrac12\|G^j x - b\|^2` (b has d entries; the
    solution solves :math:`G^j x = b`).
    ``kind="agram"``: :math:`\min_x \tfrac12\|A G^j x - b\|^2` (b has n entries; the
    solution is :math:`x = G^{-(j+1)} A^T b`).
    ``kind="exp"``: :math:`\min_x \tfrac12\|K x - b\|^2`, :math:`K = \exp(A A^T)`
    entrywise (n x n PSD, b has n entries; the solution solves :math:`K x = b`).

    Parameters
    ----------
    A : sparse matrix or array, shape (n, d), full column rank ("gram", "agram")
    b : array_like, shape (d,) for "gram", (n,) for "agram" and "exp"
    power : int >= 1
        The exponent j ("gram", "agram"; must be 1 for "exp").
    kind : {"gram", "agram", "exp"}

    Notes
    -----
    :meth:`solve` applies :math:`G^{-1} = R^{-1} R^{-T}` j (or j + 1) times with R the
    triangular factor of A (Householder QR of A when A is dense, so G's inverse is
    applied at κ(A) accuracy; Cholesky of :math:`A^T A` when A is sparse), then makes
    two steps of iterative refinement with the exact matrix-free operator (2j passes
    over A each). The error of the result grows like :math:`\kappa(A)^{2j}\epsilon`:
    the achieved relative residual is reported, and a ``NumericalWarning`` is issued
    when :math:`\kappa(A)^{2j}` exceeds what double precision resolves (1e13).

    ``kind="exp"`` is solved by :func:`fastnewton.linalg.pcg` on the matrix-free
    :class:`ExpKernel`, preconditioned by a randomized Nyström approximation of K
    (:class:`fastnewton.linalg.NystromPreconditioner`, rank r: one block product
    :math:`K\Omega`, O(n² r)), which deflates K's r largest eigenvalues. This stands in
    for MATH.md's sketched truncated feature map :math:`\Phi_q = [A^{\otimes\ell}/
    \sqrt{\ell!}]_{\ell\le q}`: that is also a rank-limited approximation of K, and
    Nyström's is the better one of a given rank (it adapts to K's actual top
    eigenspace). K is often very ill-conditioned (for n much larger than d its
    eigenvalues decay like those of the Taylor series): the achieved relative residual
    :math:`\|Kx - b\|/\|b\|` is reported and a ``NumericalWarning`` is issued when
    it misses ``rtol``. Entries of :math:`A A^T` above 700 would overflow: A is refused
    when its largest squared row norm (a bound on them) exceeds 700.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((50, 4))
    >>> prob = fn.AttentionKernelRegression(A, np.ones(4), power=2)
    >>> res = prob.solve()
    >>> bool(res.residual < 1e-12)
    True
    """

    def __init__(self, A, b, power=1, kind="gram"):
        if not isinstance(kind, str) or kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        A = check_matrix(A, "A")
        self.A = A if sp.issparse(A) else np.asarray(A, dtype=np.float64)
        self.n, self.d = A.shape
        self.power = int(check_scalar(power, "power", low=1, integer=True))
        self.kind = kind
        self.b = check_vector(b, self.d if kind == "gram" else self.n, "b")
        if kind == "exp":
            if self.power != 1:
                raise ValidationError(f"power applies to kind 'gram' and 'agram' only; "
                                      f"kind 'exp' needs power=1, got {self.power}")
            Ad = self.A.toarray() if sp.issparse(self.A) else self.A
            Ad = np.ascontiguousarray(Ad, dtype=np.float64)
            top = float(np.max(np.einsum("ij,ij->i", Ad, Ad)))
            if top > EXP_MAX:
                raise ValidationError(f"exp(A A^T) would overflow: the largest squared row norm "
                                      f"of A is {top:.4g} > {EXP_MAX:g} (it bounds the "
                                      f"entries of A A^T); scale A down")
            self.kernel = ExpKernel(Ad)

    def _G(self, v, times):
        for _ in range(times):
            v = np.asarray(self.A.T @ (self.A @ v))
        return v

    @property
    def size(self):
        """Number of unknowns (d, or n for "exp")."""
        return self.n if self.kind == "exp" else self.d

    def apply(self, x):
        """The operator of the problem: :math:`G^j x`, :math:`A G^j x` or :math:`K x`."""
        if self.kind == "exp":
            return self.kernel.matvec(check_x(x, self.n))
        v = self._G(check_x(x, self.d), self.power)
        return v if self.kind == "gram" else np.asarray(self.A @ v)

    def _apply_T(self, r):
        if self.kind == "exp":
            return self.kernel.matvec(r)
        v = r if self.kind == "gram" else np.asarray(self.A.T @ r)
        return self._G(v, self.power)

    def fun(self, x):
        r = self.apply(x) - self.b
        return 0.5 * float(r @ r)

    def jac(self, x):
        return self._apply_T(self.apply(x) - self.b)

    def hessp(self, x, p):
        return self._apply_T(self.apply(check_x(p, self.size, "p")))

    def _solve_exp(self, rtol, maxiter, rank, seed, t0):
        check_scalar(rtol, "rtol", low=0.0)
        n = self.n
        rank = min(n, max(100, 2 * self.d)) if rank is None else int(
            check_scalar(rank, "rank", low=1, high=n, integer=True))
        maxiter = max(100, n) if maxiter is None else int(
            check_scalar(maxiter, "maxiter", low=1, integer=True))
        P = NystromPreconditioner(self.kernel, rank, seed=seed)
        out = pcg(self.kernel, self.b, M=P, rtol=rtol, maxiter=maxiter)
        x = out.x
        bnorm = max(float(np.linalg.norm(self.b)), np.finfo(float).tiny)
        residual = float(np.linalg.norm(self.apply(x) - self.b)) / bnorm  # true, not recurrence
        lam = P.eigenvalues
        kappa = float(lam[0] / lam[-1])
        success = bool(residual <= max(rtol, 10 * np.finfo(float).eps))
        if not success:
            why = (f"exp(A A^T) is numerically singular (its Nyström eigenvalues fall below "
                   f"n*eps*lambda_1 after {P.rank} of {rank})" if P.rank < rank else
                   f"kappa(exp(A A^T)) >= lambda_1/lambda_r = {kappa:.2e}")
            warnings.warn(f"exp(A A^T) x = b is too ill-conditioned to resolve to rtol={rtol:g}: "
                          f"achieved relative residual {residual:.2e} after {out.nit} CG "
                          f"iterations; {why}. Raise rank or maxiter, or regularize.",
                          NumericalWarning, stacklevel=3)
        return OptimizeResult(x=x, fun=self.fun(x), residual=residual, kappa=kappa,
                              nit=out.nit, rank=P.rank, eigenvalues=lam, success=success,
                              time=time.perf_counter() - t0,
                              message=f"relative residual {residual:.2e} after {out.nit} CG "
                                      f"iterations")

    def _factor(self):
        if sp.issparse(self.A):
            G = weighted_gram(self.A, np.ones(self.n))
            return scipy.linalg.cholesky(G, lower=False)
        return np.linalg.qr(self.A, mode="r")

    def solve(self, refine=2, *, rtol=1e-10, maxiter=None, rank=None, seed=0):
        """Solve by nested triangular solves plus ``refine`` refinement steps ("gram",
        "agram"), or by Nyström-preconditioned CG ("exp").

        Parameters
        ----------
        refine : int
            Iterative-refinement steps ("gram", "agram").
        rtol : float
            Target relative residual ``‖K x − b‖/‖b‖`` of CG ("exp").
        maxiter : int, optional
            Most CG iterations ("exp"; default ``max(100, n)``).
        rank : int, optional
            Rank of the Nyström preconditioner ("exp"; default ``min(n, max(100, 2 d))``).
        seed : None, int, SeedSequence or Generator
            Randomness of the Nyström test matrix ("exp").

        Returns
        -------
        OptimizeResult
            ``x``, ``fun``, ``residual`` (relative: ``‖K x − b‖/‖b‖`` for "gram" and
            "exp", ``‖Kᵀ(K x − b)‖/‖Kᵀ b‖`` for "agram"), ``kappa`` (condition number of
            A; for "exp" the lower bound λ₁/λ_r of κ(K) from the Nyström eigenvalues),
            ``success``, ``message``, ``time``; for "exp" also ``nit`` (CG iterations),
            ``rank`` and ``eigenvalues`` (the Nyström approximation's, descending).
        """
        t0 = time.perf_counter()
        if self.kind == "exp":
            return self._solve_exp(rtol, maxiter, rank, seed, t0)
        try:
            R = self._factor()
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            raise ValidationError("A must have full column rank (its Gram matrix is not "
                                  "positive definite)") from None
        sv = np.linalg.svd(R, compute_uv=False)
        if not sv[-1] > self.d * np.finfo(float).eps * sv[0]:
            raise ValidationError("A must have full column rank (its smallest singular value "
                                  f"is {sv[-1]:.3g}, the largest {sv[0]:.3g})")
        kappa = float(sv[0] / sv[-1]) if sv[-1] > 0 else np.inf
        if not np.isfinite(kappa) or kappa ** (2 * self.power) > 1e13:
            warnings.warn(f"kappa(A)^(2j) = {kappa:.3g}^{2 * self.power} exceeds what double "
                          f"precision resolves (1e13); the solution of the attention kernel "
                          f"regression may be inaccurate: check res.residual.",
                          NumericalWarning, stacklevel=2)

        def ginv(v, times):
            for _ in range(times):
                v = scipy.linalg.solve_triangular(R, v, trans="T")
                v = scipy.linalg.solve_triangular(R, v)
            return v

        j = self.power
        if self.kind == "gram":
            x = ginv(self.b, j)
            for _ in range(refine):
                x = x + ginv(self.b - self.apply(x), j)
            r = self.apply(x) - self.b
            residual = float(np.linalg.norm(r) / max(np.linalg.norm(self.b), np.finfo(float).tiny))
        else:
            x = ginv(np.asarray(self.A.T @ self.b), j + 1)
            for _ in range(refine):
                x = x + ginv(self._apply_T(self.b - self.apply(x)), 2 * j + 1)
            rhs = self._apply_T(self.b)
            residual = float(np.linalg.norm(self.jac(x))
                             / max(np.linalg.norm(rhs), np.finfo(float).tiny))
        return OptimizeResult(x=x, fun=self.fun(x), residual=residual, kappa=kappa,
                              success=bool(np.isfinite(residual)), time=time.perf_counter() - t0,
                              message=f"relative residual {residual:.2e}")
