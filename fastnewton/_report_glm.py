"""Markdown tables of the GLM race (``bench/bench_glm.py``, ``extra_info["suite"] == "glm_race"``).

Used by the report generator (:mod:`fastnewton.report`) and by the benchmark itself, which
writes the same tables after a run.
"""

from __future__ import annotations

import math

__all__ = ["race_table", "race_summary", "glm_race_section", "GAP_TARGET"]

#: A solver "reached" the common objective when its relative gap to the best is below this.
GAP_TARGET = 1e-10


def _secs(s, capped=False):
    if s is None or not math.isfinite(s):
        return "–"
    text = f"{s:.3g} s" if s < 100 else f"{s:.0f} s"
    return ("≥ " + text) if capped else text


def _gap(g):
    if g is None:
        return "–"
    return "0" if g == 0 else f"{g:.1e}"


def _title(info):
    return (f"{info.get('family', '?')}, {info.get('problem', '?')}: n = {info.get('n', 0):,}, "
            f"d = {info.get('d', 0):,}"
            + (f", {info['nnz_per_row']} nnz/row" if info.get("kind") != "dense" else ", dense"))


def race_table(info):
    """Markdown table of one race: one row per solver, fastest first."""
    solvers = sorted(info.get("solvers", []),
                     key=lambda s: (s.get("seconds") is None, s.get("seconds") or 0.0))
    auto = next((s for s in solvers if s["solver"] == "fastnewton-auto"), None)
    head = ["solver", "time", "÷ auto", "objective", "rel. gap", "iters", "peak RSS", "fit RSS",
            "notes"]
    rows = []
    for s in solvers:
        sec = s.get("seconds")
        ratio = "–"
        if auto and auto.get("seconds") and sec:
            ratio = ("≥ " if s.get("capped") or not s.get("reached") else "") + \
                f"{sec / auto['seconds']:.2g}×"
        notes = []
        if s.get("capped"):
            notes.append("capped")
        elif s.get("status") == "failed":
            notes.append("failed: " + str(s.get("error", ""))[:60])
        elif not s.get("reached"):
            notes.append(f"gap > {GAP_TARGET:.0e}")
        if s.get("method") and s["solver"] == "fastnewton-auto":
            notes.append(f"auto → {s['method']}")
        rows.append([s["solver"], _secs(sec, s.get("capped") or not s.get("reached")), ratio,
                     "–" if s.get("objective") is None else f"{s['objective']:.12g}",
                     _gap(s.get("gap")), str(s.get("n_iter", "–")),
                     "–" if s.get("peak_rss_mb") is None else f"{s['peak_rss_mb']:.0f} MB",
                     "–" if s.get("fit_rss_mb") is None else f"{s['fit_rss_mb']:.0f} MB",
                     ", ".join(notes)])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def race_summary(infos):
    """Markdown table: per race, auto's time, the fastest peer's and the ratio."""
    head = ["race", "auto (method)", "fastest peer", "peer time", "peer ÷ auto"]
    rows = []
    for info in infos:
        auto = next((s for s in info.get("solvers", []) if s["solver"] == "fastnewton-auto"), None)
        peer = info.get("fastest_peer")
        ratio = info.get("auto_vs_fastest_peer")
        bound = "≥ " if info.get("ratio_is_lower_bound") else ""
        rows.append([
            _title(info),
            "–" if not auto else f"{_secs(auto.get('seconds'))} ({auto.get('method', '?')})",
            peer or "–",
            _secs(info.get("fastest_peer_seconds"), info.get("ratio_is_lower_bound")),
            "–" if ratio is None else f"{bound}{ratio:.2f}×"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def glm_race_section(infos):
    """The whole Markdown section: summary, then one table per race ('' without races)."""
    infos = list(infos)
    if not infos:
        return ""
    cap = max((i.get("cap", 0) for i in infos), default=0)
    out = [f"Time from the data in memory to the fitted coefficients, every solver in its own "
           f"process after a warm-up, all on the same objective (sum of the losses plus "
           f"½·lam‖coef‖², intercept unpenalized), evaluated by one numpy formula; `rel. gap`: "
           f"relative gap to the best objective of all solvers. `≥`: capped at {cap:g} s or "
           f"above the gap target {GAP_TARGET:.0e} (a lower bound). `peer ÷ auto` > 1: "
           f"fastnewton faster.", "", race_summary(infos), ""]
    for info in infos:
        out += [f"### {_title(info)}", "", race_table(info), ""]
    return "\n".join(out)
