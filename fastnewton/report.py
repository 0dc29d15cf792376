"""Scaling reports from pytest-benchmark JSON: Markdown tables, fitted exponents, plots.

Usage::

    python -m pytest bench/ --benchmark-json=results.json
    python -m fastnewton.report results.json -o report/

(or, the same program, ``fastnewton report results.json -o report/`` and ``python -m
fastnewton.bench.report results.json -o report/``) writes ``report/report.md`` and, when
matplotlib is installed (extra ``plot``), PNG plots next to it. The input is what the
``bench/`` suite records: every benchmark has ``extra_info`` with ``suite`` (``floor``,
``kernel``, ``newton``, ``e2e``, ``threads``), ``op`` and the sizes ``n``, ``d``,
``nnz_per_row``, ``nnz``; end-to-end runs add ``converged``, ``capped``, ``rel_grad``,
a convergence curve (``curve_t``, ``curve_g``) and the problem ``family`` (``exp`` when
absent); Newton steps add seconds per ``phases``.

Figures, all from medians of the same run:

* per matrix size: each op as a multiple of one scipy ``A @ x`` (floor ``scipy_matvec``),
  of ``A @ x`` plus one d x d Cholesky, and of a memory copy of A's bytes;
* fitted log-log exponents: time ∝ nnz^a at fixed d, time ∝ d^b at fixed (n, nnz/row),
  least squares over all points, with the data range and the range of local slopes;
* end to end (one table per problem family and size): time to the gradient tolerance
  per solver, fastnewton's speedup over each peer and over the best peer (``≥`` where a
  peer did not converge: capped or stalled);
* threads: speedup over one thread per op.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ._report_glm import glm_race_section

__all__ = ["Record", "PowerFit", "load_records", "fit_power", "scaling_fits", "build_report",
           "write_report", "other_table", "add_arguments", "run", "main"]

GRID_SUITES = ("floor", "kernel", "newton")


@dataclass(frozen=True)
class Record:
    """One benchmark: its op, suite, median seconds and ``extra_info``."""

    name: str
    op: str
    suite: str
    median: float
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    #: pytest-benchmark group, or the test's file when the benchmark has no group.
    group: str = field(default="", compare=False)

    @property
    def size(self):
        """(n, nnz_per_row, d), or None when the benchmark has no sizes."""
        e = self.extra
        if not all(k in e for k in ("n", "nnz_per_row", "d")):
            return None
        return int(e["n"]), int(e["nnz_per_row"]), int(e["d"])

    @property
    def nnz(self):
        return int(self.extra.get("nnz", 0))

    @property
    def family(self):
        """Problem family of an end-to-end run (``"exp"`` for records without one)."""
        return str(self.extra.get("family", "exp"))

    @property
    def threads(self):
        return int(self.extra.get("threads", 0))


def load_records(paths, stat="median"):
    """Read pytest-benchmark JSON files (a path or a list) into :class:`Record` objects.

    ``stat`` picks the statistic stored as ``Record.median``: ``"median"`` (default) or
    ``"min"`` (less sensitive to other load on a shared machine).

    Benchmarks without ``extra_info["suite"]`` (not from the fastnewton suite) are kept
    with suite ``"other"`` and their test name as op.
    """
    if stat not in ("median", "min"):
        raise ValueError(f"stat must be 'median' or 'min', got {stat!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    records, machine = [], None
    for path in paths:
        with open(path) as fh:
            doc = json.load(fh)
        if not isinstance(doc, dict) or "benchmarks" not in doc:
            raise ValueError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' key)")
        machine = machine or {"machine_info": doc.get("machine_info", {}),
                              "commit_info": doc.get("commit_info", {}),
                              "datetime": doc.get("datetime", "")}
        for b in doc["benchmarks"]:
            extra = dict(b.get("extra_info") or {})
            records.append(Record(name=b.get("name", "?"), op=str(extra.get("op", b.get("name"))),
                                  suite=str(extra.get("suite", "other")),
                                  median=float(b["stats"][stat]), extra=extra,
                                  group=str(b.get("group")
                                            or b.get("fullname", "").partition("::")[0])))
    return records, machine


# -- fits ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PowerFit:
    r"""Least-squares fit of :math:`\log t = a \log x + c` (time ∝ x^a).

    ``exponent`` is a, ``stderr`` its standard error (nan with 2 points), ``x_range`` the
    smallest and largest x, ``local_range`` the smallest and largest slope between
    consecutive x values, ``points`` the number of measurements.
    """

    exponent: float
    stderr: float
    coef: float
    x_range: tuple
    local_range: tuple
    points: int

    def predict(self, x):
        return self.coef * np.asarray(x, dtype=float) ** self.exponent


def fit_power(x, t):
    """Fit time ∝ x^a by least squares in log-log coordinates.

    Parameters
    ----------
    x, t : array_like (k,)
        Sizes and times, positive; at least two distinct x.

    Returns
    -------
    PowerFit
    """
    x = np.asarray(x, dtype=float)
    t = np.asarray(t, dtype=float)
    if x.shape != t.shape or x.ndim != 1:
        raise ValueError(f"x and t must be 1-D of the same length, got {x.shape} and {t.shape}")
    if not (np.all(x > 0) and np.all(t > 0)):
        raise ValueError("x and t must be positive for a log-log fit")
    if np.unique(x).size < 2:
        raise ValueError("a power fit needs at least two distinct x values")
    lx, lt = np.log(x), np.log(t)
    X = np.column_stack([lx, np.ones_like(lx)])
    (a, c), *_ = np.linalg.lstsq(X, lt, rcond=None)
    k = x.size
    stderr = math.nan
    if k > 2:
        resid = lt - X @ np.array([a, c])
        s2 = float(resid @ resid) / (k - 2)
        stderr = math.sqrt(s2 / float(((lx - lx.mean()) ** 2).sum()))
    # local slopes between consecutive distinct x (times averaged in log at equal x)
    ux = np.unique(x)
    ulogt = np.array([lt[x == v].mean() for v in ux])
    slopes = np.diff(ulogt) / np.diff(np.log(ux))
    return PowerFit(float(a), stderr, float(math.exp(c)), (float(ux[0]), float(ux[-1])),
                    (float(slopes.min()), float(slopes.max())), int(k))


def scaling_fits(records):
    """Exponents of every grid op.

    ``{("nnz", op, d): PowerFit}`` pools every (n, nnz/row) measured with that d;
    ``("nnz_n", op, (d, k))`` is the n sweep at fixed d and nnz/row k (nnz grows with n
    only, so O(n) work scales with it too); ``("d", op, (n, k))`` uses the points
    sharing (n, nnz/row). Sets with fewer than two distinct x are skipped.
    """
    by_d, by_dk, by_nk = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in records:
        if r.suite in GRID_SUITES and r.size is not None and r.median > 0:
            n, k, d = r.size
            by_d[(r.op, d)].append((r.nnz, r.median))
            by_dk[(r.op, (d, k))].append((r.nnz, r.median))
            by_nk[(r.op, (n, k))].append((d, r.median))
    fits = {}
    for kind, groups in (("nnz", by_d), ("nnz_n", by_dk), ("d", by_nk)):
        for (op, key), pts in groups.items():
            xs = [p[0] for p in pts]
            if len(set(xs)) >= 2:
                fits[(kind, op, key)] = fit_power(xs, [p[1] for p in pts])
    return fits


# -- formatting ------------------------------------------------------------------------------

def _fmt_time(s):
    if not np.isfinite(s):
        return "n/a"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def _fmt_ratio(r, bound=False):
    if r is None or not np.isfinite(r):
        return "–"
    return f"{'≥ ' if bound else ''}{r:.3g}×"


def _size_label(size):
    n, k, d = size
    return f"n={n:,} nnz/row={k} d={d}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _floors(records):
    """{size: {floor op: median}} for the grid suites."""
    out = defaultdict(dict)
    for r in records:
        if r.suite == "floor" and r.size is not None:
            out[r.size][r.op] = r.median
    return out


def size_tables(records):
    """Markdown: one table per matrix size, each op as multiples of the floors."""
    floors = _floors(records)
    by_size = defaultdict(list)
    for r in records:
        if r.suite in GRID_SUITES and r.size is not None:
            by_size[r.size].append(r)
    parts = []
    order = {"floor": 0, "kernel": 1, "newton": 2}
    for size in sorted(by_size):
        fl = floors.get(size, {})
        mv, chol, copy = fl.get("scipy_matvec"), fl.get("cholesky"), fl.get("memcopy")
        rows = []
        for r in sorted(by_size[size], key=lambda r: (order[r.suite], r.op)):
            rows.append([r.op, r.suite, _fmt_time(r.median),
                         _fmt_ratio(r.median / mv if mv else None),
                         _fmt_ratio(r.median / (mv + chol) if mv and chol else None),
                         _fmt_ratio(r.median / copy if copy else None)])
        nnz = by_size[size][0].nnz
        parts.append(f"#### {_size_label(size)} (nnz = {nnz:,})\n\n" + _table(
            ["op", "suite", "median", "× A@x", "× (A@x + chol)", "× memcopy"], rows))
    return "\n\n".join(parts)


def exponent_table(fits):
    """Markdown: the fitted exponents with their ranges."""
    rows = []
    for (kind, op, key), f in sorted(fits.items(), key=lambda kv: (kv[0][0] == "d", kv[0][1],
                                                                    str(kv[0][2]))):
        if kind == "d":
            fixed = f"n={key[0]:,} nnz/row={key[1]}"
        elif kind == "nnz_n":  # the n sweep at fixed d and nnz/row
            fixed = f"d={key[0]} nnz/row={key[1]}"
        else:
            fixed = f"d={key} (all nnz/row)"
        err = "" if math.isnan(f.stderr) else f" ± {f.stderr:.2f}"
        rows.append([op, f"time ∝ {kind[:3]}^a", fixed, f"{f.exponent:.3f}{err}",
                     f"{f.local_range[0]:.2f} … {f.local_range[1]:.2f}",
                     f"{f.x_range[0]:,.0f} … {f.x_range[1]:,.0f}", f.points])
    if not rows:
        return "_No op was measured at two or more sizes: no exponents._"
    return _table(["op", "law", "fixed", "exponent a", "local slopes", "x range", "points"], rows)


#: ``extra_info`` keys shown as sizes / as within-test ratios in :func:`other_table`.
_OTHER_SIZES = ("n", "n1", "n2", "d", "d3", "m", "k", "nnz_per_row", "nnz", "threads")
_OTHER_RATIOS = ("speedup", "ratio", "iter_ratio", "passes_per_step", "passes_per_family_step")


def other_table(records):
    """Markdown: benchmarks outside the suites above (``suite`` ``"other"``), or ``""``.

    These are the ``bench/`` files with their own problems (sketches, linear algebra,
    families, distributed): median, the sizes from ``extra_info`` and the ratios the test
    computed against its reference in the same run (``speedup*``, ``ratio``, ``passes*``).
    """
    rows = []
    for r in sorted((r for r in records if r.suite == "other"), key=lambda r: (r.group, r.name)):
        e = r.extra
        sizes = " ".join(f"{k}={e[k]:,}" if isinstance(e[k], int) else f"{k}={e[k]}"
                         for k in _OTHER_SIZES if k in e)
        ratios = [f"{k}={e[k]:.3g}" for k in sorted(e) if isinstance(e[k], (int, float))
                  and not isinstance(e[k], bool)
                  and (k.startswith("speedup") or k in _OTHER_RATIOS)]
        rows.append([r.group or "–", r.name, _fmt_time(r.median), sizes or "–",
                     " ".join(ratios) or str(e.get("what", "")) or "–"])
    return _table(["group", "benchmark", "median", "sizes", "ratios / what"], rows) if rows else ""


def phase_table(records):
    """Markdown: share of each phase in the Newton steps (the d^3 factorization share)."""
    rows = []
    for r in sorted((r for r in records if r.suite == "newton" and "phases" in r.extra
                     and r.size is not None), key=lambda r: (r.op, r.size)):
        ph = r.extra["phases"]
        total = sum(ph.values())
        if total <= 0:
            continue
        rows.append([r.op, _size_label(r.size)] +
                    [f"{100 * ph.get(k, 0.0) / total:.0f}%" for k in
                     ("gradient", "sketch", "assemble", "factor", "solve", "line_search")])
    if not rows:
        return "_No Newton-step phases recorded._"
    return _table(["op", "size", "gradient", "sketch", "assemble", "factor", "solve",
                   "line search"], rows)


def e2e_summary(records):
    """Per end-to-end problem: ``{(family, size): (fastnewton records, peer records)}``."""
    out = defaultdict(lambda: ([], []))
    for r in records:
        if r.suite == "e2e":
            mine = r.extra.get("solver") == "fastnewton" or r.op.startswith("fastnewton")
            out[(r.family, r.size)][0 if mine else 1].append(r)
    return dict(out)


def _e2e_title(key):
    family, size = key
    return f"{family} regression, " + (_size_label(size) if size else "problem")


def _done(r):
    return bool(r.extra.get("converged", False))


def e2e_speedups(fast, peers):
    """(best fastnewton record, {peer op: (speedup, is_lower_bound)}, vs-best-peer pair)."""
    ok = [r for r in fast if _done(r)]
    if not ok:
        return None, {}, None
    best = min(ok, key=lambda r: r.median)
    sp = {p.op: (p.median / best.median, not _done(p)) for p in peers}
    vs_best = min(sp.values(), key=lambda v: v[0]) if sp else None
    return best, sp, vs_best


def e2e_tables(records):
    parts = []
    for key, (fast, peers) in sorted(e2e_summary(records).items(), key=lambda kv: str(kv[0])):
        best, sp, vs_best = e2e_speedups(fast, peers)
        rows = []
        for r in sorted(fast, key=lambda r: r.median) + sorted(peers, key=lambda r: r.median):
            e = r.extra
            if _done(r):
                status = "converged"
            elif e.get("capped"):
                status = f"capped at {e.get('time_cap', r.median):g} s"
            else:
                status = "stopped without converging"
            its = e.get("nit", e.get("nfev", ""))
            ratio = sp.get(r.op)
            rows.append([r.op, ("≥ " if not _done(r) else "") + _fmt_time(r.median), status,
                         f"{e.get('rel_grad', float('nan')):.1e}", its,
                         _fmt_ratio(*ratio) if ratio else ("best" if r is best else "")])
        cond = (fast or peers)[0].extra.get("cond")
        head = f"#### {_e2e_title(key)}" + (f", cond(A) ≈ {cond:g}" if cond else "")
        body = _table(["solver", "time to tol", "status", "rel. gradient", "iterations / evals",
                       "fastnewton speedup"], rows)
        if best is not None and vs_best is not None:
            body += (f"\n\nBest fastnewton method: `{best.op}` ({_fmt_time(best.median)}); "
                     f"speedup over the best peer: {_fmt_ratio(*vs_best)}.")
        parts.append(head + "\n\n" + body)
    return "\n\n".join(parts) if parts else "_No end-to-end runs._"


def thread_speedups(records):
    """``{(op, size): {threads: (median, speedup over 1 thread)}}``."""
    groups = defaultdict(dict)
    for r in records:
        if r.suite == "threads":
            groups[(r.op, r.size)][r.threads] = r.median
    out = {}
    for key, by_t in groups.items():
        base = by_t.get(1)
        out[key] = {t: (m, base / m if base else float("nan")) for t, m in sorted(by_t.items())}
    return out


def thread_table(records):
    sp = thread_speedups(records)
    if not sp:
        return "_No thread-scaling runs._"
    counts = sorted({t for v in sp.values() for t in v})
    rows = []
    for (op, size), by_t in sorted(sp.items(), key=lambda kv: (str(kv[0][1]), kv[0][0])):
        rows.append([op, _size_label(size) if size else ""] +
                    [f"{_fmt_time(by_t[t][0])} ({by_t[t][1]:.2f}×)" if t in by_t else "–"
                     for t in counts])
    return _table(["op", "size"] + [f"{t} thread{'s' if t > 1 else ''}" for t in counts], rows)


# -- plots -----------------------------------------------------------------------------------

def make_plots(records, fits, outdir):
    """Write PNG plots into ``outdir``; returns their file names, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    files = []

    def axes():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        ax.set_prop_cycle(color=plt.cm.tab20(np.linspace(0, 1, 20)))
        return fig, ax

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, name), dpi=110)
        plt.close(fig)
        files.append(name)

    for kind, xlabel in (("nnz", "nnz(A)"), ("d", "d")):
        keys = sorted({key for (k, _, key) in fits if k == kind}, key=str)
        for key in keys:
            fig, ax = axes()
            for (k, op, kk), f in sorted(fits.items(), key=lambda kv: kv[0][1]):
                if k != kind or kk != key:
                    continue
                pts = sorted((r.nnz if kind == "nnz" else r.size[2], r.median) for r in records
                             if r.op == op and r.suite in GRID_SUITES and r.size is not None
                             and (r.size[2] == key if kind == "nnz" else r.size[:2] == key))
                xs, ts = zip(*pts)
                ax.loglog(xs, ts, "o-", label=f"{op} (a={f.exponent:.2f})")
            fixed = f"d={key}" if kind == "nnz" else f"n={key[0]:,}, nnz/row={key[1]}"
            ax.set(xlabel=xlabel, ylabel="median time (s)", title=f"time vs {xlabel} at {fixed}")
            ax.legend(fontsize=7)
            ax.grid(True, which="both", alpha=0.3)
            tag = f"d{key}" if kind == "nnz" else f"n{key[0]}_k{key[1]}"
            save(fig, f"time_vs_{kind}_{tag}.png")

    for i, (key, (fast, peers)) in enumerate(sorted(e2e_summary(records).items(),
                                                    key=lambda kv: str(kv[0]))):
        fig, ax = axes()
        for r in fast + peers:
            t, g = r.extra.get("curve_t"), r.extra.get("curve_g")
            if t and g:
                ax.semilogy(t, np.maximum(g, 1e-300), label=r.op)
        ax.axhline(1e-8, color="k", lw=0.8, ls="--")
        ax.set(xlabel="time (s)", ylabel="‖∇L(x)‖ / ‖∇L(0)‖",
               title=f"convergence, {_e2e_title(key)}")
        ax.legend(fontsize=7)
        save(fig, f"convergence_{i}.png")

    sp = thread_speedups(records)
    if sp:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        top = 1
        for (op, _), by_t in sorted(sp.items(), key=lambda kv: kv[0][0]):
            ts = sorted(by_t)
            top = max(top, ts[-1])
            ax.plot(ts, [by_t[t][1] for t in ts], "o-", label=op)
        ax.plot([1, top], [1, top], "k--", lw=0.8, label="ideal")
        ax.set(xlabel="threads", ylabel="speedup over 1 thread", title="thread scaling")
        ax.legend(fontsize=7)
        save(fig, "thread_speedup.png")
    return files


# -- report ----------------------------------------------------------------------------------

def _machine_text(machine):
    if not machine:
        return ""
    mi = machine.get("machine_info", {})
    cpu = mi.get("cpu", {}) or {}
    commit = machine.get("commit_info", {}) or {}
    bits = [f"run {machine.get('datetime', '?')}",
            f"{cpu.get('brand_raw', mi.get('processor', '?'))}",
            f"{cpu.get('count', '?')} logical CPUs", f"Python {mi.get('python_version', '?')}"]
    if commit.get("id"):
        bits.append(f"commit {commit['id'][:10]}{' (dirty)' if commit.get('dirty') else ''}")
    return "Machine: " + ", ".join(bits) + "."


def build_report(records, machine=None, plots=None, stat="median"):
    """The Markdown text of the report (``plots``: PNG names, None if matplotlib is missing)."""
    fits = scaling_fits(records)
    what = "Medians" if stat == "median" else "Minima over rounds"
    out = ["# fastnewton performance report", "", _machine_text(machine), "",
           f"{what} of pytest-benchmark runs (column `median` below); ratios are taken "
           "within the same run.", ""]
    out += ["## Per matrix size", "",
            "`× A@x`: multiple of one scipy `A @ x` on the same matrix; `× (A@x + chol)`: of one "
            "`A @ x` plus one d x d Cholesky; `× memcopy`: of a numpy copy of A's bytes.", "",
            size_tables(records) or "_No floor/kernel/Newton-step runs._", ""]
    out += ["## Fitted scaling exponents", "",
            "Least squares of log time on log nnz (fixed d: over all nnz/row, and over n "
            "at each nnz/row) or log d (fixed n and nnz/row); `± ` the standard error, `local slopes` the smallest and "
            "largest slope between consecutive sizes.", "", exponent_table(fits), ""]
    out += ["## Newton-step phases", "", phase_table(records), ""]
    out += ["## End to end", "",
            "Time from x = 0 to ‖∇L(x)‖ ≤ tol·‖∇L(0)‖. `≥`: the solver did not get there "
            "(capped or stopped), so its time is a lower bound.", "", e2e_tables(records), ""]
    out += ["## Threads", "", "Median time (speedup over 1 thread).", "",
            thread_table(records), ""]
    race = glm_race_section(r.extra for r in records if r.suite == "glm_race")
    if race:
        out += ["## GLM race", "", race, ""]
    other = other_table(records)
    if other:
        out += ["## Other benchmarks", "",
                "Suites with their own problems (sketch, linalg, families, distributed): "
                "sizes from `extra_info`, ratios to the reference measured in the same test.",
                "", other, ""]
    out += ["## Plots", ""]
    if plots is None:
        out.append("_matplotlib is not installed (`pip install fastnewton[plot]`): tables only._")
    elif not plots:
        out.append("_Nothing to plot._")
    else:
        out += [f"![{p}]({p})" for p in plots]
    return "\n".join(out) + "\n"


def write_report(paths, outdir, plots=True, stat="median"):
    """Read JSON file(s), write ``outdir/report.md`` (+ PNGs); returns the report's path."""
    records, machine = load_records(paths, stat)
    os.makedirs(outdir, exist_ok=True)
    files = make_plots(records, scaling_fits(records), outdir) if plots else None
    text = build_report(records, machine, files, stat)
    path = os.path.join(outdir, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


DESCRIPTION = ("Turn pytest-benchmark JSON from bench/ into a Markdown report with fitted "
               "scaling exponents and (with matplotlib) PNG plots.")


def add_arguments(parser):
    """Add the report's arguments to an ``argparse`` parser (also ``fastnewton report``)."""
    parser.add_argument("json", nargs="+", help="pytest-benchmark JSON file(s)")
    parser.add_argument("-o", "--output", default="report", help="output folder (default report/)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="statistic of each benchmark's rounds (default median; min is "
                             "less sensitive to other load on a shared machine)")
    return parser


def run(args):
    """Write the report of parsed ``args`` and print its path; returns 0.

    Raises ``OSError`` (a missing or unreadable file) or ``ValueError`` (not
    pytest-benchmark JSON); :func:`main` and ``fastnewton report`` turn them into exit 2.
    """
    path = write_report(args.json, args.output, plots=not args.no_plots, stat=args.stat)
    print(path)
    return 0


def main(argv=None, prog="python -m fastnewton.report"):
    """Command line: 0 report written, 2 bad input or usage (one line on stderr)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    args = add_arguments(parser).parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
