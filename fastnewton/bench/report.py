"""``python -m fastnewton.bench.report results.json -o report/``: the report generator.

The same program as ``python -m fastnewton.report`` and ``fastnewton report`` (one
implementation, :mod:`fastnewton.report`; same arguments and exit codes: 0 written,
2 bad input or usage).
"""

import sys

from ..report import main as _main

__all__ = ["main"]


def main(argv=None):
    """Run :func:`fastnewton.report.main` under this module's name."""
    return _main(argv, prog="python -m fastnewton.bench.report")


if __name__ == "__main__":
    sys.exit(main())
