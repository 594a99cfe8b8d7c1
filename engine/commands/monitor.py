"""`engine monitor`: how running models (and bench results) do against what the recommendation expects."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    from engine.commands.apply import add_lemonade_flags
    from engine.commands.recommend import SCENARIO_HELP

    p = subparsers.add_parser(
        "monitor", help="compare measured speed with expectations and flag deviations",
        description="Read what Lemonade says about its loaded models (/v1/health options and launch command, "
                    "/metrics, /v1/stats), and/or Lemonade bench JSON files, or measure loaded models with a few "
                    "short chats (--measure); compare with the recommendation's expected performance or a "
                    "baseline; flag tokens/s -5 % (warning) / -15 % (critical) and TTFT +10 % (warning). "
                    "Exit 1 when anything is flagged.")
    p.add_argument("models", nargs="*", metavar="MODEL", help="only these models (default: every one seen)")
    p.add_argument("--bench", action="append", default=[], metavar="FILE",
                   help="a Lemonade bench --json file (repeatable); without --lemonade/--lemonade-config/--measure "
                        "lemond is not asked")
    p.add_argument("--baseline", action="append", default=[], metavar="FILE",
                   help="an earlier bench-like JSON file to compare with (repeatable; also monitor's --write)")
    p.add_argument("--measure", action="store_true", help="run short chats against each loaded model")
    p.add_argument("--runs", type=int, default=3, metavar="N", help="chats per model with --measure (default 3)")
    p.add_argument("--write", metavar="FILE", help="write the measurements as bench-like JSON (a baseline for "
                                                   "later, or input for `engine learn`)")
    p.add_argument("--system-info", metavar="FILE", help="the hardware the expectations are for (default: "
                                                        "lemond's system-info, else this machine)")
    p.add_argument("--scenario", default=None, metavar="NAME", help=SCENARIO_HELP + " (expectations' scenario)")
    add_lemonade_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import config
    from engine.adaptive import measure, monitor
    from engine.adaptive.context import Expecter, find_hardware
    from engine.errors import UsageError

    if args.runs < 1:
        raise UsageError("--runs must be at least 1")
    settings = config.load(no_autotune=args.no_autotune)
    ask_lemond = not args.bench or args.lemonade or args.lemonade_config or args.measure
    target = health = None
    measurements: list[measure.Measurement] = []
    loaded: list[dict[str, Any]] = []
    if ask_lemond:
        from engine.lemonade.target import locate

        target = locate(settings, args.lemonade, args.lemonade_config)
        if not target.running:
            raise UsageError(f"no lemond answers at {target.url}: monitor reads a running one (or pass --bench)")
        client = target.client()
        health = client.health()
        loaded = [m for m in health.get("all_models_loaded") or [] if isinstance(m, dict) and m.get("model_name")]
        if args.models:
            loaded = [m for m in loaded if m["model_name"] in args.models]
        if args.measure:
            measurements += [measure.measure(client, m, args.runs) for m in loaded]
        else:
            measurements += [m for m in measure.from_lemond(client, health)
                             if not args.models or m.model in args.models]
    for path in args.bench:
        measurements += [m for m in measure.read_bench(path) if not args.models or m.model in args.models]
    baselines = [b for path in args.baseline for b in measure.read_bench(path)]
    hw, hw_source = find_hardware(target, args.system_info)
    scenario = args.scenario or settings.scenario
    ex = Expecter(settings, hw, scenario)
    findings: list[monitor.Finding] = []
    entries = []
    for m in measurements:
        if m.failed:
            f = [monitor.Finding(m.model, m.scenario, "generation_tps", "critical", "measurement",
                                 message=f"{m.failed}: no measurement", suggestion=monitor._rebench(m),
                                 evidence={"source": m.source})]
        else:
            f = monitor.from_compare(m)
            base = monitor.match_baseline(m, baselines)
            if base is not None:
                f += monitor.against_baseline(m, base)
            checkpoint = (m.extra or {}).get("checkpoint")
            rec, why = ex.recommend(m.model, checkpoint if isinstance(checkpoint, str) else None, m.backend)
            rule = rec.expected.rule_id if rec is not None and rec.expected is not None else None
            f += monitor.against_prediction(m, rec.performance if rec else None, rule, why)
        findings += f
        entries.append({"measurement": m.to_dict(), "findings": [x.to_dict() for x in f]})
    for entry in loaded:  # the options lemond runs with against the recommendation's
        rec, _ = ex.recommend(str(entry["model_name"]), entry.get("checkpoint"))
        if rec is not None and isinstance(entry.get("recipe_options"), dict):
            drift = monitor.options_drift(str(entry["model_name"]), entry["recipe_options"], rec.recipe_options())
            if drift is not None:
                findings.append(drift)
                entries.append({"measurement": None, "findings": [drift.to_dict()]})
    if args.write:
        _write(Path(args.write), measurements, hw_source)
    worst = monitor.worst(findings)
    code = 1 if worst in ("warning", "critical") else 0
    if args.json:
        from engine.envelope import print_json

        print_json("monitor", {"status": worst, "exit_code": code, "hardware_source": hw_source,
                               "scenario": scenario, "thresholds": {"tps_warning_pct": monitor.TPS_WARNING,
                                                                    "tps_critical_pct": monitor.TPS_CRITICAL,
                                                                    "ttft_warning_pct": monitor.TTFT_WARNING},
                               "lemond": {"url": target.found.url, "version": health.get("version")} if health
                               else None, "entries": entries})
        return code
    _print_text(findings, measurements, hw_source, scenario, worst, bool(args.bench) and not ask_lemond)
    return code


def _write(path: Path, measurements: list[Any], hw_source: str) -> None:
    from engine.adaptive import measure
    from engine.lemonade.store import atomic_write

    groups = []
    for m in measurements:
        samples = (m.extra or {}).get("samples") or ([[m.tps, m.ttft_ms or 0.0]] if m.tps else [])
        groups.append((m.model, m.backend, m.args, m.ctx_size, m.scenario, [tuple(s) for s in samples],
                       m.input_tokens, 0))
    doc = measure.bench_document(groups, hardware={"source": hw_source}, runs=max((m.runs for m in measurements),
                                                                                   default=1))
    atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode())


def _print_text(findings, measurements, hw_source, scenario, worst, bench_only) -> None:
    out = sys.stdout
    out.write(f"monitor: {len(measurements)} measurement(s); expectations for scenario {scenario} on hardware "
              f"{hw_source}\n")
    if not measurements:
        out.write("  nothing measured yet: no loaded model has answered a request (try --measure)\n"
                  if not bench_only else "  the bench files hold no scenarios\n")
    for f in findings:
        mark = {"ok": "ok", "unknown": "??", "info": "--", "warning": "WARNING", "critical": "CRITICAL"}[f.severity]
        out.write(f"{mark:<8} {f.model} [{f.scenario}] {f.metric} vs {f.against}: {f.message}\n")
        if f.suggestion:
            out.write(f"         -> {f.suggestion}\n")
    out.write(f"status: {worst}\n")
