"""The report generator on small synthetic pytest-benchmark JSON files."""

import builtins
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnewton import report
from fastnewton.cli import main as cli_main


def _bench(name, median, **extra):
    return {"name": name, "group": None,
            "stats": {"median": median, "mean": median, "min": 0.5 * median},
            "extra_info": extra}


def _grid(n, k, d, suite, op, median, **extra):
    return _bench(f"{op}[{n}-{k}-{d}]", median, suite=suite, op=op, n=n, nnz_per_row=k, d=d,
                  nnz=n * k, **extra)


def _write(tmp_path, benchmarks, name="results.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": "TestCPU", "count": 2},
                                                 "python_version": "3.11"},
                                "commit_info": {"id": "0123456789abcdef", "dirty": False},
                                "datetime": "2026-01-01T00:00:00", "benchmarks": benchmarks}))
    return path


def _synthetic(a_nnz=1.0, b_d=3.0):
    """Grid benchmarks with known laws: newton_sketch ∝ nnz^a_nnz, cholesky ∝ d^b_d."""
    out = []
    for n, k, d in [(100_000, 20, 300), (300_000, 20, 300), (1_000_000, 20, 300),
                    (300_000, 5, 300), (300_000, 20, 100), (300_000, 20, 1000)]:
        nnz = n * k
        mv = 1e-9 * nnz
        chol = 1e-9 * d ** b_d
        out += [_grid(n, k, d, "floor", "scipy_matvec", mv),
                _grid(n, k, d, "floor", "cholesky", chol),
                _grid(n, k, d, "floor", "memcopy", 0.5 * mv),
                _grid(n, k, d, "newton", "newton_sketch", 2e-9 * nnz ** a_nnz,
                      phases={"gradient": 0.5, "sketch": 0.25, "factor": 0.25})]
    return out


def test_fit_power_recovers_exact_laws():
    x = np.array([1e5, 3e5, 1e6, 3e6])
    fit = report.fit_power(x, 4e-9 * x ** 0.93)
    assert fit.exponent == pytest.approx(0.93, abs=1e-12)
    assert fit.coef == pytest.approx(4e-9, rel=1e-9)
    assert fit.local_range == pytest.approx((0.93, 0.93), abs=1e-12)
    assert fit.x_range == (1e5, 3e6) and fit.points == 4
    assert fit.stderr == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(fit.predict(x), 4e-9 * x ** 0.93, rtol=1e-9)


def test_fit_power_matches_numpy_polyfit_on_noisy_data(rng):
    x = np.repeat([1e4, 1e5, 1e6], 2)
    t = 1e-8 * x ** 1.1 * np.exp(0.1 * rng.standard_normal(x.size))
    fit = report.fit_power(x, t)
    slope, intercept = np.polyfit(np.log(x), np.log(t), 1)
    assert fit.exponent == pytest.approx(slope, rel=1e-10)
    assert fit.coef == pytest.approx(math.exp(intercept), rel=1e-8)
    # local slopes use the mean log-time at each x
    lt = np.log(t).reshape(3, 2).mean(axis=1)
    slopes = np.diff(lt) / np.diff(np.log([1e4, 1e5, 1e6]))
    assert fit.local_range == pytest.approx((slopes.min(), slopes.max()), rel=1e-10)
    assert fit.stderr > 0


@pytest.mark.parametrize("x, t, match", [
    ([1.0, 1.0], [1.0, 2.0], "two distinct x"),
    ([1.0, 2.0], [1.0, 0.0], "positive"),
    ([1.0, 2.0], [1.0], "same length"),
])
def test_fit_power_rejects_bad_input(x, t, match):
    with pytest.raises(ValueError, match=match):
        report.fit_power(x, t)


def test_scaling_fits_from_json(tmp_path):
    records, _ = report.load_records(_write(tmp_path, _synthetic(a_nnz=0.97, b_d=2.8)))
    fits = report.scaling_fits(records)
    nnz_fit = fits[("nnz", "newton_sketch", 300)]
    assert nnz_fit.exponent == pytest.approx(0.97, abs=1e-10)
    # d = 300 was measured at (n, nnz/row) = (1e5, 20), (3e5, 20), (1e6, 20), (3e5, 5)
    assert nnz_fit.points == 4 and nnz_fit.x_range == (1.5e6, 2e7)
    sweep = fits[("nnz_n", "newton_sketch", (300, 20))]  # the n sweep at 20 nnz/row only
    assert sweep.exponent == pytest.approx(0.97, abs=1e-10)
    assert sweep.points == 3 and sweep.x_range == (2e6, 2e7)
    assert ("nnz_n", "newton_sketch", (300, 5)) not in fits  # one n at 5 nnz/row
    assert fits[("d", "cholesky", (300_000, 20))].exponent == pytest.approx(2.8, abs=1e-10)
    assert fits[("d", "scipy_matvec", (300_000, 20))].exponent == pytest.approx(0.0, abs=1e-10)
    # a single d at (1e5, 20): no d fit there
    assert ("d", "cholesky", (100_000, 20)) not in fits


def test_size_table_ratios(tmp_path):
    bench = [_grid(1000, 5, 10, "floor", "scipy_matvec", 2e-3),
             _grid(1000, 5, 10, "floor", "cholesky", 1e-3),
             _grid(1000, 5, 10, "floor", "memcopy", 4e-3),
             _grid(1000, 5, 10, "newton", "newton_sketch", 12e-3)]
    records, _ = report.load_records(_write(tmp_path, bench))
    text = report.size_tables(records)
    row = next(line for line in text.splitlines() if line.startswith("| newton_sketch"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["newton_sketch", "newton", "12.00 ms", "6×", "4×", "3×"]


def _e2e(op, median, converged, capped=False, solver=None, **extra):
    return _bench(op, median, suite="e2e", op=op, solver=solver or op, n=1000, nnz_per_row=5,
                  d=10, nnz=5000, cond=1e4, converged=converged, capped=capped,
                  rel_grad=1e-9 if converged else 1e-5, curve_t=[0.0, median],
                  curve_g=[1.0, 1e-9 if converged else 1e-5], **extra)


def test_e2e_speedups_and_lower_bounds(tmp_path):
    bench = [_e2e("fastnewton_sketch", 2.0, True, solver="fastnewton"),
             _e2e("fastnewton_exact", 4.0, True, solver="fastnewton"),
             _e2e("scipy_lbfgsb", 300.0, False, capped=True, time_cap=300.0),
             _e2e("scipy_trust_ncg", 20.0, True),
             _e2e("scipy_newton_cg", 10.0, False)]  # stopped early without converging
    records, _ = report.load_records(_write(tmp_path, bench))
    (fast, peers), = report.e2e_summary(records).values()
    best, speedups, vs_best = report.e2e_speedups(fast, peers)
    assert best.op == "fastnewton_sketch"
    assert speedups == {"scipy_lbfgsb": (150.0, True), "scipy_trust_ncg": (10.0, False),
                        "scipy_newton_cg": (5.0, True)}
    assert vs_best == (5.0, True)
    text = report.e2e_tables(records)
    assert "| scipy_lbfgsb | ≥ 300.00 s | capped at 300 s |" in text
    assert "≥ 150×" in text and "| 10× |" in text
    assert "speedup over the best peer: ≥ 5×" in text


def test_e2e_without_converged_fastnewton_gives_no_speedup(tmp_path):
    bench = [_e2e("fastnewton_sketch", 2.0, False, solver="fastnewton"),
             _e2e("scipy_lbfgsb", 3.0, True)]
    records, _ = report.load_records(_write(tmp_path, bench))
    (fast, peers), = report.e2e_summary(records).values()
    assert report.e2e_speedups(fast, peers) == (None, {}, None)
    assert "speedup over the best peer" not in report.e2e_tables(records)


def test_e2e_tables_one_per_family(tmp_path):
    """Same size, two families: two tables, each with its own speedups (old records = exp)."""
    bench = [_e2e("fastnewton_sketch", 2.0, True, solver="fastnewton"),  # no family: exp
             _e2e("scipy_lbfgsb", 40.0, True),
             _e2e("fastnewton_sketch", 3.0, True, solver="fastnewton", family="softmax"),
             _e2e("fastnewton_exact", 1.5, True, solver="fastnewton", family="softmax"),
             _e2e("scipy_lbfgsb", 6.0, True, family="softmax")]
    records, _ = report.load_records(_write(tmp_path, bench))
    summary = report.e2e_summary(records)
    assert sorted(k[0] for k in summary) == ["exp", "softmax"]
    assert {k[1] for k in summary} == {(1000, 5, 10)}
    fast, peers = summary[("softmax", (1000, 5, 10))]
    best, speedups, _ = report.e2e_speedups(fast, peers)
    assert best.op == "fastnewton_exact" and speedups == {"scipy_lbfgsb": (4.0, False)}
    assert report.e2e_speedups(*summary[("exp", (1000, 5, 10))])[1] == {
        "scipy_lbfgsb": (20.0, False)}
    text = report.e2e_tables(records)
    heads = [line for line in text.splitlines() if line.startswith("####")]
    assert len(heads) == 2
    assert heads[0].startswith("#### exp regression, n=") and "softmax" in heads[1]
    assert "speedup over the best peer: 20×" in text and "speedup over the best peer: 4×" in text


def test_thread_speedups(tmp_path):
    bench = [_bench(f"t{t}", m, suite="threads", op="matvec", threads=t, n=10, nnz_per_row=1,
                    d=2, nnz=10) for t, m in ((1, 10e-3), (2, 6e-3))]
    records, _ = report.load_records(_write(tmp_path, bench))
    sp = report.thread_speedups(records)
    assert sp[("matvec", (10, 1, 2))][2] == (6e-3, pytest.approx(10 / 6))
    assert "6.00 ms (1.67×)" in report.thread_table(records)


def test_phase_table_shares(tmp_path):
    records, _ = report.load_records(_write(tmp_path, _synthetic()[:4]))
    row = next(line for line in report.phase_table(records).splitlines()
               if line.startswith("| newton_sketch"))
    assert "| 50% | 25% | 0% | 25% | 0% | 0% |" in row


def test_load_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="not a pytest-benchmark JSON"):
        report.load_records(path)
    assert report.main([str(path), "-o", str(tmp_path / "out")]) == 2


def test_main_writes_report_with_plots(tmp_path):
    pytest.importorskip("matplotlib")
    path = _write(tmp_path, _synthetic() + [
        _e2e("fastnewton_sketch", 2.0, True, solver="fastnewton"),
        _e2e("scipy_lbfgsb", 30.0, False, capped=True, time_cap=30.0)])
    out = tmp_path / "rep"
    assert report.main([str(path), "-o", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "TestCPU" in text and "commit 0123456789" in text
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "time_vs_nnz_d300.png" in pngs and "convergence_0.png" in pngs
    assert "time_vs_d_n300000_k20.png" in pngs
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name}]({name})" in text


def test_report_without_matplotlib_has_tables_and_a_note(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "rep"
    report.write_report(_write(tmp_path, _synthetic()), out)
    text = (out / "report.md").read_text()
    assert "matplotlib is not installed" in text
    assert "| newton_sketch | time ∝ nnz^a | d=300 (all nnz/row) | 1.000" in text
    assert not list(out.glob("*.png"))


def test_min_statistic(tmp_path):
    path = _write(tmp_path, _synthetic())
    med, _ = report.load_records(path)
    low, _ = report.load_records(path, stat="min")
    assert [r.median for r in low] == [0.5 * r.median for r in med]
    with pytest.raises(ValueError, match="stat must be"):
        report.load_records(path, stat="mean")
    assert report.main([str(path), "-o", str(tmp_path / "o"), "--no-plots", "--stat", "min"]) == 0
    assert "Minima over rounds" in (tmp_path / "o" / "report.md").read_text()


def test_other_benchmarks_table(tmp_path):
    own = _bench("test_gram_vs_scipy", 0.016, n=20000, d=50, nnz=332668, speedup=3.614,
                 t_scipy=0.058, converged=True)
    own["fullname"] = "bench/bench_linalg.py::test_gram_vs_scipy"
    sk = _bench("test_srht_dense", 0.012, n=4096, d=64, m=128, what="SRHT")
    sk["group"] = "srht"
    records, _ = report.load_records(_write(tmp_path, _synthetic()[:4] + [own, sk]))
    assert {r.group for r in records if r.suite == "other"} == {"bench/bench_linalg.py", "srht"}
    rows = report.other_table(records).splitlines()
    assert len(rows) == 4  # header, rule, one row per benchmark outside the grid suites
    assert rows[2] == ("| bench/bench_linalg.py | test_gram_vs_scipy | 16.00 ms | "
                       "n=20,000 d=50 nnz=332,668 | speedup=3.61 |")
    assert rows[3] == "| srht | test_srht_dense | 12.00 ms | n=4,096 d=64 m=128 | SRHT |"
    assert report.other_table(records[:4]) == ""
    text = report.build_report(records)
    assert "## Other benchmarks" in text
    assert "## Other benchmarks" not in report.build_report(records[:4])


# -- entry points: python -m fastnewton.report, fastnewton report, python -m fastnewton.bench.report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module(name, *args):
    """Run ``python -m name args`` from this checkout (a fresh interpreter)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", name, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_every_entry_point_writes_the_same_markdown(tmp_path, capsys):
    path = _write(tmp_path, _synthetic() + [
        _e2e("fastnewton_sketch", 2.0, True, solver="fastnewton"),
        _e2e("scipy_lbfgsb", 30.0, False, capped=True, time_cap=30.0)])
    ref = report.main([str(path), "-o", str(tmp_path / "ref"), "--no-plots"])
    assert ref == 0
    capsys.readouterr()
    expected = (tmp_path / "ref" / "report.md").read_text()
    assert "## Fitted scaling exponents" in expected and "TestCPU" in expected
    assert cli_main(["report", str(path), "-o", str(tmp_path / "cli"), "--no-plots"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli" / "report.md")
    assert (tmp_path / "cli" / "report.md").read_text() == expected
    for name in ("fastnewton.bench.report", "fastnewton.report"):
        out = tmp_path / name
        proc = _module(name, path, "-o", out, "--no-plots")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(out / "report.md")
        assert (out / "report.md").read_text() == expected


def test_entry_points_reject_a_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert cli_main(["report", str(missing), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnewton: error:") and "nope.json" in err
    assert "No such file" in err and "Traceback" not in err
    assert report.main([str(missing), "-o", str(tmp_path / "o")]) == 2
    assert "python -m fastnewton.report: error:" in capsys.readouterr().err
    proc = _module("fastnewton.bench.report", missing, "-o", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.startswith("python -m fastnewton.bench.report: error:")
    assert "nope.json" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_report_subcommand_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["report"])
    assert exc.value.code == 2
    assert "the following arguments are required: json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["report", "x.json", "--stat", "mean"])
    assert exc.value.code == 2
