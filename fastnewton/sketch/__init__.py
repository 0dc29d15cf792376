"""Sketching matrices S with fast products S @ A for sparse and dense A."""

from ._countsketch import CountSketch

__all__ = ["CountSketch", "make_sketch", "SKETCHES"]

#: Registry of sketch kinds by name.
SKETCHES = {"countsketch": CountSketch}


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
