"""Multiple softmax regression (arXiv 2307.02419): X ↦ ½‖rowsoftmax(A1 X A2ᵀ) − B‖_F².

x = vec(X) row-major, so the design is the Kronecker product A1 ⊗ A2 (n1·n2 x d²), which
is never formed: every product goes through Z = A1 X A2ᵀ. Each row j of Z is a softmax
(or rescaled exp) regression of its own, so the family is block-separable by rows of Z
with no global statistics.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.optimize import OptimizeResult
from scipy.sparse.linalg import LinearOperator, cg

from .._validation import check_matrix, check_scalar, check_x
from ..exceptions import ConvergenceWarning, ValidationError

__all__ = ["MultiSoftmaxRegression", "KroneckerParts", "KroneckerPreconditioner", "backtrack"]


class KroneckerParts:
    r"""Hessian of the loss in Z: row j acts as :math:`B_j = \mathrm{diag}(\beta_j) + U_j C_j U_j^T`.

    ``beta`` (n1, n2), ``U`` (2, n1, n2), ``k`` (n1,) with
    :math:`C_j = [[k_j, -1], [-1, 0]]`.
    """

    def __init__(self, beta, U, k):
        self.beta, self.U, self.k = beta, U, k

    def matvec(self, T):
        """Apply the row blocks to T (n1, n2): row j of the result is B_j T_j."""
        a1 = np.einsum("ij,ij->i", self.U[0], T)
        a2 = np.einsum("ij,ij->i", self.U[1], T)
        return (self.beta * T + self.U[0] * (self.k * a1 - a2)[:, None]
                - self.U[1] * a1[:, None])

    def to_dense(self):
        """The (n1 n2) x (n1 n2) block-diagonal matrix, rows of Z in row-major order."""
        n1, n2 = self.beta.shape
        out = np.zeros((n1 * n2, n1 * n2))
        for j in range(n1):
            Uj = self.U[:, j, :].T
            Cj = np.array([[self.k[j], -1.0], [-1.0, 0.0]])
            out[j * n2:(j + 1) * n2, j * n2:(j + 1) * n2] = np.diag(self.beta[j]) + Uj @ Cj @ Uj.T
        return out


class KroneckerPreconditioner(LinearOperator):
    r"""Inverse of :math:`(A_1^T D_1 A_1) \otimes (A_2^T D_2 A_2) + \lambda I` (row-major vec).

    :math:`D_1, D_2` are a rank-one fit :math:`\beta_+ \approx d_1 d_2^T` of the positive
    part of the Hessian's diagonal in Z (row and column means), so the Kronecker
    product approximates :math:`(A_1 \otimes A_2)^T \mathrm{diag}(\beta) (A_1 \otimes A_2)`.
    Built from two eigendecompositions of d x d matrices (O(n d² + d³)); applied in O(d³).
    """

    def __init__(self, A1, A2, beta, lam):
        bp = np.maximum(beta, 0.0)
        mean = max(float(bp.mean()), np.finfo(float).tiny)
        d1 = bp.mean(axis=1)
        d2 = bp.mean(axis=0) / mean
        G1 = _weighted_gram(A1, d1)
        G2 = _weighted_gram(A2, d2)
        self.l1, self.Q1 = np.linalg.eigh(G1)
        self.l2, self.Q2 = np.linalg.eigh(G2)
        denom = np.outer(np.maximum(self.l1, 0.0), np.maximum(self.l2, 0.0)) + lam
        floor = 1e-12 * max(float(denom.max()), np.finfo(float).tiny)
        self.denom = np.maximum(denom, floor)
        d = G1.shape[0]
        super().__init__(np.float64, (d * G2.shape[0],) * 2)

    def _matvec(self, v):
        V = v.reshape(self.Q1.shape[0], self.Q2.shape[0])
        W = (self.Q1.T @ V @ self.Q2) / self.denom
        return (self.Q1 @ W @ self.Q2.T).ravel()

    def _adjoint(self):
        return self


def backtrack(fun, jac, x, f, gnorm, p, gp, c1=1e-4):
    """Armijo backtracking along p from step 1; returns the step (0.0 on failure).

    Overflowing trials shrink the step tenfold; where the decrease is below the
    objective's rounding level a trial is accepted if it lowers the gradient norm.
    """
    t = 1.0
    while t >= 1e-14:
        f_new = fun(x + t * p)
        if f_new <= f + c1 * t * gp:
            return t
        if np.isfinite(f_new) and abs(f_new - f) <= 10 * np.finfo(float).eps * abs(f):
            if np.linalg.norm(jac(x + t * p)) < gnorm:
                return t
        t *= 0.5 if np.isfinite(f_new) else 0.1
    return 0.0


def _stop_requested(callback, x):
    """Call ``callback(x)``; True when it returns True or raises StopIteration."""
    try:
        return callback(x) is True
    except StopIteration:
        return True


def _weighted_gram(A, w):
    if sp.issparse(A):
        return np.asarray((A.T @ (A.multiply(w[:, None]))).todense())
    return A.T @ (w[:, None] * A)


class MultiSoftmaxRegression:
    r"""Multiple softmax regression over a d x d matrix X (x = vec(X), row-major).

    Normalized (``rescaled=False``):

    .. math:: L(X) = \tfrac12\|\mathrm{rowsoftmax}(A_1 X A_2^T) - B\|_F^2 + \tfrac12\lambda\|X\|_F^2

    rescaled (``rescaled=True``):
    :math:`\tfrac12\|\exp(Z) - \mathrm{diag}(\exp(Z) 1) B\|_F^2 + \tfrac12\lambda\|X\|_F^2`,
    :math:`Z = A_1 X A_2^T`.

    Row j of Z is a softmax (rescaled exp) regression with the design :math:`a_{1j}^T\otimes A_2`;
    with G the per-row z-gradients (see :class:`SoftmaxRegression`,
    :class:`RescaledRegression`) :math:`\nabla_X L = A_1^T G A_2 + \lambda X` and the
    Hessian-vector product is :math:`V \mapsto A_1^T M A_2 + \lambda V`, row j of M =
    :math:`B_j (A_1 V A_2^T)_j`: O(n1 n2 d + (n1 + n2) d²) time, O(n1 n2) memory; the
    Kronecker design (n1 n2 x d²) is never formed.

    Parameters
    ----------
    A1 : sparse matrix or array, shape (n1, d)
    A2 : sparse matrix or array, shape (n2, d)
    B : array_like, shape (n1, n2)
    rescaled : bool
    lam : float
        Ridge ½·lam·‖X‖²_F. Needed for a unique minimizer: each row's softmax is shift
        invariant, so without it the Hessian is singular whenever 1 is in range(A2).

    Notes
    -----
    Solved by :meth:`solve`, a matrix-free Newton-CG (the generic ``fastnewton.minimize``
    assembles d x d Hessians of a single design, which here would be d² x d²): each
    Newton system is solved by ``scipy.sparse.linalg.cg`` on a ``LinearOperator`` of
    :meth:`hessp`, preconditioned by :class:`KroneckerPreconditioner`, followed by Armijo
    backtracking. ``fun``/``jac``/``hessp`` also work with ``scipy.optimize.minimize``.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((40, 3)), rng.standard_normal((30, 3))
    >>> B = np.full((40, 30), 1 / 30)
    >>> prob = fn.MultiSoftmaxRegression(A1, A2, B, lam=1e-3)
    >>> res = prob.solve()
    >>> res.success, res.X.shape
    (True, (3, 3))
    """

    def __init__(self, A1, A2, B, rescaled=False, lam=0.0):
        A1 = check_matrix(A1, "A1")
        A2 = check_matrix(A2, "A2")
        self.A1 = A1.astype(np.float64) if not sp.issparse(A1) else A1
        self.A2 = A2.astype(np.float64) if not sp.issparse(A2) else A2
        if A1.shape[1] != A2.shape[1]:
            raise ValidationError(f"A1 has {A1.shape[1]} columns but A2 has {A2.shape[1]}; "
                                  f"X is d x d, so both need d columns")
        self.n1, self.d = A1.shape
        self.n2 = A2.shape[0]
        B = np.asarray(B, dtype=np.float64)
        if B.shape != (self.n1, self.n2):
            raise ValidationError(f"B must have shape ({self.n1}, {self.n2}) (rows of A1, rows "
                                  f"of A2), got {B.shape}")
        if not np.isfinite(B).all():
            raise ValidationError("B contains NaN or infinite values")
        self.B = B
        self.rescaled = bool(rescaled)
        self.lam = float(check_scalar(lam, "lam", low=0.0))
        self._bb = np.einsum("ij,ij->i", B, B)
        self._cache = (None, None)

    @property
    def size(self):
        """Number of unknowns d²."""
        return self.d * self.d

    def to_matrix(self, x):
        """The d x d matrix X of x = vec(X) (row-major)."""
        return check_x(x, self.size).reshape(self.d, self.d)

    def _Z(self, x):
        X = self.to_matrix(x)
        if self._cache[0] is not None and np.array_equal(x, self._cache[0]):
            return X, self._cache[1]
        Z = self._apply(X)
        self._cache = (np.array(x, dtype=np.float64), Z)
        return X, Z

    def _apply(self, V):
        """A1 V A2ᵀ (n1 x n2)."""
        return np.asarray(self.A1 @ np.asarray((self.A2 @ V.T)).T)

    def _adjoint_apply(self, M):
        """A1ᵀ M A2 (d x d)."""
        return np.asarray(self.A1.T @ np.asarray(self.A2.T @ M.T).T)

    # -- block-separable form: rows of Z, no global statistics -------------------------
    def partial_stats(self, Z_blk, rows):
        return np.empty(0)

    def combine_stats(self, partials):
        return None

    def stats_loss(self, stats):
        return 0.0

    def _rows(self, Z_blk, rows):
        """(loss, grad, beta, U (2, m, n2), k) of the rows ``rows`` of Z."""
        B = self.B[rows]
        with np.errstate(over="ignore", invalid="ignore"):
            if not self.rescaled:
                e = np.exp(Z_blk - Z_blk.max(axis=1, keepdims=True))
                s = e / e.sum(axis=1, keepdims=True)
                c = s - B
                sc = np.einsum("ij,ij->i", s, c)[:, None]
                grad = s * c - sc * s
                u2 = s * (2.0 * s - B)
                beta = u2 - sc * s
                k = 3.0 * np.einsum("ij,ij->i", s, s) - 2.0 * np.einsum("ij,ij->i", B, s)
                U = np.stack([s, u2])
            else:
                f = np.exp(Z_blk)
                c = f - f.sum(axis=1, keepdims=True) * B
                bc = np.einsum("ij,ij->i", B, c)[:, None]
                grad = f * (c - bc)
                beta = f * f + f * (c - bc)
                U = np.stack([f, f * B])
                k = self._bb[rows]
            loss = 0.5 * float(np.einsum("ij,ij->", c, c))
        return loss, grad, beta, U, k

    def block_loss_grad(self, Z_blk, rows, stats):
        """``(partial loss, gradient in Z of the rows)`` of a block of rows of Z."""
        return self._rows(Z_blk, rows)[:2]

    def block_parts(self, Z_blk, rows, stats):
        """``(beta, U, k)`` of a block of rows of Z (see :class:`KroneckerParts`)."""
        return self._rows(Z_blk, rows)[2:]

    # -- scipy-compatible interface --------------------------------------------------------
    def fun(self, x):
        X, Z = self._Z(x)
        val = self._rows(Z, slice(None))[0] + 0.5 * self.lam * float(np.sum(X * X))
        return val if np.isfinite(val) else np.inf

    def jac(self, x):
        X, Z = self._Z(x)
        G = self._rows(Z, slice(None))[1]
        return (self._adjoint_apply(G) + self.lam * X).ravel()

    def hessian_parts(self, x):
        """The Hessian in Z as :class:`KroneckerParts` (Hessian = Kᵀ B K + lam I, K = A1 ⊗ A2)."""
        _, Z = self._Z(x)
        return KroneckerParts(*self._rows(Z, slice(None))[2:])

    def _hessp_parts(self, parts, p):
        V = p.reshape(self.d, self.d)
        return (self._adjoint_apply(parts.matvec(self._apply(V))) + self.lam * V).ravel()

    def hessp(self, x, p):
        """Hessian-vector product in O(n1 n2 d + (n1 + n2) d²)."""
        p = check_x(p, self.size, "p")
        return self._hessp_parts(self.hessian_parts(x), p)

    def hessian(self, x):
        """The dense d² x d² Hessian (d² Hessian-vector products; for small d only)."""
        parts = self.hessian_parts(x)
        H = np.column_stack([self._hessp_parts(parts, e) for e in np.eye(self.size)])
        return 0.5 * (H + H.T)

    # -- solver ------------------------------------------------------------------------------
    def solve(self, x0=None, *, tol=1e-8, maxiter=100, cg_rtol=None, cg_maxiter=None,
              preconditioner=True, callback=None):
        r"""Minimize by matrix-free Newton-CG with a Kronecker preconditioner.

        Each step solves :math:`H p = -\nabla L` by preconditioned CG (``rtol =
        min(0.1, sqrt(‖g‖/‖g_0‖))`` by default: superlinear convergence), falls back to
        the preconditioned gradient if p is not a descent direction, and backtracks until
        the Armijo condition holds (overflowing trials are rejected).

        Parameters
        ----------
        x0 : array_like (d²,), optional
            Start (default 0, i.e. uniform row softmax).
        tol : float
            Stop when ``‖∇L‖ <= tol ‖∇L(x0)‖``.
        maxiter : int
            Newton steps.
        cg_rtol, cg_maxiter : float, int, optional
            Inner CG tolerance (default: forcing sequence above) and iterations (default 10 d).
        preconditioner : bool
            Use :class:`KroneckerPreconditioner` (else plain CG).
        callback : callable, optional
            ``callback(x)`` after each step; returning True (or raising ``StopIteration``)
            stops the solve (``success=False``, message "stopped by the callback").

        Returns
        -------
        OptimizeResult
            ``x``, ``X`` (d x d), ``fun``, ``jac``, ``grad_norm``, ``nit``, ``nfev``
            (objective evaluations, line-search trials included), ``success``,
            ``message``, ``history`` (``fun``, ``grad_norm``, ``cg_iters``, ``step_size``),
            ``time``. ``fun``, ``jac`` and the gradient test are evaluated at the
            returned x itself. ``fastnewton.minimize`` calls this method for this family.
        """
        t_start = time.perf_counter()
        x = np.zeros(self.size) if x0 is None else check_x(x0, self.size, "x0").copy()
        f = self.fun(x)
        if not np.isfinite(f):
            raise ValidationError("the objective is not finite at x0 (exp overflows); "
                                  "choose a start with smaller |A1 X0 A2ᵀ|")
        g = self.jac(x)
        g0 = gnorm = float(np.linalg.norm(g))
        hist = {"fun": [f], "grad_norm": [gnorm], "cg_iters": [0], "step_size": [0.0]}
        nit, message, success = 0, "maximum number of iterations reached", False
        n_lin = self.size
        nfev = [1]

        def fun(v):
            nfev[0] += 1
            return self.fun(v)

        while True:
            if gnorm <= tol * g0:
                success, message = True, "gradient norm below tol * initial gradient norm"
                break
            if nit >= maxiter:
                break
            parts = self.hessian_parts(x)
            H = LinearOperator((n_lin, n_lin), matvec=lambda v: self._hessp_parts(parts, v),
                               dtype=np.float64)
            M = KroneckerPreconditioner(self.A1, self.A2, parts.beta, self.lam) \
                if preconditioner else None
            count = [0]
            rtol = cg_rtol if cg_rtol is not None else min(0.1, np.sqrt(gnorm / g0))
            p, _ = cg(H, -g, rtol=rtol, atol=0.0, maxiter=cg_maxiter or 10 * self.d, M=M,
                      callback=lambda _: count.__setitem__(0, count[0] + 1))
            gp = float(g @ p)
            if not (np.isfinite(gp) and gp < 0):
                p = -(M.matvec(g) if M is not None else g)
                gp = float(g @ p)
            t = backtrack(fun, self.jac, x, f, gnorm, p, gp)
            if t == 0.0:
                message = "line search could not decrease the objective"
                break
            x = x + t * p
            f, g = self.fun(x), self.jac(x)
            gnorm = float(np.linalg.norm(g))
            nit += 1
            for key, val in (("fun", f), ("grad_norm", gnorm), ("cg_iters", count[0]),
                             ("step_size", t)):
                hist[key].append(val)
            if callback is not None and _stop_requested(callback, x.copy()):
                message = "stopped by the callback"
                break
        if not success and message != "stopped by the callback":
            warnings.warn(f"MultiSoftmaxRegression.solve did not converge after {nit} steps: "
                          f"{message} (relative gradient {gnorm / g0:.2e}). Raise maxiter or "
                          f"add a ridge (lam > 0).", ConvergenceWarning, stacklevel=2)
        return OptimizeResult(x=x, X=x.reshape(self.d, self.d).copy(), fun=f, jac=g,
                              grad_norm=gnorm, nit=nit, nfev=nfev[0], success=success,
                              message=message,
                              history={k: np.asarray(v) for k, v in hist.items()},
                              time=time.perf_counter() - t_start)

    def __repr__(self):
        return (f"MultiSoftmaxRegression(n1={self.n1}, n2={self.n2}, d={self.d}, "
                f"rescaled={self.rescaled}, lam={self.lam:g})")
