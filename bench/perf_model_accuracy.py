"""Accuracy of the performance model (facts/perf.py): leave-one-hardware-out median absolute % error.

For each GPU architecture in the community data (every machine with that GPU), calibrate the model on the other
machines and predict the held-out machines' tokens/s per backend and phase (their architecture and machine terms
unknown, as for a GPU nobody benchmarked). Also the same-machine backend ratio (what backend choices use): its
error where the held-out machine measured two backends. Prints medians per backend family and phase.

The expected performance of a Recommendation (engine/adaptive/expect.py) adds two checks, held out the same way:
prompt tokens/s from generation x the pp/tg ratio table (engine.adaptive.ratios) calibrated on the other
architectures, both from the measured generation speed and end to end from the predicted one; and how often the
measured generation speed falls inside the stated interval (the prediction / x exp(spread), spread a log sd).

    python bench/perf_model_accuracy.py [data/community-bench/]
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.adaptive import ratios  # noqa: E402
from engine.commands.curate import read_rows  # noqa: E402
from engine.curate.model_rules import observations  # noqa: E402
from facts import perf  # noqa: E402


def _median(v: list[float]) -> float:
    if not v:
        return float("nan")
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def main(argv: list[str]) -> int:
    data = argv[1:] or [str(ROOT / "data" / "community-bench")]
    rows, protos, _ = read_rows(data)
    obs = observations(rows, protos)
    unit = {o.machine: (o.arch or o.machine) for o in obs}
    units = sorted(set(unit.values()))
    errors: dict[tuple[str, str], list[float]] = defaultdict(list)
    fam_err: dict[str, list[float]] = defaultdict(list)
    ratio_err: dict[tuple[str, str], list[float]] = defaultdict(list)
    pp_err: dict[str, list[float]] = defaultdict(list)  # prompt from measured generation x ratio
    e2e_err: dict[str, list[float]] = defaultdict(list)  # prompt from predicted generation x ratio
    inside: dict[str, list[bool]] = defaultdict(list)  # measured generation inside the stated interval
    for u in units:
        train = [o for o in obs if unit[o.machine] != u]
        test = [o for o in obs if unit[o.machine] == u]
        cal = perf.fit(train)
        table = ratios.calibrate(train)
        for t, p in ratios.pairs(test):
            r = ratios.lookup(table, t.backend, t.vendor, t.family, t.precision)
            if r is None:
                continue
            pp_err[t.backend].append(abs(t.tps * r.ratio / p.tps - 1.0))
            pred = cal.predict(t.backend, perf.Group("tg", t.vendor, t.family, t.memclass, t.precision, t.moe))
            if pred is not None:
                e2e_err[t.backend].append(abs(t.roof * pred.efficiency * r.ratio / p.tps - 1.0))
        by_cell: dict[tuple, dict[str, float]] = defaultdict(dict)
        for o in test:
            g = perf.Group(o.phase, o.vendor, o.family, o.memclass, o.precision, o.moe)
            p = cal.predict(o.backend, g)
            if p is None:
                continue
            err = abs(o.roof * p.efficiency / o.tps - 1.0)
            if o.phase == "tg":
                inside[o.backend].append(abs(math.log(o.roof * p.efficiency / o.tps)) <= p.spread)
            errors[(o.backend, o.phase)].append(err)
            errors[(o.backend, "all")].append(err)
            fam_err[o.family or o.vendor].append(err)
            by_cell[(o.cell, o.phase)][o.backend] = o.tps
        for (cell, phase), tps in sorted(by_cell.items(), key=repr):
            o0 = next(o for o in test if o.cell == cell and o.phase == phase)
            g = perf.Group(phase, o0.vendor, o0.family, o0.memclass, o0.precision, o0.moe)
            names = sorted(tps)
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    a, b = names[i], names[j]
                    keys = perf._pair_keys(g, a, b)
                    if keys["base"] not in cal.ratio.counts.get("base", {}):
                        continue
                    pred = cal.ratio.value(keys)
                    ratio_err[(f"{a}/{b}", "tg" if phase == "tg" else "pp")].append(
                        abs(math.exp(pred - math.log(tps[a] / tps[b])) - 1.0))
    print(f"performance model, leave-one-hardware-out over {len(units)} GPU architectures, {len(obs)} observations "
          "(one per machine x model x test x backend: the best measured configuration)")
    print("\n| backend | phase | predictions | median abs error | p90 abs error |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (b, ph), v in sorted(errors.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
        s = sorted(v)
        print(f"| {b} | {ph} | {len(v)} | {_median(v):.1%} | {s[min(len(s) - 1, int(0.9 * len(s)))]:.1%} |")
    print("\n| GPU family | predictions | median abs error |")
    print("| --- | ---: | ---: |")
    for fam, v in sorted(fam_err.items()):
        print(f"| {fam} | {len(v)} | {_median(v):.1%} |")
    print("\nsame-machine backend ratio (what the backend choice uses), held-out machines with two backends:")
    print("\n| backends | phase | comparisons | median abs error |")
    print("| --- | --- | ---: | ---: |")
    for (pair, ph), v in sorted(ratio_err.items()):
        print(f"| {pair} | {ph} | {len(v)} | {_median(v):.1%} |")
    print("\nexpected prompt tokens/s (generation x the pp/tg ratio of the other architectures), and how often the "
          "measured generation speed lies inside the stated interval:")
    print("\n| backend | pairs | MdAPE from measured tg | MdAPE end to end | tg predictions | inside interval |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for b in sorted(set(pp_err) | set(inside)):
        pe, ee, ins = pp_err.get(b, []), e2e_err.get(b, []), inside.get(b, [])
        print(f"| {b} | {len(pe)} | {_median(pe):.1%} | {_median(ee) if ee else float('nan'):.1%} | {len(ins)} | "
              f"{sum(ins) / len(ins) if ins else float('nan'):.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
