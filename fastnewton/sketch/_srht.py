"""Subsampled randomized Hadamard transform (SRHT)."""

from __future__ import annotations

import numpy as np

from .._validation import check_rng, check_scalar
from . import _kernels
from ._base import Sketch
from ._hashing import key_from_seed, row_hash, sign_of

__all__ = ["SRHT"]

#: Columns transformed together by one thread.
SRHT_COLUMN_BLOCK = 16


def _pruned_split(N, m, rows):
    """Chunk length L of the pruned transform and the sampled rows split as hi * L + lo.

    H_N = H_{N/L} (x) H_L: a column costs N log2(L) flops for the chunk transforms plus
    m N / L for the m sampled outputs of the outer factor; L = N / K with K the power of
    two nearest the minimizer K* = N / (m ln 2) of that sum.
    """
    K = 1
    target = N / (m * np.log(2.0))
    while 2 * K <= N and abs(np.log2(2 * K / target)) < abs(np.log2(K / target)):
        K *= 2
    L = N // K
    return L, (rows // L).astype(np.int64), (rows % L).astype(np.int64)


class SRHT(Sketch):
    r"""Subsampled randomized Hadamard transform :math:`S = m^{-1/2} P H D`.

    D = diag of random signs (hash of ``(key, i)``), H the unnormalized
    Walsh-Hadamard matrix of order N = the next power of two >= n (A is zero-padded to
    N rows), P picks m of its N rows uniformly without replacement. Then
    :math:`E[S^T S] = I` restricted to the first n coordinates, every entry of S is
    ±1/sqrt(m), and ``S @ A`` costs O(N d log N) flops by a numba fast transform,
    whatever the sparsity of A (it is not an input-sparsity-time sketch).

    Sparse A is processed by column blocks of width ``SRHT_COLUMN_BLOCK`` from a CSC
    copy (made once per call, or reused from a ``Design``); only one chunk of rows of
    one column block per thread is dense at a time, never all of A.

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
    Memory: the (m, d) output, the sampled row indices (m) and signs (n), plus per
    running thread an L x 16 chunk and an m x 16 accumulator. The transform is pruned
    to the m sampled rows: with :math:`H_N = H_{N/L} \otimes H_L`, each chunk of L rows
    of a 16-column block is scaled, transformed by :math:`H_L` in cache (radix-4
    butterflies) and added into the m outputs with the signs of :math:`H_{N/L}`; one
    read of A, :math:`O(N \log L + m N / L)` flops per column, L chosen to minimize
    that (see ``_pruned_split``). Sparse A skips chunks of rows without nonzeros.

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
        self._split = _pruned_split(self.padded_n, self.sketch_size, self.rows)

    @staticmethod
    def default_size(n, d):
        """Default sketch size for Newton steps: ``min(n, max(8 d, 64))``."""
        return int(min(n, max(8 * d, 64)))

    def _coef(self, inp):
        return self._sign * inp.sqrt_w if inp.sqrt_w.size else self._sign

    def _apply(self, inp, out):
        design = inp.design
        coef = self._coef(inp)
        L, hi_rows, lo_rows = self._split
        if design.sparse:
            # kept on the design (a Design passed in, or the one cached for a scipy
            # matrix) and reused by later applications
            indptr, row_idx, data = design.csc_arrays()
            _kernels.srht_csc(indptr, row_idx, data, design.d, coef, L, hi_rows, lo_rows,
                              self.scale, SRHT_COLUMN_BLOCK, out)
        else:
            _kernels.srht_dense(design.A, coef, L, hi_rows, lo_rows, self.scale,
                                SRHT_COLUMN_BLOCK, out)

    def _rmatmat(self, Y):
        out = np.empty((self.n, Y.shape[1]))
        _kernels.srht_adjoint(Y, self.n, self._sign, self.padded_n, self.rows, self.scale,
                              SRHT_COLUMN_BLOCK, out)
        return out
