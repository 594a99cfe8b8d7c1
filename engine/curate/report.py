"""The curation review report: one HTML file with embedded PNG charts, decisions, outliers and gaps."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path

from engine.curate.curate import Choice, CurationResult, scenario_of
from engine.curate.rows import config_medians
from engine.curate.stats import median

COLORS = {"rocm": "#d62728", "vulkan": "#1f77b4", "cuda": "#2ca02c", "metal": "#9467bd", "cpu": "#7f7f7f",
          "sycl": "#8c564b", "opencl": "#e377c2", "system": "#17becf"}
MAX_CHARTS = 40


def _chart(hw: str, result: CurationResult) -> str | None:
    """Relative tokens/s (vs the best configuration of each test) by backend, per scenario; outliers as x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_cell: dict[tuple, list] = defaultdict(list)
    for r in result.rows:
        if r.cell[0] == hw:
            by_cell[r.cell].append(r)
    if not by_cell:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, scen in zip(axes, ("chat", "coding", "long-context"), strict=True):
        cells = sorted(c for c in by_cell if scenario_of(c) == scen)
        backends = sorted({r.cfg[0] for c in cells for r in by_cell[c]})
        meds = [config_medians(by_cell[c]) for c in cells]
        for i, b in enumerate(backends):
            ys = []
            for med in meds:
                mine = [m for cfg, m in med.items() if cfg[0] == b]
                if mine:  # the backend's best configuration (median of its repeats) / the test's best
                    ys.append(max(mine) / max(med.values()))
            if ys:
                xs = [i + (j % 9 - 4) * 0.03 for j in range(len(ys))]
                ax.scatter(xs, ys, s=12, alpha=0.6, color=COLORS.get(b, "#000"), label=b)
                ax.hlines(median(ys), i - 0.3, i + 0.3, color="black", linewidth=2)
        for o in result.outliers:
            if o.row.cell[0] == hw and scenario_of(o.row.cell) == scen and o.row.cfg[0] in backends:
                ax.scatter([backends.index(o.row.cfg[0])], [min(1.5, o.row.tps / o.group_median)],
                           marker="x", color="red", s=40)
        ax.set_xticks(range(len(backends)), backends)
        chosen = _chosen(hw, scen, result)
        for tick, b in zip(ax.get_xticklabels(), backends, strict=True):
            if b == chosen:
                tick.set_fontweight("bold")
                tick.set_color("green")
        ax.set_title(f"{scen} ({len(cells)} tests)" + (f" -> {chosen}" if chosen else ""), fontsize=10)
        ax.set_ylim(0, 1.1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("tokens/s / best config of the test")
    fig.suptitle(hw, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _chosen(hw: str, scen: str, result: CurationResult) -> str | None:
    """The backend curation chose for all models of this hardware in this scenario (None if none)."""
    for d in sorted(result.decisions, key=lambda d: -d.priority):
        if d.param != "backend" or d.scenario != scen or d.model_level != "any":
            continue
        conds = dict(d.hw_value)
        if conds.get("archetype") == hw or (d.hw_level == "arch" and f":{conds.get('arch')}:" in f":{hw}:"):
            return str(d.value)
    return None


def _decision_row(d: Choice) -> str:
    ev = d.evidence
    ru = ev.get("runner_up") or {}
    cond = ", ".join(f"{k}={v}" for k, v in d.hw_value + d.model_value) or "-"
    param = d.param if d.backend is None else f"{d.param} (with {d.backend})"
    return ("<tr class='win'>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
        cond, d.scenario, param, d.value, f"{d.margin:.1%}", f"{d.noise:.1%}", ev.get("n"), ev.get("metric"),
        ev.get("median_tps"), ru.get("value", "(only one measured)"), ru.get("median_tps", "-"), d.priority))
        + "</tr>")


def render_html(result: CurationResult) -> str:
    hws = sorted({r.cell[0] for r in result.rows})
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Curation report</title><style>",
             "body{font-family:sans-serif;margin:2em;max-width:1300px} table{border-collapse:collapse;"
             "font-size:12px} td,th{border:1px solid #ccc;padding:2px 6px} tr.win td{background:#eaffea}"
             " h2{margin-top:2em} .muted{color:#777}</style></head><body>",
             "<h1>Curation report</h1>",
             f"<p>{len(result.rows)} measurements kept, {result.duplicates} duplicates dropped, "
             f"{len(result.outliers)} outliers excluded (median/MAD, |z| &gt; 3.5 and &gt; 10 % off), "
             f"{len(result.decisions)} decisions, {len(result.skipped)} groups without a decision.</p>",
             "<p class='muted'>Charts: every point is one test (model x test x depth) on that hardware; "
             "y = the backend's best tokens/s divided by the best configuration of that test; the bar is "
             "the median. Red x = an excluded outlier (tokens/s / its group median). A green backend "
             "name (and '-> backend' in the title) is the one curation chose for all models there.</p>"]
    by_hw: dict[str, list[Choice]] = defaultdict(list)
    for d in result.decisions:
        by_hw[", ".join(f"{k}={v}" for k, v in d.hw_value)].append(d)
    parts.append("<h2>Decisions</h2><table><tr><th>when</th><th>scenario</th><th>parameter</th><th>value</th>"
                 "<th>margin</th><th>noise</th><th>n</th><th>metric</th><th>median t/s</th><th>runner-up</th>"
                 "<th>runner-up t/s</th><th>priority</th></tr>")
    for key in sorted(by_hw):
        for d in sorted(by_hw[key], key=lambda d: (d.scenario, d.param, -d.priority, repr(d.model_value))):
            parts.append(_decision_row(d))
    parts.append("</table>")
    parts.append("<h2>Charts per archetype</h2>")
    for hw in hws[:MAX_CHARTS]:
        png = _chart(hw, result)
        if png:
            parts.append(f"<h3>{html.escape(hw)}</h3><img alt='tokens/s by backend for {html.escape(hw)}' "
                         f"src='data:image/png;base64,{png}'>")
    parts.append("<h2>Outliers</h2><table><tr><th>where</th><th>test</th><th>config</th><th>tokens/s</th>"
                 "<th>group median</th></tr>")
    for o in sorted(result.outliers, key=lambda o: o.row.where):
        parts.append("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
            o.row.where, f"{o.row.cell[0]} {o.row.cell[1]} {o.row.metric}", o.row.cfg, o.row.tps,
            round(o.group_median, 2))) + "</tr>")
    parts.append("</table><h2>Groups without a decision</h2><ul>")
    parts.extend(f"<li>{html.escape(s)}</li>" for s in sorted(result.skipped))
    parts.append("</ul></body></html>\n")
    return "".join(parts)


def write_report(result: CurationResult, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(result), encoding="utf-8")
    return p
