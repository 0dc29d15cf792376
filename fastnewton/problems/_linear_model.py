"""Shared machinery of the separable linear-model problems (GLMs and user losses).

``x = [coef, intercept]`` with ``fit_intercept`` (the intercept an implicit column of
ones of an :class:`~fastnewton.linalg.InterceptDesign`, never a copy of A), sample
weights and offsets, a ridge on the coefficients only, and the z-space interface of
the driver on top of one fused kernel call per evaluation. Subclasses implement
``_run(z, rows, grad, beta) -> (loss, bad)``: the weighted loss of the rows (a slice,
an index array or None for all rows), filling ``grad`` and ``beta`` unless they are
empty; ``bad`` is the first sample whose derivatives are not finite (-1: none).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_scalar, check_vector, check_x
from ..exceptions import NonFiniteError, ValidationError
from ..hessian import DiagLowRank
from ..linalg import InterceptDesign
from ._base import Problem

__all__ = ["LinearModelProblem", "check_sample_weight", "check_offset"]

_EMPTY = np.empty(0)


def check_sample_weight(sample_weight, n):
    """None, or a finite, non-negative float64 n-vector with a positive sum (a scalar is
    broadcast)."""
    if sample_weight is None:
        return None
    if np.isscalar(sample_weight) or (isinstance(sample_weight, np.ndarray)
                                      and sample_weight.ndim == 0):
        val = float(check_scalar(sample_weight, "sample_weight", low=0.0,
                                 low_inclusive=False))
        return np.full(n, val)
    sw = check_vector(sample_weight, n, "sample_weight")
    if (sw < 0).any():
        i = int(np.argmin(sw))
        raise ValidationError(f"sample_weight must be non-negative, got {sw[i]:g} at sample {i}")
    if not sw.sum() > 0:
        raise ValidationError("sample_weight must have a positive sum, got all zeros")
    return sw


def check_offset(offset, n):
    """None, or a finite float64 n-vector (added to z = A x + intercept)."""
    if offset is None:
        return None
    if np.isscalar(offset):
        return np.full(n, float(check_scalar(offset, "offset")))
    return check_vector(offset, n, "offset")


class LinearModelProblem(Problem):
    """Base of :class:`~fastnewton.GLMRegression` and :class:`~fastnewton.SeparableLoss`."""

    fused_z = True  # loss_grad_parts_z is one fused pass (see Problem.fused_z)

    def __init__(self, A, y, *, sample_weight=None, offset=None, fit_intercept=True, lam=0.0):
        super().__init__(A, w=None, lam=0.0)
        if not isinstance(fit_intercept, (bool, np.bool_)):
            raise TypeError(f"fit_intercept must be True or False, got {fit_intercept!r}")
        self.fit_intercept = bool(fit_intercept)
        if self.fit_intercept:
            self.design = InterceptDesign(self.design)
        lam = float(check_scalar(lam, "lam", low=0.0))
        self.alpha = lam
        self.lam = self.ridge_of(lam)
        self.y = check_vector(y, self.n, "y")
        self.sample_weight = check_sample_weight(sample_weight, self.n)
        self.offset = check_offset(offset, self.n)

    # -- coordinates ---------------------------------------------------------------------
    @property
    def n_features(self):
        """Columns of A (``d - 1`` with an intercept)."""
        return self.design.n_features

    def ridge_of(self, lam):
        """The ``lam`` attribute for a ridge ``lam`` on the coefficients: a float without an
        intercept (or lam = 0), else a (d,) vector with 0 on the intercept."""
        lam = float(lam)
        if not self.fit_intercept or lam == 0.0:
            return lam
        r = np.full(self.design.d, lam)
        r[-1] = 0.0
        return r

    def split(self, x):
        """``(coef, intercept)`` of a point x of length d (intercept 0.0 without one)."""
        x = check_x(x, self.d)
        if self.fit_intercept:
            return x[:-1].copy(), float(x[-1])
        return x.copy(), 0.0

    # -- the kernel, on all rows or on a block ---------------------------------------------
    def _run(self, z, rows, grad, beta):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _take(arr, rows):
        if arr is None or (hasattr(arr, "size") and arr.size == 0):
            return _EMPTY
        return arr if rows is None else np.ascontiguousarray(arr[rows])

    def _zvec(self, z, n=None):
        n = self.n if n is None else n
        z = np.ascontiguousarray(z, dtype=np.float64)
        if z.shape != (n,):
            raise ValueError(f"z must have shape ({n},), got {z.shape}")
        return z

    def _nonfinite(self, bad, z):
        """The error raised where derivatives are requested at a point they are not finite."""
        raise NonFiniteError(f"{self._loss_name()} returned a non-finite derivative at "
                              f"sample {bad} (z = {z[bad]!r}, y = {self.y[bad]!r})")

    def _loss_name(self):
        return type(self).__name__

    # -- z-space interface: one fused pass each ----------------------------------------------
    def loss_z(self, z):
        val, _ = self._run(self._zvec(z), None, _EMPTY, _EMPTY)
        return val if np.isfinite(val) else np.inf

    def loss_grad_z(self, z):
        z = self._zvec(z)
        grad = np.empty(self.n)
        val, bad = self._run(z, None, grad, _EMPTY)
        if bad >= 0:
            self._nonfinite(bad, z)
        return (val if np.isfinite(val) else np.inf), grad

    def loss_grad_parts_z(self, z):
        z = self._zvec(z)
        grad, beta = np.empty(self.n), np.empty(self.n)
        val, bad = self._run(z, None, grad, beta)
        if not np.isfinite(val) or bad >= 0:
            return np.inf, grad, None
        return val, grad, DiagLowRank(beta)

    def parts_z(self, z):
        z = self._zvec(z)
        beta = np.empty(self.n)
        _, bad = self._run(z, None, _EMPTY, beta)
        if bad >= 0:
            self._nonfinite(bad, z)
        return DiagLowRank(beta)

    # -- block-separable form (no statistics) -------------------------------------------------
    def block_loss(self, z_blk, rows, stats):
        z_blk = self._zvec(z_blk, len(z_blk))
        return self._run(z_blk, rows, _EMPTY, _EMPTY)[0]

    def block_loss_grad(self, z_blk, rows, stats):
        z_blk = self._zvec(z_blk, len(z_blk))
        grad = np.empty(z_blk.shape[0])
        val, _ = self._run(z_blk, rows, grad, _EMPTY)
        return val, grad

    def block_parts(self, z_blk, rows, stats):
        z_blk = self._zvec(z_blk, len(z_blk))
        beta = np.empty(z_blk.shape[0])
        self._run(z_blk, rows, _EMPTY, beta)
        return beta, None, None

    def _repr_extra(self):
        return ""

    def __repr__(self):
        return (f"{type(self).__name__}(n={self.n}, n_features={self.n_features}"
                f"{self._repr_extra()}, fit_intercept={self.fit_intercept}, lam={self.alpha:g})")
