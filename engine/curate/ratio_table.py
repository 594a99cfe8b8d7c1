"""Write engine/data/perf_ratios.json (engine.adaptive.ratios) from benchmark data.

    python -m engine.curate.ratio_table [data/community-bench/] > engine/data/perf_ratios.json
"""

from __future__ import annotations

import json
import sys

from engine.adaptive.ratios import calibrate
from engine.commands.curate import read_rows
from engine.curate.model_rules import observations


def main(argv: list[str]) -> int:
    rows, protos, _ = read_rows(argv[1:] or ["data/community-bench"])
    json.dump(calibrate(observations(rows, protos)), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
