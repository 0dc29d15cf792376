"""Linear algebra building blocks: the design-matrix wrapper and factorization helpers."""

from ._design import Design, as_design
from ._factor import FactorizationResult, shifted_cholesky

__all__ = ["Design", "as_design", "shifted_cholesky", "FactorizationResult"]
