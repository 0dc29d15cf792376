"""Seeded generalized-linear-model problems with the structure of real sparse data.

Re-exported by :mod:`fastnewton.datasets` (``make_glm``, ``GLMData``, ``GLM_FAMILIES``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._validation import check_rng, check_scalar
from .exceptions import ValidationError

__all__ = ["make_glm", "GLMData", "GLM_FAMILIES"]

#: The families of :func:`make_glm` (those of :class:`fastnewton.GLMRegression`).
GLM_FAMILIES = ("binomial", "poisson", "gamma", "tweedie", "normal")

# Rows longer than this (and longer than d / 8) draw their distinct columns by the
# Gumbel-top-k trick (O(d) per row) instead of by rejection of duplicates.
_LONG_ROW = 64
# The linear predictor is clipped to +-_Z_CAP when drawing y (a mean below e^30).
_Z_CAP = 30.0


@dataclass(frozen=True)
class GLMData:
    """A generated GLM instance (see :func:`make_glm`).

    Attributes
    ----------
    A : scipy.sparse.csr_array or ndarray, shape (n, d)
        The design (CSR unless ``dense=True``).
    y : ndarray (n,)
        Targets drawn from the family at the true linear predictor.
    coef : ndarray (d,)
        True coefficients on the columns of ``A`` as returned (after scaling and
        standardization): ``A @ coef + intercept`` is the true linear predictor.
    intercept : float
        True intercept.
    sample_weight : ndarray (n,) or None
        Sample weights (``weighted=True``), else None.
    family : str
    power : float or None
        Tweedie power (``family="tweedie"``), else None.
    high_leverage_rows : ndarray of int
        Indices of the rows made high-leverage (empty unless ``n_high_leverage > 0``).
    """

    A: object
    y: np.ndarray
    coef: np.ndarray
    intercept: float
    sample_weight: np.ndarray | None
    family: str
    power: float | None
    high_leverage_rows: np.ndarray


def _column_probabilities(d, popularity, exponent, rng):
    """Probability of each column: Zipf 1/rank^s over a random ranking, or uniform."""
    if popularity == "uniform":
        return np.full(d, 1.0 / d)
    weights = np.arange(1, d + 1, dtype=np.float64) ** -exponent
    p = np.empty(d)
    p[rng.permutation(d)] = weights / weights.sum()
    return p


def _row_lengths(n, d, k, kind, exponent, rng):
    """Nonzeros per row: k everywhere, or a power law with mean about k, in [1, d]."""
    if kind == "constant":
        return np.full(n, min(k, d), dtype=np.int64)
    # Pareto with tail exponent a and scale x_m has mean x_m a / (a - 1).
    x_m = k * (exponent - 1.0) / exponent
    u = 1.0 - rng.random(n)  # (0, 1]
    lengths = np.rint(x_m * u ** (-1.0 / exponent))
    return np.clip(lengths, 1, d).astype(np.int64)


def _distinct_columns(lengths, p, rng):
    """Flat column indices, ``lengths[i]`` distinct columns in row i drawn with probability p.

    Short rows: draw with replacement, then redraw each duplicate within a row (with
    probability p, rejected again while it is not new) until the row's columns are distinct.
    Long rows: the Gumbel-top-k trick on the d log-probabilities.
    Returns (rows, cols), sorted by row, then column.
    """
    n, d = lengths.size, p.size
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    long_cut = max(_LONG_ROW, d // 8)
    long_rows = np.flatnonzero(lengths > long_cut)
    short = lengths.copy()
    short[long_rows] = 0
    rows = np.repeat(np.arange(n, dtype=np.int64), short)
    d64 = np.int64(d)

    def draw(size):
        return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), d - 1)

    # Keys row * d + col; a duplicate within a row is redrawn until it is new.
    keys = np.sort(rows * d64 + draw(rows.size), kind="stable")  # rows ascend: runs
    dup = np.zeros(keys.size, dtype=bool)
    dup[1:] = keys[1:] == keys[:-1]
    pending = keys[dup] // d64
    keys = keys[~dup]
    accepted = []  # sorted chunks of keys accepted by the redraws
    for _ in range(100_000):
        if not pending.size:
            break
        new = np.sort(pending * d64 + draw(pending.size), kind="stable")
        first = np.ones(new.size, dtype=bool)
        first[1:] = new[1:] != new[:-1]
        cand = new[first]
        taken = _in_sorted(keys, cand)
        for chunk in accepted:
            taken |= _in_sorted(chunk, cand)
        accepted.append(cand[~taken])
        pending = np.concatenate([new[~first], cand[taken]]) // d64
    else:  # pragma: no cover - needs an absurdly skewed popularity
        raise RuntimeError("could not draw distinct columns; lower zipf_exponent or nnz_per_row")
    if accepted:
        accepted = np.sort(np.concatenate(accepted))
        keys = np.insert(keys, np.searchsorted(keys, accepted), accepted)
    if long_rows.size:
        logp = np.log(p)
        extra = [keys]
        for i in long_rows:
            scores = logp + rng.gumbel(size=d)
            chosen = np.argpartition(-scores, lengths[i] - 1)[:lengths[i]]
            extra.append(np.int64(i) * d64 + chosen.astype(np.int64))
        keys = np.sort(np.concatenate(extra), kind="stable")
    return keys // d64, keys % d64


def _in_sorted(sorted_keys, queries):
    """Whether each query is in the sorted array (binary search)."""
    if not sorted_keys.size:
        return np.zeros(queries.size, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return sorted_keys[pos] == queries


def _draw_y(family, power, z, dispersion, rng):
    """Targets of the family at linear predictor z (log link but for binomial/normal)."""
    z = np.clip(z, -_Z_CAP, _Z_CAP)
    if family == "binomial":
        return (rng.random(z.size) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    if family == "normal":
        return z + np.sqrt(dispersion) * rng.standard_normal(z.size)
    mu = np.exp(z)
    if family == "poisson":
        return rng.poisson(mu).astype(np.float64)
    if family == "gamma":
        shape = 1.0 / dispersion
        return rng.gamma(shape, mu / shape)
    if 1.0 < power < 2.0:  # compound Poisson-gamma
        lam = mu ** (2.0 - power) / (dispersion * (2.0 - power))
        alpha = (2.0 - power) / (power - 1.0)
        theta = dispersion * (power - 1.0) * mu ** (power - 1.0)
        counts = rng.poisson(lam)
        y = np.zeros(z.size)
        pos = counts > 0
        y[pos] = rng.gamma(counts[pos] * alpha, theta[pos])
        return y
    # power >= 2 (but 2): a gamma draw with the Tweedie mean mu and variance phi mu^p
    shape = mu ** (2.0 - power) / dispersion
    return np.maximum(rng.gamma(shape, mu / shape), np.finfo(np.float64).tiny)


def _check_family(family, power):
    if family not in GLM_FAMILIES:
        raise ValidationError(f"family must be one of {GLM_FAMILIES}, got {family!r}")
    if family != "tweedie":
        if power is not None:
            raise ValidationError(f"power applies to family='tweedie' only, got power={power!r} "
                                  f"with family={family!r}")
        return None
    if power is None:
        raise ValidationError("family='tweedie' needs power (1 < power < 2 or power > 2)")
    check_scalar(power, "power")
    if not (1.0 < power < 2.0 or power > 2.0):
        raise ValidationError("power must be in (1, 2) or above 2 for family='tweedie' "
                              f"(use 'poisson' for 1, 'gamma' for 2, 'normal' for 0), got {power!r}")
    return float(power)


def make_glm(n, d, *, family="binomial", power=None, nnz_per_row=20, column_popularity="zipf",
             zipf_exponent=1.1, row_lengths="constant", row_length_exponent=2.0,
             column_scale=None, standardize=False, dense=False, canonical=True,
             n_high_leverage=0, leverage_scale=10.0, intercept=0.0, predictor_std=None,
             dispersion=0.5, weighted=False, dtype=np.float64, seed=None):
    r"""Generate a seeded GLM problem with the structure of real sparse feature matrices.

    Sparse rows (the default) hold ``nnz_per_row`` distinct columns each (or a power-law
    number of them), drawn with a Zipf popularity: column j, of popularity rank r_j
    (a random ranking), is picked with probability proportional to
    :math:`r_j^{-s}`, ``s = zipf_exponent``, so a few columns are in most rows and most
    columns in few, as for words or categorical levels. Values are N(0, 1/nnz_per_row).
    Columns are then scaled (``column_scale``) or standardized, and a few rows can be
    made high-leverage. With true coefficients drawn N(0, 1) on the unscaled matrix
    :math:`A_0` (and rescaled with the columns, so that the true linear predictor
    :math:`\eta = A\,\mathrm{coef} + \mathrm{intercept}` does not depend on the scaling),
    y is drawn from the family at :math:`\eta` (logit link for binomial, identity for
    normal, log for the others).

    Parameters
    ----------
    n, d : int
        Shape of A.
    family : {"binomial", "poisson", "gamma", "tweedie", "normal"}
        Distribution of y: Bernoulli(expit(eta)); Poisson(e^eta); gamma with mean e^eta and
        shape 1/dispersion; Tweedie compound Poisson-gamma for 1 < power < 2 (mean e^eta,
        variance dispersion * mean^power); for power > 2 a gamma draw with that mean and
        variance; normal: eta + N(0, dispersion).
    power : float, optional
        Tweedie power (``family="tweedie"`` only): in (1, 2) or above 2.
    nnz_per_row : int
        Nonzeros per row (``row_lengths="constant"``) or their mean (``"powerlaw"``);
        at most d. Ignored with ``dense=True``.
    column_popularity : {"zipf", "uniform"}
        How columns are picked in a row.
    zipf_exponent : float > 0
        The exponent s of the Zipf popularity.
    row_lengths : {"constant", "powerlaw"}
        ``"powerlaw"``: row i has :math:`\mathrm{round}(x_m U^{-1/a})` nonzeros, U uniform,
        ``a = row_length_exponent``, :math:`x_m` such that the mean is about
        ``nnz_per_row``, clipped to [1, d] (long rows are rare and heavy).
    row_length_exponent : float > 1
        Tail exponent a of the power-law row lengths.
    column_scale : (lo, hi) or None
        Scale column j by a factor drawn log-uniformly in [lo, hi] (e.g. ``(1e-3, 1)``:
        an unstandardized design with column scales over three decades). None: no scaling.
    standardize : bool
        Scale every column to unit standard deviation, as scikit-learn's
        ``StandardScaler``: dense A is also centered; sparse A is not (``with_mean=False``,
        which keeps the sparsity). Applied after ``column_scale`` (which it then undoes).
        Constant columns are left as they are.
    dense : bool
        A dense n x d Gaussian design, entries N(0, 1/d), every entry nonzero (the
        sparse-structure parameters do not apply), as an ndarray.
    canonical : bool
        False: a valid CSR matrix that is not in canonical form: the column indices of
        each row are shuffled and about 10% of the nonzeros are split into two duplicate
        entries of half the value each. Summing the duplicates (``A.sum_duplicates()``)
        gives back the canonical matrix exactly (halves add up exactly in binary).
    n_high_leverage : int
        Number of rows (chosen at random) whose values are multiplied by
        ``leverage_scale``: their leverage scores are far above the average d/n.
    leverage_scale : float > 0
        Factor of the high-leverage rows.
    intercept : float
        True intercept.
    predictor_std : float, optional
        Standard deviation of the true linear predictor (without intercept) on a typical
        row; default 1.0 for binomial and normal, 0.5 for the log-link families.
    dispersion : float > 0
        Dispersion of gamma, Tweedie and normal targets (unused by binomial, Poisson).
    weighted : bool
        Also draw sample weights, uniform in [0.5, 2).
    dtype : float32 or float64
        Dtype of A's values (y and coef are float64).
    seed : None, int or Generator

    Returns
    -------
    GLMData
        ``A``, ``y``, ``coef``, ``intercept``, ``sample_weight``, ``family``, ``power``,
        ``high_leverage_rows``.

    Notes
    -----
    The true linear predictor is clipped to +-30 when y is drawn (high-leverage rows
    with the log link could otherwise overflow). Under Zipf popularity the rarest
    columns can be empty when ``n * nnz_per_row`` is small compared with d; use a ridge.

    Examples
    --------
    >>> import fastnewton as fn
    >>> data = fn.datasets.make_glm(1000, 50, family="poisson", nnz_per_row=5, seed=0)
    >>> data.A.shape, int(data.A.nnz)
    ((1000, 50), 5000)
    >>> bool((data.y >= 0).all())
    True
    """
    power, predictor_std, dtype, column_scale = _check_make_glm(
        n, d, family, power, nnz_per_row, column_popularity, zipf_exponent, row_lengths,
        row_length_exponent, column_scale, n_high_leverage, leverage_scale, intercept,
        predictor_std, dispersion, dtype, dense, canonical)
    rng = check_rng(seed)

    # A0: the unscaled design.
    if dense:
        A = rng.standard_normal((n, d)) / np.sqrt(d)
    else:
        p = _column_probabilities(d, column_popularity, zipf_exponent, rng)
        lengths = _row_lengths(n, d, nnz_per_row, row_lengths, row_length_exponent, rng)
        rows, cols = _distinct_columns(lengths, p, rng)
        vals = rng.standard_normal(rows.size) / np.sqrt(min(nnz_per_row, d))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        index_dtype = np.int32 if max(rows.size, d) < 2**31 - 1 else np.int64
        A = sp.csr_array((vals, cols.astype(index_dtype), indptr.astype(index_dtype)), shape=(n, d))
    coef0 = rng.standard_normal(d) * predictor_std
    hl_rows = np.sort(rng.choice(n, size=n_high_leverage, replace=False)) if n_high_leverage \
        else np.zeros(0, dtype=np.int64)
    if hl_rows.size:
        if dense:
            A[hl_rows] *= leverage_scale
        else:
            row_of = np.repeat(np.arange(n), np.diff(A.indptr))
            A.data[np.isin(row_of, hl_rows)] *= leverage_scale
    eta = A @ coef0 + intercept
    # y (and the weights) before the column transform: the same seed gives the same y
    # whatever column_scale, standardize and canonical are.
    y = _draw_y(family, power, eta, dispersion, rng)
    sample_weight = rng.uniform(0.5, 2.0, size=n) if weighted else None

    # Column transform A = (A0 - center) * mult, so coef = coef0 / mult and the
    # intercept absorbs center . coef0 (same eta).
    mult = np.ones(d)
    if column_scale is not None:
        lo, hi = column_scale
        mult *= np.exp(rng.uniform(np.log(lo), np.log(hi), size=d))
    center = np.zeros(d)
    if standardize:
        if dense:
            center = A.mean(axis=0)
            std = A.std(axis=0)
        else:
            mean = np.asarray(A.sum(axis=0)).ravel() / n
            sq = np.asarray(A.multiply(A).sum(axis=0)).ravel() / n
            std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        std = np.where(std > 0, std, 1.0)
        mult = 1.0 / std
    if dense:
        A = (A - center) * mult
    elif column_scale is not None or standardize:
        A.data *= mult[A.indices]
    coef = coef0 / mult
    true_intercept = float(intercept + center @ coef0)


    if not dense and not canonical:
        A = _non_canonical(A, rng)
    A = A.astype(dtype, copy=False)
    return GLMData(A=A, y=y, coef=coef, intercept=true_intercept, sample_weight=sample_weight,
                   family=family, power=power, high_leverage_rows=hl_rows)


def _check_make_glm(n, d, family, power, nnz_per_row, column_popularity, zipf_exponent,
                    row_lengths, row_length_exponent, column_scale, n_high_leverage,
                    leverage_scale, intercept, predictor_std, dispersion, dtype, dense,
                    canonical):
    """Validate :func:`make_glm`'s arguments; returns (power, predictor_std, dtype,
    column_scale as a pair of floats or None)."""
    check_scalar(n, "n", low=1, integer=True)
    check_scalar(d, "d", low=1, integer=True)
    power = _check_family(family, power)
    check_scalar(nnz_per_row, "nnz_per_row", low=1, integer=True)
    if column_popularity not in ("zipf", "uniform"):
        raise ValidationError("column_popularity must be 'zipf' or 'uniform', "
                              f"got {column_popularity!r}")
    check_scalar(zipf_exponent, "zipf_exponent", low=0.0, low_inclusive=False)
    if row_lengths not in ("constant", "powerlaw"):
        raise ValidationError(f"row_lengths must be 'constant' or 'powerlaw', got {row_lengths!r}")
    check_scalar(row_length_exponent, "row_length_exponent", low=1.0, low_inclusive=False)
    if column_scale is not None:
        try:
            lo, hi = (float(v) for v in column_scale)
        except (TypeError, ValueError):
            raise ValidationError("column_scale must be None or a pair (lo, hi) with "
                                  f"0 < lo <= hi, got {column_scale!r}") from None
        if not (0.0 < lo <= hi < np.inf):
            raise ValidationError(f"column_scale must satisfy 0 < lo <= hi, got {column_scale!r}")
        column_scale = (lo, hi)
    check_scalar(n_high_leverage, "n_high_leverage", low=0, high=n, integer=True)
    check_scalar(leverage_scale, "leverage_scale", low=0.0, low_inclusive=False)
    check_scalar(intercept, "intercept")
    if predictor_std is None:
        predictor_std = 1.0 if family in ("binomial", "normal") else 0.5
    check_scalar(predictor_std, "predictor_std", low=0.0)
    check_scalar(dispersion, "dispersion", low=0.0, low_inclusive=False)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValidationError(f"dtype must be float32 or float64, got {dtype}")
    if dense and not canonical:
        raise ValidationError("canonical=False applies to sparse matrices only (dense=True given)")
    return power, predictor_std, dtype, column_scale


def _non_canonical(A, rng, split_fraction=0.1):
    """Shuffle each row's indices and split ~10% of the entries into two halves."""
    n = A.shape[0]
    counts = np.diff(A.indptr)
    rows = np.repeat(np.arange(n), counts)
    split = rng.random(A.nnz) < split_fraction
    reps = np.where(split, 2, 1)
    new_rows = np.repeat(rows, reps)
    new_cols = np.repeat(A.indices, reps)
    new_vals = np.repeat(A.data, reps)
    new_vals[np.repeat(split, reps)] *= 0.5
    # shuffle within rows: sort by (row, random key)
    order = np.lexsort((rng.random(new_rows.size), new_rows))
    indptr = np.zeros(n + 1, dtype=A.indptr.dtype)
    np.cumsum(np.bincount(new_rows, minlength=n), out=indptr[1:])
    out = sp.csr_array((new_vals[order], new_cols[order].astype(A.indices.dtype), indptr),
                       shape=A.shape)
    out.has_canonical_format = False
    out.has_sorted_indices = False
    return out
