"""Counter-based hashing: the random choice for row i depends on (key, i) only.

This is what makes sketches partition-invariant: the bucket and sign of a row are the
same whether the row is sketched alone, in a block, on another machine or thread.
"""

import numpy as np

__all__ = ["splitmix64", "row_hash", "key_from_seed"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x):
    """The SplitMix64 finalizer applied elementwise to a uint64 array (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64).copy()
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def key_from_seed(rng):
    """Draw a 64-bit sketch key from a numpy Generator."""
    return np.uint64(rng.integers(0, 2**63, dtype=np.int64))


def row_hash(key, rows, stream=0):
    """64-bit hashes of global row indices ``rows`` for ``key`` (and an independent ``stream``)."""
    rows = np.asarray(rows, dtype=np.uint64)
    base = splitmix64(np.uint64(key) ^ splitmix64(np.uint64(stream) + _GOLDEN))
    with np.errstate(over="ignore"):
        return splitmix64(rows * _GOLDEN + base)


def bucket_of(h, m):
    """Map 64-bit hashes to [0, m) by multiply-shift on the high 32 bits (m < 2**32)."""
    hi = (h >> np.uint64(32)).astype(np.uint64)
    with np.errstate(over="ignore"):
        return ((hi * np.uint64(m)) >> np.uint64(32)).astype(np.int64)


def sign_of(h):
    """+1/-1 from the lowest bit of the hash."""
    return 1.0 - 2.0 * (h & np.uint64(1)).astype(np.float64)
