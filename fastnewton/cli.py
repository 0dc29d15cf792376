"""The ``fastnewton`` command line: ``demo`` and ``info`` (more subcommands build on these)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["main"]


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _build_parser():
    parser = argparse.ArgumentParser(
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

    sub.add_parser("info", help="print versions, threading layer, thread counts, cache directory")
    return parser


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
    err = np.linalg.norm(res.x - data.x_true) / np.linalg.norm(data.x_true)
    print(f"result: success={res.success} status={res.status} nit={res.nit} "
          f"fun={res.fun:.10e} grad_norm={res.grad_norm:.3e}")
    print("timings (s): " + "  ".join(f"{k}={v:.3f}" for k, v in res.timings.items()))
    print(f"relative distance to the generating x_true (biased by the w term): {err:.3e}")
    return 0 if res.success else 1


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
          f"threading layer: {numba.config.THREADING_LAYER}")
    print(f"available CPUs: {available_cpus()}")
    print(f"BLAS/OpenMP pools: {blas or 'none found'}")
    print(f"numba cache dir: {numba.config.CACHE_DIR or '(next to the package: __pycache__)'}")
    return 0


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler = {"demo": _demo, "info": _info}[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"fastnewton: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
