"""Step models of the Newton driver: how each method turns (parts, g) into a direction.

A step model is built once per solve (``__init__(problem, rng, sketch, sketch_size)``)
and then called once per Newton step: ``direction(parts, g, timings) -> Direction``.
It adds the seconds it spends to the phases of ``timings`` (``sketch``, ``assemble``,
``factor``, ``solve``). New methods register a class in :data:`STEP_MODELS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._validation import check_scalar
from .exceptions import ValidationError
from .hessian import gram, sketched_gram
from .linalg import shifted_cholesky
from .sketch import RowSampler, leverage_sampler, make_sketch

__all__ = ["Direction", "STEP_MODELS", "default_sketch_size", "ExactStep", "SketchStep",
           "SampleStep"]


def default_sketch_size(n, d):
    """Default sketch size of the ``sketch`` method: ``min(n, max(8 d, 64))``."""
    return int(min(n, max(8 * d, 64)))


@dataclass
class Direction:
    """A search direction and what it cost.

    ``p`` is the direction (descent for g), ``shift`` the diagonal shift used to factor
    an indefinite/singular model Hessian, ``inner_iters`` iterations of an inner
    iterative solver (0 for direct solves), ``sketch_size`` rows of the sketch used (0
    for none). ``subspace`` asks the driver to refine p with the previous step (exact
    quadratic model over span{p, previous step}; used by fixed-sketch methods).
    """

    p: np.ndarray
    shift: float = 0.0
    inner_iters: int = 0
    sketch_size: int = 0
    subspace: bool = False


class _FactoredStep:
    """Shared part of the direct step models: factor the model Hessian, solve."""

    def _solve(self, H, g, timings):
        t0 = time.perf_counter()
        fac = shifted_cholesky(H)
        t1 = time.perf_counter()
        p = -fac.solve(g)
        timings["factor"] += t1 - t0
        timings["solve"] += time.perf_counter() - t1
        return p, fac.shift


class ExactStep(_FactoredStep):
    """Newton direction from the exactly assembled Hessian."""

    name = "exact"

    def __init__(self, problem, rng, sketch, sketch_size):
        self.problem = problem

    def direction(self, parts, g, timings):
        t0 = time.perf_counter()
        H = gram(self.problem.design, parts, ridge=self.problem.lam)
        timings["assemble"] += time.perf_counter() - t0
        p, shift = self._solve(H, g, timings)
        return Direction(p, shift=shift)


class SketchStep(_FactoredStep):
    """Approximate Newton direction from the Hessian of a fixed sketch of diag(sqrt(beta_+)) A."""

    name = "sketch"

    def __init__(self, problem, rng, sketch, sketch_size):
        n, d = problem.n, problem.d
        m = default_sketch_size(n, d) if sketch_size is None else sketch_size
        check_scalar(m, "sketch_size", low=1, integer=True)
        if m > n:  # more rows than A: never cheaper than exact, and memory ~ m
            raise ValidationError(f"sketch_size must be at most n = {n} (the rows of A), got {m}; "
                             f"use method='exact' for the full Hessian")
        self.problem = problem
        self.sketch_size = int(m)
        self.sketch = make_sketch(sketch, self.sketch_size, n, seed=rng)
        self._buf = np.empty((self.sketch_size, d))

    def direction(self, parts, g, timings):
        t0 = time.perf_counter()
        H = sketched_gram(self.problem.design, parts, self.sketch, ridge=self.problem.lam,
                          out=self._buf)
        timings["sketch"] += time.perf_counter() - t0
        p, shift = self._solve(H, g, timings)
        return Direction(p, shift=shift, sketch_size=self.sketch_size, subspace=True)


class SampleStep(_FactoredStep):
    """Approximate Newton direction from leverage-score row sampling of diag(sqrt(beta_+)) A.

    The papers' algorithm: every step computes approximate (ridge) leverage scores of
    diag(sqrt(beta_+)) A (a SparseSign sketch, an SVD and a JL projection, see
    :func:`~fastnewton.sketch.leverage_scores`), samples ``sketch_size`` rows
    (default :meth:`RowSampler.default_size`) with replacement and uses the Gram of the
    rescaled rows plus the exact low-rank part. The rows are re-sampled at every step
    (beta, hence the leverage scores, change with x) from a stream derived from the
    solve's seed: same seed, same iterates; a resumed solve draws the stream afresh.
    """

    name = "sample"

    def __init__(self, problem, rng, sketch, sketch_size):
        n, d = problem.n, problem.d
        m = RowSampler.default_size(n, d) if sketch_size is None else sketch_size
        check_scalar(m, "sketch_size", low=1, integer=True)
        self.problem = problem
        self.sketch_size = int(m)
        self.rng = rng

    def direction(self, parts, g, timings):
        t0 = time.perf_counter()
        beta_plus, _ = parts.psd_split()
        S = leverage_sampler(self.problem.design, self.sketch_size, row_weights=beta_plus,
                             seed=self.rng, ridge=self.problem.lam)
        H = sketched_gram(self.problem.design, parts, S, ridge=self.problem.lam)
        timings["sketch"] += time.perf_counter() - t0
        p, shift = self._solve(H, g, timings)
        return Direction(p, shift=shift, sketch_size=self.sketch_size)


#: Registry of step models by method name (``minimize(method=...)``).
STEP_MODELS = {"exact": ExactStep, "sketch": SketchStep, "sample": SampleStep}
