"""Single-layer attention regression (arXiv 2309.07418): ½‖rowsoftmax(A1 X A2ᵀ) A3 Y − B‖_F²."""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.optimize import OptimizeResult
from scipy.sparse.linalg import LinearOperator

from .._validation import check_matrix, check_scalar, check_x
from ..exceptions import ConvergenceWarning, ValidationError
from ..linalg import steihaug_cg
from .multisoftmax import KroneckerPreconditioner, _stop_requested

__all__ = ["AttentionRegression", "AttentionParts"]


def _dense(A):
    return A.toarray() if sp.issparse(A) else np.asarray(A, dtype=np.float64)


def _rowJ(S, P):
    """Row by row (diag(s_j) − s_j s_jᵀ) p_j: the softmax Jacobian applied to the rows of P."""
    SP = S * P
    return SP - S * SP.sum(axis=1, keepdims=True)


class AttentionParts:
    r"""The X-block Hessian in Z = A1 X A2ᵀ, row j: :math:`B_j = J H H^T J + \mathrm{diag}(s\circ g
    - \langle s,g\rangle s) - (s\circ g)s^T - s(s\circ g)^T + 2\langle s,g\rangle s s^T`
    with :math:`J = \mathrm{diag}(s) - s s^T`, :math:`H = A_3 Y`, :math:`g = H(H^T s - b_j)`
    (the two-layer form of MATH.md with σ = identity, one row at a time)."""

    def __init__(self, S, P, H):
        self.S, self.P, self.H = S, P, H
        self.sg = np.einsum("ij,ij->i", S, P)[:, None]

    def matvec(self, T):
        """Row j of the result is B_j T_j (T is n1 x n2)."""
        S, P, sg = self.S, self.P, self.sg
        out = _rowJ(S, (_rowJ(S, T) @ self.H) @ self.H.T)
        st = np.einsum("ij,ij->i", S, T)[:, None]
        spt = np.einsum("ij,ij->i", S * P, T)[:, None]
        out += (S * P - sg * S) * T - (S * P) * st - S * spt + 2.0 * sg * S * st
        return out

    def diagonal(self):
        """The diagonals of the B_j (n1 x n2), for the preconditioner."""
        S, P, sg = self.S, self.P, self.sg
        SH = S @ self.H  # row j: t_j = Hᵀ s_j
        hh = np.einsum("ij,ij->i", self.H, self.H)
        jh2 = S * S * (hh[None, :] - 2.0 * SH @ self.H.T + np.einsum("ij,ij->i", SH, SH)[:, None])
        return jh2 + S * P - sg * S - 2.0 * S * S * P + 2.0 * sg * S * S


class AttentionRegression:
    r"""Attention regression over X (d x d) and Y (d3 x m).

    .. math::
        L(X, Y) = \tfrac12\|\mathrm{rowsoftmax}(A_1 X A_2^T) A_3 Y - B\|_F^2
        + \tfrac12\lambda(\|X\|_F^2 + \|Y\|_F^2)

    The unknowns are ``theta = [vec(X), vec(Y)]`` (row-major). With :math:`S` the row
    softmax, :math:`H = A_3 Y`, :math:`R = S H - B`:
    :math:`\nabla_Y = (S A_3)^T R + \lambda Y`,
    :math:`\nabla_X = A_1^T J(R H^T) A_2 + \lambda X` (J applied row by row).

    Parameters
    ----------
    A1 : array (n1, d);  A2 : array (n2, d);  A3 : array (n2, d3);  B : array (n1, m)
    lam : float

    Notes
    -----
    Solved by :meth:`solve`: variable projection, i.e. an exact (ridge) least-squares
    Y-step at every iterate and a trust-region Newton-CG step on the reduced objective
    :math:`\varphi(X) = \min_Y L(X, Y)` whose Hessian is the Schur complement of the
    Y-block (so the X-Y coupling is kept), stopping on the joint gradient norm. Pure
    alternation (Y-step, X-only Newton step) was measured to converge only linearly
    (200 steps to 4e-7 on a 7 x 6 example); line-search Newton-CG on the joint Hessian
    (scipy ``cg``, no negative-curvature test) stalled at n1 = n2 = 200, d = 10 (300 steps,
    relative gradient 0.1). ``fun``, ``jac`` and ``hessp`` (joint, exact cross terms) are
    ``scipy.optimize.minimize``-compatible in theta.
    The problem is non-convex: different starts may give different local minimizers.

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> A1, A2, A3 = (rng.standard_normal((30, 3)) for _ in range(3))
    >>> prob = fn.AttentionRegression(A1, A2, A3, rng.standard_normal((30, 2)), lam=1e-2)
    >>> res = prob.solve()
    >>> res.success, res.X.shape, res.Y.shape
    (True, (3, 3), (3, 2))
    """

    def __init__(self, A1, A2, A3, B, lam=0.0):
        A1, A2, A3 = (_dense(check_matrix(A, name)) for A, name in
                      ((A1, "A1"), (A2, "A2"), (A3, "A3")))
        if A1.shape[1] != A2.shape[1]:
            raise ValidationError(f"A1 has {A1.shape[1]} columns but A2 has {A2.shape[1]}")
        if A3.shape[0] != A2.shape[0]:
            raise ValidationError(f"A3 has {A3.shape[0]} rows but A2 has {A2.shape[0]}")
        B = np.asarray(B, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != A1.shape[0]:
            raise ValidationError(f"B must have shape ({A1.shape[0]}, m) (rows of A1), got {B.shape}")
        self.A1, self.A2, self.A3, self.B = A1, A2, A3, B
        self.n1, self.d = A1.shape
        self.n2, self.d3 = A3.shape
        self.m = B.shape[1]
        self.lam = float(check_scalar(lam, "lam", low=0.0))
        self._cache = (None, None)

    @property
    def size(self):
        return self.d * self.d + self.d3 * self.m

    def split(self, theta):
        """``(X, Y)`` of theta = [vec(X), vec(Y)]."""
        theta = check_x(theta, self.size, "theta")
        k = self.d * self.d
        return theta[:k].reshape(self.d, self.d), theta[k:].reshape(self.d3, self.m)

    def _state(self, theta):
        if self._cache[0] is not None and np.array_equal(theta, self._cache[0]):
            return self._cache[1]
        X, Y = self.split(theta)
        Z = self.A1 @ X @ self.A2.T
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        S = E / E.sum(axis=1, keepdims=True)
        H = self.A3 @ Y
        R = S @ H - self.B
        st = (X, Y, S, H, R)
        self._cache = (np.array(theta, dtype=np.float64), st)
        return st

    def fun(self, theta):
        X, Y, _, _, R = self._state(theta)
        return 0.5 * float(np.sum(R * R)) + 0.5 * self.lam * float(np.sum(X * X) + np.sum(Y * Y))

    def _grads(self, theta):
        X, Y, S, H, R = self._state(theta)
        gX = self.A1.T @ _rowJ(S, R @ H.T) @ self.A2 + self.lam * X
        gY = (S @ self.A3).T @ R + self.lam * Y
        return gX, gY

    def jac(self, theta):
        gX, gY = self._grads(theta)
        return np.concatenate([gX.ravel(), gY.ravel()])

    def hessian_parts(self, theta):
        """The X-block Hessian in Z as :class:`AttentionParts` (X-block = A1ᵀ B(·) A2 + lam)."""
        _, _, S, H, R = self._state(theta)
        return AttentionParts(S, R @ H.T, H)

    def _hessp_x(self, parts, V):
        return self.A1.T @ parts.matvec(self.A1 @ V @ self.A2.T) @ self.A2 + self.lam * V

    def hessp(self, theta, p):
        """Joint Hessian-vector product (X and Y blocks and their cross terms)."""
        _, _, S, H, R = self._state(theta)
        V, W = self.split(p)
        parts = AttentionParts(S, R @ H.T, H)
        T = self.A1 @ V @ self.A2.T
        dF = _rowJ(S, T)
        HW = self.A3 @ W
        SHW = S @ HW
        hX = self.A1.T @ (parts.matvec(T) + _rowJ(S, SHW @ H.T + R @ HW.T)) @ self.A2
        dR = dF @ H + SHW
        hY = (dF @ self.A3).T @ R + (S @ self.A3).T @ dR
        return np.concatenate([(hX + self.lam * V).ravel(), (hY + self.lam * W).ravel()])

    def hessian(self, theta):
        """Dense joint Hessian (``size`` Hessian-vector products; small problems only)."""
        H = np.column_stack([self.hessp(theta, e) for e in np.eye(self.size)])
        return 0.5 * (H + H.T)

    def _softmax(self, X):
        Z = self.A1 @ X @ self.A2.T
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    def _y_block(self, M):
        r"""Eigendecomposition of the Y-block Hessian :math:`M^T M + \lambda I` (d3 x d3)
        and its (pseudo-)inverse eigenvalues (cut at d3·eps·max when lam = 0)."""
        w, Q = np.linalg.eigh(M.T @ M + self.lam * np.eye(self.d3))
        cut = self.d3 * np.finfo(float).eps * max(float(w[-1]), np.finfo(float).tiny)
        winv = np.where(w > cut, 1.0 / np.where(w > cut, w, 1.0), 0.0)
        return Q, winv

    def _y_solve(self, M, rhs_block=None):
        if rhs_block is None and self.lam == 0:
            return np.linalg.lstsq(M, self.B, rcond=None)[0]  # minimum norm, κ(M) accurate
        Q, winv = self._y_block(M)
        rhs = M.T @ self.B if rhs_block is None else rhs_block
        return Q @ (winv[:, None] * (Q.T @ rhs))

    def y_step(self, X):
        r"""The exact minimizer over Y for fixed X: ridge least squares
        :math:`Y = (M^T M + \lambda I)^{-1} M^T B`, :math:`M = \mathrm{rowsoftmax}(A_1 X A_2^T) A_3`
        (the minimum-norm least-squares solution when lam = 0)."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape != (self.d, self.d):
            raise ValidationError(f"X must have shape ({self.d}, {self.d}), got {X.shape}")
        return self._y_solve(self._softmax(X) @ self.A3)

    def _join(self, X, Y):
        return np.concatenate([X.ravel(), Y.ravel()])

    def _reduced(self, X):
        """The variable-projection state at (X, Y*(X)): objective, joint gradient and what
        the reduced Hessian-vector product and the preconditioner need."""
        S = self._softmax(X)
        M = S @ self.A3
        Y = self._y_solve(M)
        theta = self._join(X, Y)
        H = self.A3 @ Y
        R = S @ H - self.B
        self._cache = (theta.copy(), (X, Y, S, H, R))
        gX, gY = self._grads(theta)
        return OptimizeResult(X=X, Y=Y, theta=theta, fun=self.fun(theta), gX=gX.ravel(),
                              grad_norm=float(np.sqrt(np.sum(gX * gX) + np.sum(gY * gY))),
                              S=S, H=H, R=R, M=M, yblock=self._y_block(M),
                              parts=AttentionParts(S, R @ H.T, H))

    def _reduced_hessp(self, st, v):
        r"""Hessian of :math:`\varphi(X) = \min_Y L(X, Y)` times v: the Schur complement
        :math:`(H_{XX} - H_{XY} H_{YY}^{-1} H_{YX}) v` at (X, Y*(X)), matrix-free."""
        V = v.reshape(self.d, self.d)
        S, H, R, M = st.S, st.H, st.R, st.M
        T = self.A1 @ V @ self.A2.T
        dF = _rowJ(S, T)  # dS along V
        hyx = self.A3.T @ (dF.T @ R) + M.T @ (dF @ H)  # H_YX v (d3 x m)
        Q, winv = st.yblock
        W = -(Q @ (winv[:, None] * (Q.T @ hyx)))  # the Y-step's response to V
        HW = self.A3 @ W
        out = st.parts.matvec(T) + _rowJ(S, (M @ W) @ H.T + R @ HW.T)
        return (self.A1.T @ out @ self.A2 + self.lam * V).ravel()

    def solve(self, x0=None, *, tol=1e-8, maxiter=200, cg_maxiter=None, callback=None):
        r"""Variable projection: exact Y-step, trust-region Newton-CG X-step, until
        ‖∇L‖ <= tol ‖∇L(x0)‖ (joint gradient).

        Every iterate has the exact :math:`Y^*(X)` (:meth:`y_step`), so the method
        minimizes the reduced objective :math:`\varphi(X) = L(X, Y^*(X))`, whose gradient
        is :math:`\nabla_X L(X, Y^*)` and whose Hessian is the Schur complement
        :math:`H_{XX} - H_{XY} H_{YY}^{-1} H_{YX}` (Golub-Pereyra): this keeps the X-Y
        coupling that plain alternation (Y-step, X-only Newton step) loses, which was
        measured to converge only linearly. Each X-step is Steihaug-Toint truncated CG
        (:func:`fastnewton.linalg.steihaug_cg`) on the reduced Hessian-vector product,
        preconditioned by :class:`KroneckerPreconditioner` on the diagonal of the per-row
        X-block Hessians, with the Eisenstat-Walker forcing term
        ``min(0.5, sqrt(‖g‖/‖g0‖))``; it stops at negative curvature on the trust-region
        boundary, so saddle points and indefinite Hessians (the loss is non-convex) are
        handled. The radius (in the preconditioner's norm) is updated by the usual ratio
        test (shrink below 0.25, expand above 0.75 on the boundary, accept above 1e-4);
        where the decrease is at the objective's rounding level a step is accepted if
        it lowers the gradient norm.

        Parameters
        ----------
        x0 : array_like (size,), optional
            Start theta (default X = 0, Y = 0). Its Y part enters only ‖∇L(x0)‖: the
            first iterate is (X0, Y*(X0)).
        tol : float
            Relative tolerance on the joint gradient norm.
        maxiter : int
            Most trust-region iterations (accepted or not).
        cg_maxiter : int, optional
            Truncated-CG iterations per step (default d², the size of X).
        callback : callable, optional
            ``callback(theta)`` after each iteration; returning True (or raising
            ``StopIteration``) stops the solve (``success=False``).

        Returns
        -------
        OptimizeResult
            ``x`` (theta), ``X``, ``Y``, ``fun``, ``jac``, ``grad_norm``, ``nit``,
            ``nfev`` (evaluations of the reduced objective), ``success``, ``message``, ``history`` (per iteration, entry 0 the start:
            ``fun``, ``grad_norm``, ``cg_iters``, ``step_size`` (‖ΔX‖, 0 when rejected),
            ``radius``, ``rho``), ``time``.
        """
        t_start = time.perf_counter()
        theta = np.zeros(self.size) if x0 is None else check_x(x0, self.size, "x0").copy()
        check_scalar(tol, "tol", low=0.0)
        maxiter = int(check_scalar(maxiter, "maxiter", low=0, integer=True))
        k = self.d * self.d
        cg_maxiter = max(k, 10) if cg_maxiter is None else int(
            check_scalar(cg_maxiter, "cg_maxiter", low=1, integer=True))
        g0 = float(np.linalg.norm(self.jac(theta)))
        st = self._reduced(theta[:k].reshape(self.d, self.d).copy())
        hist = {"fun": [st.fun], "grad_norm": [st.grad_norm], "cg_iters": [0],
                "step_size": [0.0], "radius": [np.nan], "rho": [np.nan]}
        nit, success, message = 0, False, "maximum number of iterations reached"
        radius, precond = None, None
        eps = np.finfo(float).eps
        while True:
            if st.grad_norm <= tol * g0:
                success, message = True, "joint gradient norm below tol * initial"
                break
            if nit >= maxiter:
                break
            if precond is None:
                precond = KroneckerPreconditioner(self.A1, self.A2, st.parts.diagonal(),
                                                  self.lam)
            if radius is None:
                radius = float(np.sqrt(st.gX @ precond.matvec(st.gX)))
            op = LinearOperator((k, k), dtype=np.float64,
                                matvec=lambda v, st=st: self._reduced_hessp(st, v))
            step = steihaug_cg(op, st.gX, radius, M=precond, maxiter=cg_maxiter,
                               rtol=min(0.5, np.sqrt(st.grad_norm / g0)))
            trial = self._reduced(st.X + step.s.reshape(self.d, self.d))
            actual, predicted = st.fun - trial.fun, -step.model_value
            rho = actual / predicted if predicted > 0 and np.isfinite(actual) else -np.inf
            at_rounding = np.isfinite(actual) and abs(actual) <= 10 * eps * abs(st.fun)
            accept = rho > 1e-4 or (at_rounding and trial.grad_norm < st.grad_norm)
            if rho < 0.25 and not (at_rounding and accept):
                radius = 0.25 * min(radius, step.step_norm)
            elif rho > 0.75 and step.on_boundary:
                radius *= 2.0
            nit += 1
            if accept:
                st, precond = trial, None
            for key, val in (("fun", st.fun), ("grad_norm", st.grad_norm),
                             ("cg_iters", step.nit), ("radius", radius), ("rho", rho),
                             ("step_size", float(np.linalg.norm(step.s)) if accept else 0.0)):
                hist[key].append(val)
            if callback is not None and _stop_requested(callback, st.theta.copy()):
                message = "stopped by the callback"
                break
            if not radius > 1e-14 * max(1.0, float(np.linalg.norm(st.X))):
                message = "trust region collapsed (no further decrease at rounding level)"
                break
        self._cache = (None, None)
        theta = st.theta
        gnorm = float(np.linalg.norm(self.jac(theta)))
        if not success and message != "stopped by the callback":
            warnings.warn(f"AttentionRegression.solve did not converge after {nit} steps "
                          f"(relative gradient {gnorm / g0:.2e}; {message}); raise maxiter "
                          f"or lam.", ConvergenceWarning, stacklevel=2)
        return OptimizeResult(x=theta, X=st.X.copy(), Y=st.Y.copy(), fun=self.fun(theta),
                              jac=self.jac(theta), grad_norm=gnorm, nit=nit, nfev=nit + 1,
                              success=success,
                              message=message, history={k: np.asarray(v) for k, v in hist.items()},
                              time=time.perf_counter() - t_start)

    def __repr__(self):
        return f"AttentionRegression(n1={self.n1}, n2={self.n2}, d={self.d}, m={self.m}, lam={self.lam:g})"
