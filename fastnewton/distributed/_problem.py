"""Client side: a row-partitioned problem whose blocks live on Dask workers."""

from __future__ import annotations

import numpy as np

from .._validation import check_scalar
from ..exceptions import ValidationError
from ..problems import PROBLEMS
from . import _blocks

__all__ = ["DistributedProblem"]


def _client_or_default(client):
    from distributed import Client, default_client

    if client is None:
        try:
            return default_client()
        except ValueError:
            raise ValueError("no Dask client: pass client=Client(...) or create one first "
                             "(e.g. distributed.Client(LocalCluster()))") from None
    if isinstance(client, str):
        try:
            return Client(client, timeout="10s")
        except OSError as exc:
            raise OSError(f"could not connect to the Dask scheduler at {client!r}: {exc}") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client or a scheduler address, "
                        f"got {type(client).__name__}")
    return client


def _check_row_ranges(declared, starts, rows):
    """Blocks may declare their global rows (start, stop): they must tile 0..n in order."""
    for k, (rng, start, count) in enumerate(zip(declared, starts, rows)):
        if rng is None:
            continue
        lo, hi = (int(v) for v in rng)
        if hi - lo != count:
            raise ValidationError(f"block {k} declares rows {lo}..{hi} ({hi - lo} rows) but its "
                                  f"A has {count} rows")
        if lo != start:
            what = "overlaps the previous block" if lo < start else "leaves rows uncovered"
            raise ValidationError(f"block {k} declares rows starting at {lo}, expected {start}: "
                                  f"it {what} (blocks must tile the rows contiguously, in order)")


class DistributedProblem:
    """A problem family whose rows are split into blocks held by Dask workers.

    Build it with :meth:`from_blocks` (arrays from the client) or :meth:`from_files`
    (each worker loads its own block from ``.npz`` / ``.npy`` / ``.mtx`` files, so the
    data never passes through the client). Blocks are contiguous row ranges in the
    given order; each block carries the family's per-row arguments (``A``, ``b``, ``w``).

    Fault tolerance: each block is the result of a task (load or build) that the
    scheduler can rerun, so a block lost with its worker is rebuilt from its source
    (files, or the arrays embedded in the task) and the solve goes on unchanged.

    Parameters
    ----------
    client : distributed.Client or str
        The client (or a scheduler address to connect to).
    family : str
        A key of ``fastnewton.problems.PROBLEMS`` (e.g. ``"exp"``).
    sources : list of dict
        Per block, the family's per-row constructor arguments, as arrays or file paths,
        and optionally ``"rows": (start, stop)``, the block's global row range, checked
        to tile 0..n contiguously in order.
    lam : float
        Ridge ½·lam·‖x‖² (applied once, on the client; families with unpenalized
        coordinates, such as a GLM's intercept, lay it out as a per-coordinate vector).
    options : dict, optional
        The family's global constructor arguments as a dict, for names this constructor
        takes itself: ``DistributedProblem.from_blocks("glm", blocks,
        options={"family": "poisson"})``.
    **kwargs
        The family's other (global) constructor arguments, e.g. ``f="cosh"``.
    """

    def __init__(self, client, family, sources, lam=0.0, options=None, **kwargs):
        self.client = _client_or_default(client)
        if options is not None:
            if not isinstance(options, dict):
                raise TypeError(f"options must be a dict, got {type(options).__name__}")
            kwargs = {**options, **kwargs}
        if family not in PROBLEMS:
            raise ValueError(f"unknown family {family!r}; choose one of {sorted(PROBLEMS)}")
        if not isinstance(sources, (list, tuple)) or not sources:
            raise ValidationError("sources must be a non-empty list of per-block dicts")
        for k, src in enumerate(sources):
            if not isinstance(src, dict) or "A" not in src:
                raise ValidationError(f"sources[{k}] must be a dict with at least the key 'A'")
        sources = [dict(src) for src in sources]
        declared = [src.pop("rows", None) for src in sources]
        self.family = family
        self.lam = float(check_scalar(lam, "lam", low=0.0))
        self.kwargs = dict(kwargs)
        self.sources = list(sources)
        shapes = self.client.gather([self.client.submit(_blocks.source_shape, src, pure=False)
                                     for src in self.sources])
        d = {s[1] for s in shapes}
        if len(d) != 1:
            raise ValidationError(f"blocks have different column counts: "
                                  f"{[s[1] for s in shapes]}")
        self.d = d.pop()
        self.block_rows = [s[0] for s in shapes]
        self.row_starts = [int(v) for v in np.cumsum([0] + self.block_rows[:-1])]
        self.n = int(sum(self.block_rows))
        _check_row_ranges(declared, self.row_starts, self.block_rows)
        self.blocks = [
            self.client.submit(_blocks.build_block, src, start, family, self.kwargs, pure=False)
            for src, start in zip(self.sources, self.row_starts)
        ]
        # Fail now (with the family's own message) rather than in the first step.
        self.client.gather(self.blocks)
        # The length of x and the layout of the ridge come from the family (a GLM with an
        # intercept has d = columns + 1 and no ridge on the intercept).
        self.d, unit_ridge = self.client.submit(_blocks.block_info, self.blocks[0],
                                                pure=False).result()
        self.lam = self.lam * unit_ridge if isinstance(unit_ridge, np.ndarray) else self.lam

    @classmethod
    def from_blocks(cls, family, blocks, *, client=None, lam=0.0, options=None, **kwargs):
        """Blocks given as dicts of arrays (``{"A": A_k, "b": b_k, "w": w_k}``).

        The arrays travel inside the block-building tasks, so the scheduler can rebuild
        a lost block; for data larger than the client's memory use :meth:`from_files`.
        """
        return cls(client, family, list(blocks), lam=lam, options=options, **kwargs)

    @classmethod
    def from_files(cls, family, files, *, client=None, lam=0.0, options=None, **kwargs):
        """Blocks given as dicts of file paths, loaded by the workers themselves."""
        srcs = [{k: str(v) for k, v in f.items()} for f in files]
        return cls(client, family, srcs, lam=lam, options=options, **kwargs)

    def map(self, func, *args):
        """Run ``func(block, *args)`` on every block; results in block order."""
        futures = [self.client.submit(func, blk, *args, pure=False) for blk in self.blocks]
        return self.client.gather(futures)

    def __repr__(self):
        return (f"DistributedProblem(family={self.family!r}, n={self.n}, d={self.d}, "
                f"blocks={len(self.blocks)})")
