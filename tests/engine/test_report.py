"""The curation review report: decisions highlighted, PNG charts embedded, outliers listed."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from engine.curate.curate import curate
from engine.curate.ingest import read_file
from engine.curate.records import BenchRecord
from engine.curate.report import write_report

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "bench"


def test_report_has_charts_decisions_and_outliers(tmp_path: Path):
    recs = [r for r in read_file(FIX / "community-sample.csv") if isinstance(r, BenchRecord)]
    bad = recs[0].model_copy(update={"tps": recs[0].tps * 5, "where": "planted.csv:7"})
    twins = [recs[0].model_copy(update={"where": f"twin.csv:{i}", "tps": recs[0].tps * (1 + i / 1000)})
             for i in range(3)]
    res = curate(recs + twins + [bad])
    assert [o.row.where for o in res.outliers] == ["planted.csv:7"]
    html = write_report(res, tmp_path / "r" / "report.html").read_text()
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) >= 2
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert html.count("<tr class='win'>") == len(res.decisions) > 0
    assert "planted.csv:7" in html and "amd-rdna3.5-gfx1151-unified-128gb-bw2" in html
    assert "Groups without a decision" in html
