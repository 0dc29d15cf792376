"""Sketching matrices S with fast products S @ A for sparse and dense A.

Every kind shares the interface of :class:`~fastnewton.sketch._base.Sketch`
(``S @ A``, ``apply(A, row_weights, out)``, ``S.T @ Y``, ``as_linear_operator()``,
``to_dense()``, ``shape``, ``dtype``); the row-separable ones (CountSketch, SparseSign,
RowSampler) also have ``apply_rows``. Sizes needed for a (1 ± eps) subspace embedding
of a d-dimensional subspace, and the Newton default (``default_size(n, d)``):

============== ====================================== ==================================
kind           embedding size m                       default (Newton)
============== ====================================== ==================================
countsketch    O(d^2 / (eps^2 delta))                 min(n, max(8 d, 64))
sparse-sign    O(d log(d/delta) / eps^2), k = 8       min(n, max(8 d, 64))
srht           O((sqrt d + sqrt log n)^2 log d/eps^2) min(n, max(8 d, 64))
gaussian       O((d + log(1/delta)) / eps^2)          min(n, max(8 d, 64))
sampling       O(d log(d/delta) / eps^2) (leverage)   max(64, ceil(4 d ln(d + 1)))
============== ====================================== ==================================
"""

from ._base import Sketch
from ._countsketch import CountSketch
from ._gaussian import GaussianSketch
from ._leverage import RowSampler, leverage_sampler, leverage_scores
from ._sparse_sign import SparseSign
from ._srht import SRHT

__all__ = ["Sketch", "CountSketch", "SparseSign", "SRHT", "GaussianSketch", "RowSampler",
           "leverage_scores", "leverage_sampler", "make_sketch", "SKETCHES"]

#: Registry of sketch kinds by name (``minimize(sketch=...)``, :func:`make_sketch`).
SKETCHES = {"countsketch": CountSketch, "sparse-sign": SparseSign, "srht": SRHT,
            "gaussian": GaussianSketch}


def make_sketch(kind, sketch_size, n, seed=None):
    """Build a sketch by name (``kind`` in :data:`SKETCHES`) or pass an instance through."""
    if not isinstance(kind, str):
        if hasattr(kind, "apply") and hasattr(kind, "shape"):
            if kind.shape[1] != n:
                raise ValueError(f"sketch has {kind.shape[1]} columns but A has {n} rows")
            return kind
        raise TypeError(f"sketch must be a name or a sketch object, got {type(kind).__name__}")
    try:
        cls = SKETCHES[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown sketch {kind!r}; choose one of {sorted(SKETCHES)}") from None
    return cls(sketch_size, n, seed=seed)
