"""Linear algebra building blocks: the design matrix, factorizations, PCG and least squares."""

from ._design import Design, InterceptDesign, as_design
from ._factor import FactorizationResult, shifted_cholesky
from ._lstsq import LstsqResult, lstsq
from ._nystrom import NystromPreconditioner
from ._pcg import PCGResult, pcg
from ._trcg import SteihaugResult, steihaug_cg

__all__ = ["Design", "InterceptDesign", "as_design", "shifted_cholesky", "FactorizationResult", "pcg",
           "PCGResult", "lstsq", "LstsqResult", "steihaug_cg", "SteihaugResult",
           "NystromPreconditioner"]
