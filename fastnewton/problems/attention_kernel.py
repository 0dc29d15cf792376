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
from ..linalg import NystromPreconditioner, lstsq, pcg
from ..linalg._lstsq import default_lstsq_sketch_size
from ..sketch import make_sketch

__all__ = ["AttentionKernelRegression"]

_KINDS = ("gram", "agram", "exp")
#: Bound on the entries of A Aᵀ for kind="exp" (exp overflows above ~709.78).
EXP_MAX = 700.0
_BLOCK_ENTRIES = 1 << 20  # entries of one row block of exp(A Aᵀ) (8 MB)
_STORE_ENTRIES = 1 << 23  # exp(A Aᵀ) is stored when it has at most this many entries


class ExpKernel(LinearOperator):
    r"""The n x n attention kernel :math:`K = \exp(A A^T)` (entrywise).

    Stored once when it fits (``store=None``: n² <= 2^23 entries, 64 MB), so each product
    is a dense GEMV; otherwise never stored: products go over row blocks,
    :math:`(K V)_{I} = \exp(A_I A^T) V` with blocks of about 2^20 entries, O(n² (d + k))
    time for k columns, O(n·k + 2^20) memory. K is symmetric positive semidefinite (Schur
    product theorem: the entrywise exponential of a PSD matrix is PSD).
    """

    def __init__(self, A, store=None):
        self.A = A
        n = A.shape[0]
        self.block = max(1, _BLOCK_ENTRIES // max(n, 1))
        store = n * n <= _STORE_ENTRIES if store is None else bool(store)
        self.K = self.to_dense() if store else None
        super().__init__(np.float64, (n, n))

    def _matmat(self, V):
        V = np.asarray(V, dtype=np.float64)
        if self.K is not None:
            return self.K @ V
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
    applied at κ(A) accuracy; when A is sparse, sketch-and-precondition: R from the QR of
    a sparse-sign sketch S A, and each :math:`G^{-1}` is CG on the matrix-free
    :math:`A^T A` preconditioned by :math:`(R^T R)^{-1}`, O(1)-conditioned whatever κ(A),
    with :math:`G^{-1}A^T b` for "agram" from :func:`fastnewton.linalg.lstsq`; the
    Gram matrix, whose Cholesky factor would square κ(A), is never formed), then makes
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

    def _factor(self, seed):
        """Upper triangular R with RᵀR = AᵀA (dense A: Householder QR of A) or
        RᵀR ≈ AᵀA up to a (1 ± ε) embedding (sparse A: QR of a sparse-sign sketch S A
        with m = max(12 d, 100) rows, one pass over A; AᵀA is never formed)."""
        if sp.issparse(self.A):
            m = default_lstsq_sketch_size(self.n, self.d)
            if m < self.n:
                SA = make_sketch("sparse-sign", m, self.n, seed=seed).apply(self.A)
                return np.linalg.qr(np.asarray(SA, dtype=np.float64), mode="r"), True
            return np.linalg.qr(self.A.toarray(), mode="r"), False
        return np.linalg.qr(self.A, mode="r"), False

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
        R, sketched = self._factor(seed)
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

        def rinv(v):  # (RᵀR)⁻¹ v
            v = scipy.linalg.solve_triangular(R, v, trans="T")
            return scipy.linalg.solve_triangular(R, v)

        gram_op = LinearOperator((self.d, self.d), matvec=lambda v: self._G(v, 1),
                                 dtype=np.float64)
        precond = LinearOperator((self.d, self.d), matvec=rinv, dtype=np.float64)
        self._inner_iters = 0

        def ginv(v, times):
            for _ in range(times):
                if sketched:  # sketch-and-precondition: CG on AᵀA, κ(R⁻ᵀAᵀAR⁻¹) = O(1)
                    out = pcg(gram_op, v, M=precond, rtol=1e-15, maxiter=10 * self.d + 100)
                    self._inner_iters += out.nit
                    v = out.x
                else:
                    v = rinv(v)
            return v

        j = self.power
        if self.kind == "gram":
            y = self.b
        elif sketched:  # y = G⁻¹Aᵀb = argmin ‖A y − b‖: backward-stable lstsq
            y = lstsq(self.A, self.b, seed=seed).x
        else:
            y = ginv(np.asarray(self.A.T @ self.b), 1)
            for _ in range(refine):  # refinement of the least-squares solution
                y = y + ginv(np.asarray(self.A.T @ (self.b - self.A @ y)), 1)
        # x solves G^j x = y, refined with the exact operator (refining through
        # (A G^j)ᵀ(A G^j) instead would work at κ(A)^(4j+2) and was measured to diverge)
        x = ginv(y, j)
        for _ in range(refine):
            x = x + ginv(y - self._G(x, j), j)
        if self.kind == "gram":
            r = self.apply(x) - self.b
            residual = float(np.linalg.norm(r) / max(np.linalg.norm(self.b), np.finfo(float).tiny))
        else:
            rhs = self._apply_T(self.b)
            residual = float(np.linalg.norm(self.jac(x))
                             / max(np.linalg.norm(rhs), np.finfo(float).tiny))
        return OptimizeResult(x=x, fun=self.fun(x), residual=residual, kappa=kappa,
                              success=bool(np.isfinite(residual)), time=time.perf_counter() - t0,
                              nit=self._inner_iters, message=f"relative residual {residual:.2e}")
