"""Distributed approximate Newton on Dask (optional extra: ``pip install fastnewton[distributed]``).

A :class:`DistributedProblem` keeps the rows of A in blocks on Dask workers; per Newton
step the client broadcasts x (d numbers) and gets back partial losses, gradients and
m x d partial sketches (or d x d partial Grams), reduced in block order. Start the
cluster the Dask way: ``LocalCluster`` on one machine, dask-jobqueue's ``SLURMCluster`` or
``dask-mpi`` on HPC systems.
"""

try:
    import distributed as _distributed  # noqa: F401  (fail early with a clear message)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastnewton.distributed needs dask.distributed: "
                      "pip install 'fastnewton[distributed]'") from exc

from ._driver import minimize
from ._problem import DistributedProblem

__all__ = ["DistributedProblem", "minimize"]
