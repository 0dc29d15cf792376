"""Attention kernel regression (arXiv 2308.14304): (AᵀA)^j x = b and A (AᵀA)^j x ≈ b."""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.optimize import OptimizeResult

from .._validation import check_matrix, check_scalar, check_vector, check_x
from ..exceptions import NumericalWarning, ValidationError
from ..hessian import weighted_gram

__all__ = ["AttentionKernelRegression"]

_KINDS = ("gram", "agram")


class AttentionKernelRegression:
    r"""Attention kernel regression with the Gram kernel :math:`G = A^T A`.

    ``kind="gram"``: :math:`\min_x \tfrac12\|G^j x - b\|^2` (b has d entries; the
    solution solves :math:`G^j x = b`).
    ``kind="agram"``: :math:`\min_x \tfrac12\|A G^j x - b\|^2` (b has n entries; the
    solution is :math:`x = G^{-(j+1)} A^T b`).

    Parameters
    ----------
    A : sparse matrix or array, shape (n, d), full column rank
    b : array_like, shape (d,) for "gram", (n,) for "agram"
    power : int >= 1
        The exponent j.
    kind : {"gram", "agram"}

    Notes
    -----
    :meth:`solve` applies :math:`G^{-1} = R^{-1} R^{-T}` j (or j + 1) times with R the
    triangular factor of A (Householder QR of A when A is dense, so G's inverse is
    applied at κ(A) accuracy; Cholesky of :math:`A^T A` when A is sparse), then makes
    two steps of iterative refinement with the exact matrix-free operator (2j passes
    over A each). The error of the result grows like :math:`\kappa(A)^{2j}\epsilon`:
    the achieved relative residual is reported, and a ``NumericalWarning`` is issued
    when :math:`\kappa(A)^{2j}` exceeds what double precision resolves (1e13).
    The exp kernel :math:`\exp(A A^T) x = b` (``kind="exp"`` in DESIGN.md) is not
    implemented yet.

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
            raise ValueError(f"kind must be one of {_KINDS} (the exp kernel is not implemented "
                             f"yet), got {kind!r}")
        A = check_matrix(A, "A")
        self.A = A if sp.issparse(A) else np.asarray(A, dtype=np.float64)
        self.n, self.d = A.shape
        self.power = int(check_scalar(power, "power", low=1, integer=True))
        self.kind = kind
        self.b = check_vector(b, self.d if kind == "gram" else self.n, "b")

    def _G(self, v, times):
        for _ in range(times):
            v = np.asarray(self.A.T @ (self.A @ v))
        return v

    def apply(self, x):
        """The operator of the problem: :math:`G^j x` or :math:`A G^j x`."""
        v = self._G(check_x(x, self.d), self.power)
        return v if self.kind == "gram" else np.asarray(self.A @ v)

    def _apply_T(self, r):
        v = r if self.kind == "gram" else np.asarray(self.A.T @ r)
        return self._G(v, self.power)

    def fun(self, x):
        r = self.apply(x) - self.b
        return 0.5 * float(r @ r)

    def jac(self, x):
        return self._apply_T(self.apply(x) - self.b)

    def hessp(self, x, p):
        return self._apply_T(self.apply(check_x(p, self.d, "p")))

    def _factor(self):
        if sp.issparse(self.A):
            G = weighted_gram(self.A, np.ones(self.n))
            return scipy.linalg.cholesky(G, lower=False)
        return np.linalg.qr(self.A, mode="r")

    def solve(self, refine=2):
        """Solve by nested triangular solves plus ``refine`` refinement steps.

        Returns
        -------
        OptimizeResult
            ``x``, ``fun``, ``residual`` (relative: ``‖K x − b‖/‖b‖`` for "gram",
            ``‖Kᵀ(K x − b)‖/‖Kᵀ b‖`` for "agram"), ``kappa`` (condition number of A),
            ``success``, ``message``, ``time``.
        """
        t0 = time.perf_counter()
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
