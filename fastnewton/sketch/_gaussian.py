"""Dense Gaussian sketch, the reference subspace embedding."""

from __future__ import annotations

import numpy as np

from .._validation import check_rng
from . import _kernels
from ._base import Sketch
from ._hashing import key_from_seed

__all__ = ["GaussianSketch"]

#: Columns of S drawn together (one generator per block of this many input rows).
GAUSSIAN_BLOCK = 4096


class GaussianSketch(Sketch):
    r"""Gaussian sketch :math:`S = G / \sqrt{m}`, :math:`G_{ij} \sim N(0, 1)` i.i.d.

    The entries are drawn (and stored) in float32, half the time and memory of
    float64 draws; S is exactly the float32-rounded Gaussian matrix, and products
    accumulate in float64.

    The reference embedding: S U is exactly a Gaussian matrix for any orthonormal U,
    so a (1 ± eps) subspace embedding of a d-dimensional subspace with probability
    1 - delta needs only m = O((d + log(1/delta)) / eps^2) rows; singular values of
    S U lie in about [1 - sqrt(d/m), 1 + sqrt(d/m)] (Davidson-Szarek).
    :meth:`default_size` is ``min(n, max(8 d, 64))``. ``S @ A`` costs m nnz(A) flops.

    Column block b of S (input rows ``b*4096 .. (b+1)*4096``) is drawn from a generator
    seeded by ``(key, b)`` each time it is needed, so S is never stored: memory is the
    (m, d) output plus one m x 4096 block. :meth:`to_dense` does draw all m x n.

    Parameters
    ----------
    sketch_size : int
        Number of rows m, 1 <= m.
    n : int
        Number of columns of S.
    seed : None, int, SeedSequence or numpy.random.Generator
    """

    def __init__(self, sketch_size, n, seed=None):
        self._init_shape(sketch_size, n)
        self.key = key_from_seed(check_rng(seed))
        self.scale = 1.0 / np.sqrt(self.sketch_size)

    @staticmethod
    def default_size(n, d):
        """Default sketch size for Newton steps: ``min(n, max(8 d, 64))``."""
        return int(min(n, max(8 * d, 64)))

    def _block(self, b):
        r0 = b * GAUSSIAN_BLOCK
        r1 = min(self.n, r0 + GAUSSIAN_BLOCK)
        g = np.random.default_rng([int(self.key), b]).standard_normal(
            (self.sketch_size, r1 - r0), dtype=np.float32)
        g *= np.float32(self.scale)
        return r0, g

    def _blocks(self):
        for b in range(-(-self.n // GAUSSIAN_BLOCK)):
            yield self._block(b)

    def _apply(self, inp, out):
        design = inp.design
        A = design.A
        for r0, G in self._blocks():
            if design.sparse:
                _kernels.dense_sketch_csr(G, r0, A.indptr, A.indices, A.data, inp.sqrt_w, out)
            else:
                _kernels.dense_sketch_dense(G, r0, A, inp.sqrt_w, out)

    def _rmatmat(self, Y):
        out = np.empty((self.n, Y.shape[1]))
        for r0, G in self._blocks():
            out[r0:r0 + G.shape[1]] = G.T.astype(np.float64) @ Y
        return out

    def to_dense(self):
        return np.hstack([G for _, G in self._blocks()]).astype(np.float64)
