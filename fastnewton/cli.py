"""The ``fastnewton`` command line: ``solve``, ``generate``, ``report``, ``demo`` and ``info``.

Exit codes: 0 converged (``report``: written), 1 not converged (the result is still
written), 2 bad input or usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
import warnings

import numpy as np

__all__ = ["main"]

EXIT_CONVERGED, EXIT_NOT_CONVERGED, EXIT_BAD_INPUT = 0, 1, 2
#: Test-only: seconds to sleep after each step (lets a test kill a run mid-way).
_SLEEP_ENV = "FASTNEWTON_TEST_SLEEP_PER_STEP"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit 2) instead of usage + message."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonneg_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _file_or_float(text):
    """``--w``: a number, or a file holding an n-vector."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number or a file, got {text!r}")
    return value


def _build_parser():
    from . import report
    from .newton import METHODS
    from .sketch import SKETCHES

    parser = _Parser(
        prog="fastnewton",
        description="Approximate Newton methods for large sparse regression problems.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="solve a seeded built-in exp-regression example and print each step",
        description="Generate a seeded sparse exp/cosh/sinh regression problem and solve it, "
                    "printing one line per Newton step (objective, gradient norm, step size, "
                    "time) and the final result.")
    demo.add_argument("--n", type=_positive_int, default=200_000, help="rows of A (default 200000)")
    demo.add_argument("--d", type=_positive_int, default=200, help="columns of A (default 200)")
    demo.add_argument("--nnz-per-row", type=_positive_int, default=20,
                      help="nonzeros per row of A (default 20)")
    demo.add_argument("--cond", type=float, default=1e3,
                      help="column-scaling condition number of A (default 1e3)")
    demo.add_argument("--f", choices=("exp", "cosh", "sinh"), default="exp",
                      help="which f in ½‖f(Ax) − b‖² (default exp)")
    demo.add_argument("--method", choices=("auto", "exact", "sketch"), default="auto",
                      help="Newton step model (default auto)")
    demo.add_argument("--tol", type=float, default=1e-8,
                      help="relative gradient-norm tolerance (default 1e-8)")
    demo.add_argument("--maxiter", type=_positive_int, default=100, help="maximum Newton steps")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and the sketch")
    demo.add_argument("--threads", type=_positive_int, default=None,
                      help="numba/BLAS threads (default: all available CPUs)")

    _add_solve_parser(sub, METHODS, SKETCHES)
    _add_generate_parser(sub)
    report.add_arguments(sub.add_parser(
        "report", help="turn bench/ pytest-benchmark JSON into a Markdown report and PNG plots",
        description=report.DESCRIPTION + " The same program as python -m fastnewton.report.",
        epilog="Exit codes: 0 report written (its path is printed), 2 bad input/usage."))
    sub.add_parser("info", help="print versions, threading layer, thread counts, cache directory")
    return parser


def _add_solve_parser(sub, methods, sketches):
    from .problems import PROBLEMS

    solve = sub.add_parser(
        "solve", help="solve a problem read from files; write the result atomically",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Solve one problem whose arrays are read from files (.npz from "
            "scipy.sparse.save_npz or np.savez, .npy, Matrix Market .mtx, svmlight/libsvm "
            ".svm/.svmlight/.libsvm; PATH:KEY picks an array of an .npz). Nothing is "
            "unpickled. Writes the result (x, fun, jac, history ...) to --out atomically, "
            "optionally a JSON report and a checkpoint after every Newton step.", 79),
        epilog="Exit codes: 0 converged, 1 not converged (result written), 2 bad input/usage.\n"
               "Problem arguments come from the flags above, from --param NAME=VALUE, or\n"
               "from a JSON/TOML --job file (flags win): every family of\n"
               "fastnewton.problems.PROBLEMS is reachable that way.\n"
               "Example: fastnewton solve --problem exp --A A.npz --b b.npy --w w.npy "
               "--out x.npz --checkpoint ck.npz --resume")
    g = solve.add_argument_group("problem")
    g.add_argument("--problem", choices=sorted(PROBLEMS), default=None,
                   help="problem family (default: the job file's, else exp)")
    g.add_argument("--job", metavar="FILE",
                   help="JSON or TOML job file: problem, params (arrays as file names), "
                        "solver options, x0, out, report, checkpoint")
    g.add_argument("--A", metavar="FILE", help="design matrix A (n x d)")
    g.add_argument("--b", metavar="FILE",
                   help="targets b (n); default: the labels of an svmlight --A")
    g.add_argument("--w", metavar="FILE|FLOAT", type=_file_or_float,
                   help="weights w: a number or a file with n entries")
    g.add_argument("--f", metavar="NAME", help="exp-family function: exp, cosh or sinh")
    g.add_argument("--lam", type=_finite_float, metavar="FLOAT", help="ridge ½ lam ‖x‖² (>= 0)")
    g.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other constructor argument (repeatable); VALUE is a file if it "
                        "has a known suffix, else JSON, else a string")
    g.add_argument("--x0", metavar="FILE", help="start point (d entries; default zeros)")
    s = solve.add_argument_group("solver")
    s.add_argument("--method", choices=methods, default=None, help="step model (default auto)")
    s.add_argument("--sketch", choices=sorted(sketches), default=None,
                   help="sketch kind of sketched methods (default countsketch)")
    s.add_argument("--sketch-size", type=_positive_int, default=None,
                   help="rows of the sketch (default min(n, max(8 d, 64)))")
    s.add_argument("--tol", type=_finite_float, default=None,
                   help="stop when ‖grad‖ <= tol ‖grad(x0)‖ (default 1e-8)")
    s.add_argument("--maxiter", type=_nonneg_int, default=None, help="maximum Newton steps (default 100)")
    s.add_argument("--seed", type=int, default=None,
                   help="seed of the sketch (default 0: runs are reproducible)")
    s.add_argument("--threads", type=_positive_int, default=None,
                   help="numba + BLAS + OpenMP threads together (default: the CPUs this "
                        "process may use, from the affinity mask and cgroup quota)")
    o = solve.add_argument_group("output")
    o.add_argument("--out", metavar="FILE.npz", help="result file (written atomically)")
    o.add_argument("--report", metavar="FILE.json",
                   help="JSON report: result, history, timings, versions, threads, input sha256")
    o.add_argument("--checkpoint", metavar="FILE.npz",
                   help="write the solver state here after every step (atomically)")
    o.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists (same problem and options "
                        "required; bitwise the same x as an uninterrupted run on the same "
                        "machine)")
    o.add_argument("--quiet", action="store_true", help="no progress output")
    o.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="one line per step as text, or JSON lines for batch systems")


def _add_generate_parser(sub):
    from .datasets import FAMILIES

    gen = sub.add_parser(
        "generate", help="write a seeded benchmark problem (A, b, w, x_true, job.json) to files",
        description="Write a seeded problem of fastnewton.datasets.make_regression to DIR: "
                    "A (in --format), b.npy, w.npy, x_true.npy and job.json for "
                    "'fastnewton solve --job DIR/job.json'. Files are written atomically.")
    gen.add_argument("--n", type=_positive_int, required=True, help="rows of A")
    gen.add_argument("--d", type=_positive_int, required=True, help="columns of A")
    gen.add_argument("--nnz-per-row", type=_positive_int, default=None,
                     help="nonzeros per row (default min(d, 20))")
    gen.add_argument("--cond", type=_finite_float, default=1.0, help="column-scale ratio (>= 1)")
    gen.add_argument("--family", choices=FAMILIES, default="exp", help="f generating b")
    gen.add_argument("--noise", type=_finite_float, default=0.01, help="noise std of b")
    gen.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    gen.add_argument("--format", choices=("npz", "mtx", "svmlight"), default="npz",
                     help="file format of A (svmlight also holds b as labels)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out-dir", required=True, metavar="DIR", help="directory (created)")


# -- logging --------------------------------------------------------------------------------
class _Log:
    """Per-step progress: text or JSON lines on stdout; a bar only on a terminal."""

    def __init__(self, fmt="text", quiet=False, stream=None):
        self.fmt, self.quiet = fmt, quiet
        self.stream = sys.stdout if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.bar = (not quiet and fmt == "text" and callable(isatty) and bool(isatty()))
        self._bar_shown = False

    def event(self, kind, text=None, **fields):
        if self.quiet:
            return
        self._clear_bar()
        if self.fmt == "json":
            line = json.dumps({"event": kind, "time": round(time.time(), 3), **fields},
                              default=_json_default)
        else:
            line = text if text is not None else f"{kind}: " + " ".join(
                f"{k}={v}" for k, v in fields.items())
        print(line, file=self.stream, flush=True)

    def step(self, nit, fun, grad_norm, step_size, elapsed, rel_target, maxiter):
        self.event("step", f"step {nit:4d}  fun={fun:.15e}  grad_norm={grad_norm:.3e}  "
                           f"step={step_size:.2e}  time={elapsed:.3f}s",
                   nit=nit, fun=fun, grad_norm=grad_norm, step_size=step_size, elapsed=elapsed)
        if self.bar:
            self._draw_bar(nit, grad_norm, rel_target, maxiter)

    def _draw_bar(self, nit, grad_norm, rel_target, maxiter, width=30):
        g0, target = rel_target
        if g0 > 0 and target > 0 and grad_norm > 0:
            frac = np.log(g0 / grad_norm) / max(np.log(g0 / target), 1e-300)
        else:
            frac = 1.0
        frac = float(min(max(frac, nit / max(maxiter, 1) if maxiter else 0.0, 0.0), 1.0))
        filled = int(round(frac * width))
        self.stream.write(f"[{'#' * filled}{'.' * (width - filled)}] {100 * frac:5.1f}%  "
                          f"grad {grad_norm:.2e} -> {target:.2e}  step {nit}/{maxiter}")
        self.stream.flush()
        self._bar_shown = True

    def _clear_bar(self):
        if self._bar_shown:
            self.stream.write("\r\033[K")
            self._bar_shown = False

    def close(self):
        self._clear_bar()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


# -- solve ----------------------------------------------------------------------------------
def _collect_job(args):
    """Merge the job file and the flags (flags win) into a :class:`~fastnewton._jobs.Job`."""
    from ._jobs import Job, JobError, parse_param, read_job_file

    job = read_job_file(args.job) if args.job else {}
    params = dict(job.get("params", {}))
    for key in ("A", "b", "w", "f", "lam"):
        val = getattr(args, key)
        if val is not None:  # --A/--b/--w strings are always files
            params[key] = {"file": val} if key in ("A", "b", "w") and isinstance(val, str) else val
    for text in args.param:
        name, value = parse_param(text)
        params[name] = value
    solver = {"method": "auto", "sketch": "countsketch", "sketch_size": None, "tol": 1e-8,
              "maxiter": 100, "seed": 0}
    solver.update(job.get("solver", {}))
    for key in solver:
        if getattr(args, key, None) is not None:
            solver[key] = getattr(args, key)
    paths = {k: getattr(args, k) or job.get(k) for k in ("out", "report", "checkpoint")}
    if not paths["out"]:
        raise JobError("--out is required (or 'out' in the job file)")
    if not str(paths["out"]).endswith(".npz"):
        raise JobError(f"--out must name a .npz file (the result is written with numpy's "
                       f"savez), got {paths['out']!r}")
    if args.resume and not paths["checkpoint"]:
        raise JobError("--resume needs --checkpoint FILE")
    for key, path in paths.items():
        if path:
            directory = os.path.dirname(os.path.abspath(path)) or "."
            if not os.path.isdir(directory):
                raise FileNotFoundError(f"--{key}: directory {directory!r} does not exist")
            if not os.access(directory, os.W_OK) or not _can_create_in(directory):
                raise PermissionError(f"--{key}: directory {directory!r} is not writable")
    threads = args.threads or job.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise JobError(f"job: threads must be a positive integer, got {threads!r}")
    problem = args.problem or job.get("problem", "exp")
    return Job(problem, params, solver, x0=args.x0 or job.get("x0")), paths, threads


def _can_create_in(directory):
    """A file can be created (and removed) in ``directory``: checked before the solve, so
    that an output that cannot be written fails at once, not after the work is done."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".fastnewton-probe-"):
            return True
    except OSError:
        return False


def _versions():
    import numba
    import scipy
    import threadpoolctl

    import fastnewton
    return {"fastnewton": fastnewton.__version__, "python": sys.version.split()[0],
            "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
            "threadpoolctl": threadpoolctl.__version__}


def _thread_info(requested):
    import numba
    from threadpoolctl import threadpool_info

    from ._threads import available_cpus
    return {"requested": requested, "available_cpus": available_cpus(),
            "numba": numba.get_num_threads(),
            "blas": [{"api": i.get("internal_api"), "num_threads": i.get("num_threads")}
                     for i in threadpool_info()]}


def _solve(args):
    import fastnewton as fn
    from . import io as fio
    from ._threads import available_cpus, thread_limit

    t_wall = time.perf_counter()
    log = _Log(args.log_format, args.quiet)
    job, paths, threads = _collect_job(args)
    threads = int(threads or available_cpus())
    fingerprint = job.fingerprint()
    caught = []

    def show_warning(message, category, *_args, **_kw):  # logged as it happens
        caught.append(str(message))
        log.event("warning", f"warning: {category.__name__}: {message}",
                  category=category.__name__, message=str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        problem = job.build()
        resume = None
        if args.resume and os.path.exists(paths["checkpoint"]):
            resume = fio.load_checkpoint(paths["checkpoint"], fingerprint)
        opts = job.solver
        start_nit = 0 if resume is None else resume.nit
        log.event("start", f"fastnewton solve: problem={job.name} n={problem.n} d={problem.d} "
                           f"method={opts['method']} threads={threads}"
                           + (f" resuming at step {start_nit}" if resume else ""),
                  problem=job.name, n=problem.n, d=problem.d, method=opts["method"],
                  threads=threads, resumed_from=start_nit if resume else None)
        sleep = float(os.environ.get(_SLEEP_ENV, "0") or 0)

        def callback(inter):
            state = inter.state
            if paths["checkpoint"]:
                fio.save_checkpoint(paths["checkpoint"], state, fingerprint)
            hist = state.history
            log.step(inter.nit, inter.fun, inter.grad_norm, hist["step_size"][-1],
                     hist["time"][-1], (state.g0norm, opts["tol"] * state.g0norm),
                     opts["maxiter"])
            if sleep:
                time.sleep(sleep)

        with thread_limit(threads):
            thread_info = _thread_info(threads)
            res = fn.minimize(problem, job.x0, method=opts["method"], sketch=opts["sketch"],
                              sketch_size=opts["sketch_size"], tol=opts["tol"],
                              maxiter=opts["maxiter"], seed=opts["seed"], callback=callback,
                              resume=resume)
    code = EXIT_CONVERGED if res.success else EXIT_NOT_CONVERGED
    history = {k: np.asarray(v) for k, v in res.history.items()}
    fio.save_npz(paths["out"], x=res.x, jac=res.jac, fun=np.float64(res.fun),
                 grad_norm=np.float64(res.grad_norm), nit=np.int64(res.nit),
                 nfev=np.int64(res.nfev), success=np.bool_(res.success),
                 status=np.int64(res.status), message=np.str_(res.message),
                 method=np.str_(res.method), fingerprint=np.str_(fingerprint),
                 **{"history_" + k: v for k, v in history.items()})
    if paths["report"]:
        fio.write_json(paths["report"], {
            "command": ["fastnewton", *args.argv], "exit_code": code, "problem": job.name,
            "params": job.scalar_params(), "inputs": job.inputs, "solver": opts,
            "fingerprint": fingerprint, "resumed_from_nit": start_nit if resume else None,
            "result": {k: res[k] for k in ("fun", "grad_norm", "nit", "nfev", "success",
                                           "status", "message", "method")},
            "history": history, "timings": res.timings, "versions": _versions(),
            "threads": thread_info, "warnings": caught,
            "out": {"path": os.path.abspath(paths["out"]), "sha256": fio.sha256_file(paths["out"])},
            "wall_time": time.perf_counter() - t_wall})
    log.event("done", f"fastnewton solve: {res.message}; fun={res.fun:.15e} "
                      f"grad_norm={res.grad_norm:.3e} nit={res.nit} -> {paths['out']}",
              success=bool(res.success), status=int(res.status), message=res.message,
              fun=res.fun, grad_norm=res.grad_norm, nit=res.nit, out=paths["out"],
              exit_code=code)
    log.close()
    return code


# -- generate -------------------------------------------------------------------------------
def _generate(args):
    import fastnewton as fn
    from . import io as fio

    data = fn.datasets.make_regression(args.n, args.d, nnz_per_row=args.nnz_per_row,
                                       cond=args.cond, family=args.family, noise=args.noise,
                                       dtype=np.dtype(args.dtype), seed=args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    suffix = {"npz": ".npz", "mtx": ".mtx", "svmlight": ".svm"}[args.format]
    names = {"A": "A" + suffix, "b": "b.npy", "w": "w.npy", "x_true": "x_true.npy"}
    fio.save_array(os.path.join(args.out_dir, names["A"]), data.A, labels=data.b)
    for key in ("b", "w", "x_true"):
        fio.save_array(os.path.join(args.out_dir, names[key]), getattr(data, key))
    job = {"problem": "exp",
           "params": {"A": names["A"], "b": names["b"], "w": names["w"], "f": data.family},
           "solver": {"seed": args.seed}, "out": "x.npz"}
    fio.write_json(os.path.join(args.out_dir, "job.json"), job)
    print(f"wrote {args.family} regression n={args.n} d={args.d} nnz={data.A.nnz} "
          f"seed={args.seed} to {args.out_dir}: {', '.join(names.values())}, job.json")
    return 0


def _report(args):
    from .report import run

    return run(args)


# -- demo and info --------------------------------------------------------------------------
def _demo(args):
    import fastnewton as fn
    from ._threads import available_cpus, thread_limit

    threads = args.threads or available_cpus()
    with thread_limit(threads):
        t0 = time.perf_counter()
        data = fn.datasets.make_regression(args.n, args.d, nnz_per_row=args.nnz_per_row,
                                           cond=args.cond, family=args.f, seed=args.seed)
        print(f"generated {args.f} regression: n={args.n} d={args.d} nnz={data.A.nnz} "
              f"cond~{args.cond:g} in {time.perf_counter() - t0:.2f}s (threads={threads})")
        x0 = None
        if args.f == "cosh":
            print("note: cosh regression is even in x and x = 0 is stationary; "
                  "starting from x0 = 0.1 * x_true")
            x0 = 0.1 * data.x_true
        prob = fn.ExpRegression(data.A, data.b, data.w, f=args.f)
        res = fn.minimize(prob, x0, method=args.method, tol=args.tol, maxiter=args.maxiter,
                          seed=args.seed, verbose=True)
    print(f"result: success={res.success} status={res.status} nit={res.nit} "
          f"fun={res.fun:.10e} grad_norm={res.grad_norm:.3e}")
    print("timings (s): " + "  ".join(f"{k}={v:.3f}" for k, v in res.timings.items()))
    g0 = res.history["grad_norm"][0]
    print(f"relative gradient norm ‖∇L(x)‖/‖∇L(x0)‖ = {res.grad_norm / g0 if g0 else 0.0:.3e} "
          f"(target {args.tol:g})")
    return 0 if res.success else 1


def _active_threading_layer():
    """The numba threading layer actually in use (runs a tiny parallel kernel to find out)."""
    import numba

    from .linalg import Design
    try:
        Design(np.eye(2)).matvec(np.ones(2))
        import scipy.sparse as sp
        Design(sp.eye_array(2, format="csr")).matvec(np.ones(2))
        return numba.threading_layer()
    except Exception:  # pragma: no cover - informational only
        return "unknown"


def _info(args):
    import numba
    import scipy

    import fastnewton
    from ._threads import available_cpus

    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i.get('internal_api')} ({i.get('num_threads')} threads)"
                         for i in threadpool_info())
    except Exception:  # pragma: no cover - informational only
        blas = "unknown"
    print(f"fastnewton {fastnewton.__version__}")
    print(f"python {sys.version.split()[0]}  numpy {np.__version__}  scipy {scipy.__version__}  "
          f"numba {numba.__version__}")
    print(f"numba threads: {numba.get_num_threads()} (max {numba.config.NUMBA_NUM_THREADS}), "
          f"threading layer: {numba.config.THREADING_LAYER} (active: {_active_threading_layer()})")
    print(f"available CPUs: {available_cpus()}")
    print(f"BLAS/OpenMP pools: {blas or 'none found'}")
    print(f"numba cache dir: {numba.config.CACHE_DIR or '(next to the package: __pycache__)'}")
    return 0


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handler = {"demo": _demo, "info": _info, "solve": _solve, "generate": _generate,
               "report": _report}[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"fastnewton: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
