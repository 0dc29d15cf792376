"""Benchmark tooling of fastnewton: ``python -m fastnewton.bench.report`` (the report generator).

The suites themselves live in the repository's ``bench/`` folder (pytest-benchmark); the
report generator is :mod:`fastnewton.report`, reachable here under the name the benchmark
issue gives it, and as ``fastnewton report``.
"""
