"""Sketch-and-precondition least squares with iterative refinement (tall A)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import LinearOperator, lsqr

from .._validation import check_rng, check_scalar, check_vector
from ..exceptions import ConvergenceWarning, NumericalWarning, ValidationError
from ._design import as_design

__all__ = ["lstsq", "LstsqResult", "default_lstsq_sketch_size"]

#: Preferred sketch of :func:`lstsq`, with the fallback used while it is not registered.
PREFERRED_SKETCH = "sparse-sign"
FALLBACK_SKETCH = "countsketch"


def default_lstsq_sketch_size(n, d):
    """Default sketch size of :func:`lstsq`: ``min(n, max(12 d, 100))``."""
    return int(min(n, max(12 * d, 100)))


@dataclass(frozen=True)
class LstsqResult:
    """Result of :func:`lstsq`.

    Attributes
    ----------
    x : ndarray (d,)
        The solution.
    nit : int
        LSQR iterations over both solves (each costs one product with A and one with Aᵀ).
    residual_norm : float
        ``‖b - A x‖₂``, recomputed at the end.
    backward_error : float
        Normalized normal-equation error
        ``‖Aᵀ r‖ / (‖A‖ (‖A‖ ‖x‖ + ‖b‖))`` with ``‖A‖`` the spectral-norm estimate below
        (a certificate: small values mean x solves a nearby least-squares problem).
    norm_A : float
        Estimate of ``‖A‖₂`` (a lower bound from power iteration, so the backward
        error above errs on the large side).
    converged : bool
        Whether both LSQR solves met ``rtol``.
    sketch : str
        The sketch kind used (``"exact-qr"`` when A was factored directly).
    sketch_size : int
    timings : dict
        Seconds for ``sketch``, ``qr``, ``solve`` (LSQR and refinement), ``certificate``.
    """

    x: np.ndarray
    nit: int
    residual_norm: float
    backward_error: float
    norm_A: float
    converged: bool
    sketch: str
    sketch_size: int
    timings: dict = field(default_factory=dict)

    @property
    def iterations(self):
        """Alias of ``nit``."""
        return self.nit


def _resolve_sketch(kind):
    from ..sketch import SKETCHES

    if not isinstance(kind, str):
        return kind
    key = kind.lower()
    if key == PREFERRED_SKETCH and key not in SKETCHES:
        return FALLBACK_SKETCH  # until a sparse-sign sketch is registered
    return key


class _RightPreconditioned(LinearOperator):
    """A R^{-1} for an upper triangular R (d x d), products through the Design's kernels."""

    def __init__(self, design, R):
        self.design = design
        self.R = R
        super().__init__(dtype=np.dtype(np.float64), shape=design.shape)

    def solve_R(self, y):
        return sla.solve_triangular(self.R, y, lower=False, check_finite=False)

    def _matvec(self, y):
        return self.design.matvec(self.solve_R(np.asarray(y, dtype=np.float64).reshape(-1)))

    def _rmatvec(self, r):
        v = self.design.rmatvec(np.asarray(r, dtype=np.float64).reshape(-1))
        return sla.solve_triangular(self.R, v, trans="T", lower=False, check_finite=False)


def _norm_estimate(design, R, n_power):
    """Lower bound of ‖A‖₂: power iteration on AᵀA from R's top right singular vector."""
    _, s, Vt = np.linalg.svd(R)
    v = Vt[0]
    est = 0.0
    for _ in range(n_power):
        Av = design.matvec(v)
        est = max(est, float(np.linalg.norm(Av)))
        w = design.rmatvec(Av)
        nw = float(np.linalg.norm(w))
        if nw == 0.0:
            break
        v = w / nw
    return est if est > 0 else float(s[0])


def lstsq(A, b, *, sketch=PREFERRED_SKETCH, sketch_size=None, rtol=1e-14, maxiter=None,
          seed=None):
    r"""Solve :math:`\min_x \|A x - b\|_2` for tall A by sketch-and-precondition.

    Stable variant of Blendenpik / LSRN (Epperly, Meier & Nakatsukasa's SPIR):

    1. sketch :math:`S A` and :math:`S b` (m x d with m = O(d), one pass over A) and
       factor :math:`S A = Q R`;
    2. warm start from the sketch-and-solve solution :math:`x_0 = R^{-1} Q^T S b`;
    3. LSQR on the well-conditioned :math:`A R^{-1}` for the correction
       :math:`\min_y \|A R^{-1} y - (b - A x_0)\|`, :math:`x_1 = x_0 + R^{-1} y`;
    4. one step of iterative refinement: the same solve for the new residual
       :math:`b - A x_1`, which restores backward stability (plain
       sketch-and-precondition is not backward stable).

    If S is a :math:`(1\pm\epsilon)` embedding of range([A, b]) then
    :math:`\kappa(A R^{-1}) \le (1+\epsilon)/(1-\epsilon)` whatever κ(A), so each LSQR
    solve needs O(log(1/rtol)) iterations.

    Parameters
    ----------
    A : sparse matrix or ndarray, shape (n, d), n >= d, full column rank
    b : array_like (n,)
    sketch : str or sketch object
        Sketch kind from ``fastnewton.sketch.SKETCHES``. The default ``"sparse-sign"``
        resolves when called: it falls back to ``"countsketch"`` while no sparse-sign
        sketch is registered.
    sketch_size : int, optional
        Rows m of the sketch, d <= m; default :func:`default_lstsq_sketch_size`. When
        m >= n, A itself is QR-factored (no sketch).
    rtol : float
        Tolerance of both LSQR solves (their ``atol`` and ``btol``).
    maxiter : int, optional
        Most LSQR iterations per solve (default ``max(100, 2 d)``).
    seed : None, int, SeedSequence or Generator
        Randomness of the sketch.

    Returns
    -------
    LstsqResult
        ``x``, iterations, the residual norm and the backward-error certificate.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((2000, 10)); x = rng.standard_normal(10)
    >>> res = lstsq(A, A @ x, seed=0)
    >>> bool(np.allclose(res.x, x, rtol=1e-10)), res.backward_error < 1e-14
    (True, True)
    """
    timings = dict.fromkeys(("sketch", "qr", "solve", "certificate"), 0.0)
    design = as_design(A)
    n, d = design.n, design.d
    if n < d:
        raise ValidationError(f"lstsq needs a tall A (n >= d), got A of shape {n} x {d}")
    b = check_vector(b, n, "b")
    check_scalar(rtol, "rtol", low=0.0)
    maxiter = max(100, 2 * d) if maxiter is None else int(
        check_scalar(maxiter, "maxiter", low=1, integer=True))
    rng = check_rng(seed)

    t0 = time.perf_counter()
    kind, m, SA, Sb = _sketched_system(design, b, sketch, sketch_size, rng)
    timings["sketch"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    Q, R = _full_rank_qr(SA)
    x = sla.solve_triangular(R, Q.T @ Sb, lower=False, check_finite=False)
    timings["qr"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    op = _RightPreconditioned(design, R)
    nit = 0
    converged = True
    for _ in range(2):  # the solve, then one step of iterative refinement
        r = b - design.matvec(x)
        out = lsqr(op, r, atol=rtol, btol=rtol, conlim=0.0, iter_lim=maxiter)
        istop, itn = int(out[1]), int(out[2])
        nit += itn
        converged &= istop in (0, 1, 2, 4, 5)
        x = x + op.solve_R(out[0])
    timings["solve"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    r = b - design.matvec(x)
    rnorm = float(np.linalg.norm(r))
    normA = _norm_estimate(design, R, n_power=4)
    denom = normA * (normA * float(np.linalg.norm(x)) + float(np.linalg.norm(b)))
    bwd = float(np.linalg.norm(design.rmatvec(r))) / denom if denom > 0 else 0.0
    timings["certificate"] = time.perf_counter() - t0
    if not converged:
        warnings.warn(f"lstsq: LSQR reached maxiter={maxiter} before rtol={rtol:g} "
                      f"(backward error {bwd:.1e}); raise maxiter or sketch_size",
                      ConvergenceWarning, stacklevel=2)
    return LstsqResult(x=x, nit=nit, residual_norm=rnorm, backward_error=bwd, norm_A=normA,
                       converged=bool(converged), sketch=str(kind), sketch_size=m,
                       timings=timings)


def _sketched_system(design, b, sketch, sketch_size, rng):
    """``(kind, m, S A, S b)``: the sketch of the system (or A itself, densified, where
    the sketch would have at least n rows: an exact QR)."""
    from ..sketch import SKETCHES, make_sketch

    n, d = design.n, design.d
    if isinstance(sketch, str):
        m = default_lstsq_sketch_size(n, d) if sketch_size is None else sketch_size
        check_scalar(m, "sketch_size", low=1, integer=True)
        m = int(m)
        if m < d:
            raise ValidationError(f"sketch_size must be >= d = {d}, got {m}")
        if _resolve_sketch(sketch) not in SKETCHES:
            raise ValueError(f"unknown sketch {sketch!r}; choose one of {sorted(SKETCHES)}")
    else:
        m = int(sketch.shape[0])
    if m >= n and isinstance(sketch, str):
        SA = design.base.A.toarray() if design.sparse else np.array(design.base.A, dtype=np.float64)
        if design.intercept:  # the exact QR densifies A anyway
            SA = np.column_stack([SA, np.ones(n)])
        return "exact-qr", m, SA, b
    kind = _resolve_sketch(sketch)
    S = make_sketch(kind, m, n, seed=rng)
    if not isinstance(kind, str):
        kind = type(S).__name__
    # one application: skip any one-off layout a sketch may build for a Design
    SA = S.apply(design.A if design.sparse and not design.intercept else design)
    return kind, m, SA, S.apply(b)


def _full_rank_qr(SA):
    """QR of the sketched A; raises where it is numerically rank-deficient and warns
    where it is close to it."""
    d = SA.shape[1]
    Q, R = np.linalg.qr(SA)
    diagR = np.abs(np.diag(R))
    if not diagR.min() > d * np.finfo(np.float64).eps * diagR.max():
        raise ValidationError(
            f"A is numerically rank-deficient (the sketched R has min/max diagonal "
            f"{diagR.min() / max(diagR.max(), np.finfo(float).tiny):.1e}); lstsq needs full "
            f"column rank: drop dependent columns or add a ridge")
    if diagR.min() < 1e-14 * diagR.max():
        warnings.warn("A is close to rank-deficient (cond > 1e14): the solution is "
                      "determined only to about cond(A) * eps", NumericalWarning, stacklevel=3)
    return Q, R
