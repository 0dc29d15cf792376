"""The GLM race tables of the report generator, from a synthetic benchmark JSON."""

import json

from fastnewton import report
from fastnewton._report_glm import glm_race_section, race_table


def _solver(name, seconds, objective, gap, **kw):
    return dict({"solver": name, "status": "done", "capped": False, "seconds": seconds,
                 "objective": objective, "gap": gap, "reached": gap is not None and gap <= 1e-10,
                 "n_iter": 5, "peak_rss_mb": 900.0, "fit_rss_mb": 120.0}, **kw)


def _race():
    return {"suite": "glm_race", "op": "sparse-unstandardized-binomial", "race":
            "sparse-unstandardized-binomial", "problem": "sparse-unstandardized", "kind": "sparse",
            "family": "binomial", "n": 1_000_000, "d": 1000, "nnz_per_row": 20, "cap": 120.0,
            "fastest_peer": "glum-irls-cd", "fastest_peer_seconds": 40.0,
            "auto_vs_fastest_peer": 8.0, "ratio_is_lower_bound": False,
            "solvers": [
                _solver("fastnewton-auto", 5.0, 100.0, 0.0, method="exact"),
                _solver("glum-irls-cd", 40.0, 100.0, 2e-12),
                _solver("sklearn-lbfgs", 30.0, 100.1, 1e-3),
                {"solver": "sklearn-newton-cg", "status": "capped", "capped": True,
                 "seconds": 120.0, "peak_rss_mb": 800.0, "reached": False},
                {"solver": "glum-lbfgs", "status": "not installed", "capped": False,
                 "seconds": None, "reached": False},
            ]}


def test_race_table_marks_lower_bounds_and_ratios():
    text = race_table(_race())
    lines = text.splitlines()
    assert lines[0].startswith("| solver | time | ÷ auto | objective | rel. gap")
    auto = next(line for line in lines if line.startswith("| fastnewton-auto"))
    assert "5 s" in auto and "auto → exact" in auto and "| 1× |" in auto
    glum = next(line for line in lines if line.startswith("| glum-irls-cd"))
    assert "40 s" in glum and "8×" in glum and "≥" not in glum and "2.0e-12" in glum
    lbfgs = next(line for line in lines if line.startswith("| sklearn-lbfgs"))
    assert "≥ 30 s" in lbfgs and "gap > 1e-10" in lbfgs  # converged to the wrong objective
    capped = next(line for line in lines if line.startswith("| sklearn-newton-cg"))
    assert "≥ 120 s" in capped and "capped" in capped
    # fastest first, missing peers last
    order = [line.split("|")[1].strip() for line in lines[2:]]
    assert order[0] == "fastnewton-auto" and order[-1] == "glum-lbfgs"


def test_report_has_the_glm_race_section(tmp_path):
    doc = {"machine_info": {}, "commit_info": {}, "datetime": "now",
           "benchmarks": [{"name": "test_glm_race[x]", "group": "glm race",
                           "stats": {"median": 100.0, "min": 100.0}, "extra_info": _race()}]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    out = report.write_report(str(path), str(tmp_path / "out"), plots=False)
    text = open(out, encoding="utf-8").read()
    assert "## GLM race" in text
    assert "| binomial, sparse-unstandardized: n = 1,000,000, d = 1,000, 20 nnz/row | 5 s (exact) " \
           "| glum-irls-cd | 40 s | 8.00× |" in text
    assert "capped at 120 s" in text
    assert glm_race_section([]) == ""
    # no race records: no section
    doc["benchmarks"] = []
    path.write_text(json.dumps(doc))
    text = open(report.write_report(str(path), str(tmp_path / "out2"), plots=False),
                encoding="utf-8").read()
    assert "GLM race" not in text
