"""Subsampled randomized Hadamard transform (SRHT)."""

from __future__ import annotations

import numpy as np

from .._validation import check_rng, check_scalar
from . import _kernels
from ._base import Sketch
from ._hashing import key_from_seed, row_hash, sign_of

__all__ = ["SRHT"]

#: Columns transformed together by one thread (its buffer is next_pow2(n) x this).
SRHT_COLUMN_BLOCK = 16


class SRHT(Sketch):
    r"""Subsampled randomized Hadamard transform :math:`S = m^{-1/2} P H D`.

    D = diag of random signs (hash of ``(key, i)``), H the unnormalized
    Walsh-Hadamard matrix of order N = the next power of two >= n (A is zero-padded to
    N rows), P picks m of its N rows uniformly without replacement. Then
    :math:`E[S^T S] = I` restricted to the first n coordinates, every entry of S is
    ±1/sqrt(m), and ``S @ A`` costs O(N d log N) flops by a numba fast transform,
    whatever the sparsity of A (it is not an input-sparsity-time sketch).

    Sparse A is processed by column blocks of width ``SRHT_COLUMN_BLOCK`` from a CSC
    copy (made once per call, or reused from a ``Design``); only one N x block buffer
    per thread is dense at a time, never all of A.

    Sketch size: a (1 ± eps) subspace embedding of a d-dimensional subspace with
    probability 1 - delta needs m = O((sqrt(d) + sqrt(log(n/delta)))^2 log(d/delta) / eps^2)
    (Tropp 2011); :meth:`default_size` is ``min(n, max(8 d, 64))``.

    Parameters
    ----------
    sketch_size : int
        Number of rows m, 1 <= m <= n.
    n : int
        Number of columns of S.
    seed : None, int, SeedSequence or numpy.random.Generator

    Notes
    -----
    Memory: the (m, d) output, the sampled row indices (m) and signs (n), plus one
    N x 16 float64 buffer and a 256 KiB scratch per running thread. The transform
    of a column block runs in two cache-friendly passes (Kronecker split of H,
    radix-4 butterflies); blocks of 16 columns balance the strided reads of dense A
    against the buffer staying in cache.

    Examples
    --------
    >>> import numpy as np
    >>> S = SRHT(8, 100, seed=0)
    >>> np.allclose(np.abs(S.to_dense()), 1 / np.sqrt(8))
    True
    """

    def __init__(self, sketch_size, n, seed=None):
        check_scalar(n, "n", low=1, integer=True)
        self._init_shape(sketch_size, n, max_size=int(n))
        rng = check_rng(seed)
        self.key = key_from_seed(rng)
        self.padded_n = 1 << max(0, int(self.n - 1).bit_length())
        self._sign = sign_of(row_hash(self.key, np.arange(self.n)))
        sub = np.random.default_rng([int(self.key), 1])
        self.rows = np.sort(sub.choice(self.padded_n, self.sketch_size, replace=False)).astype(np.int64)
        self.scale = 1.0 / np.sqrt(self.sketch_size)

    @staticmethod
    def default_size(n, d):
        """Default sketch size for Newton steps: ``min(n, max(8 d, 64))``."""
        return int(min(n, max(8 * d, 64)))

    def _coef(self, inp):
        return self._sign * inp.sqrt_w if inp.sqrt_w.size else self._sign

    def _apply(self, inp, out):
        design = inp.design
        coef = self._coef(inp)
        if design.sparse:
            if inp.from_design:
                indptr, row_idx, data = design.csc_arrays()
            else:
                At = design.A.tocsc()
                At.sort_indices()
                indptr, row_idx, data = At.indptr, At.indices, At.data
            _kernels.srht_csc(indptr, row_idx, data, design.d, coef, self.padded_n, self.rows,
                              self.scale, SRHT_COLUMN_BLOCK, out)
        else:
            _kernels.srht_dense(design.A, coef, self.padded_n, self.rows, self.scale,
                                SRHT_COLUMN_BLOCK, out)

    def _rmatmat(self, Y):
        out = np.empty((self.n, Y.shape[1]))
        _kernels.srht_adjoint(Y, self.n, self._sign, self.padded_n, self.rows, self.scale,
                              SRHT_COLUMN_BLOCK, out)
        return out
