"""Batch-job plumbing of ``fastnewton solve``: job files, problem building, fingerprints.

A *job* names a problem family of :data:`fastnewton.problems.PROBLEMS`, the values of
its constructor arguments (arrays as files) and the solver options. It comes from a
JSON or TOML job file, from command-line flags, or both (flags win)::

    {"problem": "exp",
     "params": {"A": "A.npz", "b": "b.npy", "w": "w.npy", "f": "cosh", "lam": 1e-6},
     "solver": {"method": "exact", "tol": 1e-10, "maxiter": 50, "seed": 0},
     "x0": "x0.npy", "out": "result.npz", "report": "result.json",
     "checkpoint": "ckpt.npz"}

A parameter value is read from a file when it is ``{"file": PATH}`` (optionally with
``"key"``) or a string ending in a known suffix (``.npz``, ``.npy``, ``.mtx``, ``.svm``
...; ``PATH:KEY`` picks a member); relative paths are relative to the job file. Any
other value is passed to the constructor as is. New families become reachable by
registering them in ``PROBLEMS``; nothing here names a family.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os

from . import io as fio
from .exceptions import ValidationError

__all__ = ["JobError", "read_job_file", "parse_param", "Job", "SOLVER_KEYS"]

#: Solver options a job may set (passed to ``fastnewton.minimize``).
SOLVER_KEYS = ("method", "sketch", "sketch_size", "tol", "maxiter", "seed")
#: Solver options that change the iterates (part of the checkpoint fingerprint).
_TRAJECTORY_KEYS = ("method", "sketch", "sketch_size", "seed")
_TOP_KEYS = {"problem", "params", "solver", "x0", "out", "report", "checkpoint", "threads"}


class JobError(ValidationError):
    """A job file or job option is malformed (unknown key, missing argument ...)."""


def read_job_file(path):
    """Read a ``.json`` or ``.toml`` job file into a dict, paths made absolute."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"job: no such file {path!r}")
    try:
        if path.lower().endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    raise JobError("job: TOML job files need Python >= 3.11 or the tomli "
                                   "package; use a .json job file") from None
            with open(path, "rb") as fh:
                job = tomllib.load(fh)
        else:
            with open(path, encoding="utf-8") as fh:
                job = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobError(f"job: cannot parse {path!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(job, dict):
        raise JobError(f"job: {path!r} must hold an object/table at the top level")
    unknown = set(job) - _TOP_KEYS
    if unknown:
        raise JobError(f"job: unknown key(s) {sorted(unknown)} in {path!r}; "
                       f"allowed: {sorted(_TOP_KEYS)}")
    for key in ("params", "solver"):
        if not isinstance(job.get(key, {}), dict):
            raise JobError(f"job: {key!r} must be an object/table")
    bad = set(job.get("solver", {})) - set(SOLVER_KEYS)
    if bad:
        raise JobError(f"job: unknown solver option(s) {sorted(bad)}; allowed: {list(SOLVER_KEYS)}")
    base = os.path.dirname(os.path.abspath(path))
    params = {k: _absolute(v, base) for k, v in job.get("params", {}).items()}
    job = dict(job, params=params)
    for key in ("x0", "out", "report", "checkpoint"):
        if isinstance(job.get(key), str):
            job[key] = os.path.join(base, job[key])
    return job


def _absolute(value, base):
    if isinstance(value, dict) and "file" in value:
        return dict(value, file=os.path.join(base, os.fspath(value["file"])))
    if _is_file_value(value):
        return os.path.join(base, value)
    return value


def _is_file_value(value):
    return isinstance(value, str) and fio.file_format(fio.split_key(value)[0]) is not None


def parse_param(text):
    """``NAME=VALUE`` of ``--param``: VALUE is a file (known suffix), JSON, or a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise JobError(f"--param expects NAME=VALUE, got {text!r}")
    if _is_file_value(raw):
        return name, raw
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


class Job:
    """A resolved job: the problem class, its arguments loaded, checksums and options.

    Parameters
    ----------
    problem : str
        A key of ``fastnewton.problems.PROBLEMS``.
    params : dict
        Constructor arguments (file values are loaded here).
    solver : dict
        Options of ``fastnewton.minimize`` (keys :data:`SOLVER_KEYS`).
    x0 : str, optional
        File holding the start point.
    """

    def __init__(self, problem, params, solver, x0=None):
        from .problems import PROBLEMS

        if not isinstance(problem, str) or problem not in PROBLEMS:
            raise JobError(f"problem must be one of {sorted(PROBLEMS)}, got {problem!r}")
        self.name = problem
        self.cls = PROBLEMS[problem]
        sig = inspect.signature(self.cls)
        accepted = [p.name for p in sig.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [k for k in params if k not in accepted]
        if unknown:
            raise JobError(f"problem {problem!r} takes no argument {unknown[0]!r}; "
                           f"it takes {', '.join(accepted)}")
        self.inputs = {}      # argument -> {"path", "sha256", "bytes"}
        self.kwargs = {}
        for key, value in params.items():
            if value is None:
                continue
            if isinstance(value, dict) and "file" in value:
                spec = value["file"] + (f":{value['key']}" if value.get("key") else "")
                self.kwargs[key] = self._load(key, spec)
            elif _is_file_value(value):
                self.kwargs[key] = self._load(key, value)
            else:
                self.kwargs[key] = value
        self._labels_from_svmlight(accepted)
        missing = [p.name for p in sig.parameters.values()
                   if p.default is p.empty and p.name in accepted and p.name not in self.kwargs]
        if missing:
            flag = f"--{missing[0]} FILE, " if missing[0] in ("A", "b", "w") else ""
            raise JobError(f"problem {problem!r} needs {', '.join(missing)} "
                           f"(give {flag}--param {missing[0]}=VALUE (a file name or a "
                           f"number) or a job file)")
        self.solver = dict(solver)
        self.x0 = None if x0 is None else self._load("x0", x0)

    def _load(self, key, spec):
        path, _ = fio.split_key(spec)
        value = fio.load_array(spec, name=key)
        self.inputs[key] = {"path": os.path.abspath(spec), "sha256": fio.sha256_file(path),
                            "bytes": os.path.getsize(path)}
        return value

    def _labels_from_svmlight(self, accepted):
        """An svmlight A carries its labels: use them as b (y for a GLM) when not given."""
        A = self.inputs.get("A")
        target = "b" if "b" in accepted else "y" if "y" in accepted else None
        if A and target and target not in self.kwargs:
            path, key = fio.split_key(A["path"])
            if fio.file_format(path) == "svmlight" and key is None:
                self.kwargs[target] = self._load(target, path + ":labels")

    def build(self):
        """Construct the problem (validation errors of the family propagate)."""
        return self.cls(**self.kwargs)

    def fingerprint(self):
        """SHA-256 of what determines the iterates: family, inputs, options, x0."""
        params = {k: ({"sha256": self.inputs[k]["sha256"]} if k in self.inputs else _plain(v))
                  for k, v in self.kwargs.items()}
        blob = {"problem": self.name, "params": params,
                "solver": {k: _plain(self.solver.get(k)) for k in _TRAJECTORY_KEYS},
                "x0": self.inputs.get("x0", {}).get("sha256")}
        text = json.dumps(blob, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def scalar_params(self):
        """The constructor arguments that did not come from files (for the report)."""
        return {k: _plain(v) for k, v in self.kwargs.items() if k not in self.inputs}


def _plain(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return hashlib.sha256(np.ascontiguousarray(value, dtype=np.float64).tobytes()).hexdigest()
    return value
