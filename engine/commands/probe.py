"""`engine probe MODEL`: load the recommended configuration in a Lemonade job, measure a short chat, and fall back
along a chain of safer configurations when it fails."""

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
        "probe", help="load the recommendation in a Lemonade job, measure it, fall back if it fails",
        description="Submit one Lemonade job (POST /v1/jobs): load the recommended configuration, run short "
                    "measured chats, unload; a failed load or chat moves on to the next configuration (half the "
                    "context, placement left to llama.cpp --fit, the other backend). Exit 0 when the "
                    "recommendation worked, 1 when a fallback was needed or nothing loaded.")
    p.add_argument("model", metavar="MODEL", help="a model as lemond lists it (bare name or canonical id)")
    p.add_argument("--runs", type=int, default=2, metavar="N", help="measured chats per configuration (default 2)")
    p.add_argument("--keep-loaded", action="store_true", help="do not unload the model at the end")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="wait at most S seconds for the job")
    p.add_argument("--write", metavar="FILE", help="write the outcome as bench-like JSON (input for "
                                                   "`engine learn` and `engine monitor --baseline`)")
    p.add_argument("--dry-run", action="store_true", help="print the job and submit nothing")
    p.add_argument("--system-info", metavar="FILE", help="hardware (default: lemond's system-info)")
    p.add_argument("--scenario", default=None, metavar="NAME", help=SCENARIO_HELP)
    add_lemonade_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def _other_backend(rec: Any) -> str | None:
    """The runner-up backend of the recommendation, else another available one."""
    exp = rec.expected
    if exp is not None and exp.runner_up and exp.runner_up.get("value"):
        return str(exp.runner_up["value"])
    chosen = rec.decisions["backend"].value if "backend" in rec.decisions else None
    avail = sorted(rec.context.get("backends") or ())
    return next((b for b in avail if b != chosen and b not in ("cpu", "system")), None)


def run(args: argparse.Namespace) -> int:
    from engine import config
    from engine.adaptive import monitor, probe
    from engine.adaptive.context import Expecter, find_hardware
    from engine.adaptive.measure import Measurement
    from engine.errors import UsageError
    from engine.lemonade import models as lmodels
    from engine.lemonade.target import locate

    if args.runs < 1:
        raise UsageError("--runs must be at least 1")
    settings = config.load(no_autotune=args.no_autotune)
    target = locate(settings, args.lemonade, args.lemonade_config)
    if not target.running:
        raise UsageError(f"no lemond answers at {target.url}: probe runs a job on a running lemond")
    client = target.client()
    model = lmodels.running(client, [args.model], False)[0]
    if model.facts is None:
        raise UsageError(f"no model facts for {args.model}: {model.facts_error}")
    if model.recipe != "llamacpp":
        raise UsageError(f"{args.model}: recipe {model.recipe}; probe tunes llamacpp models only")
    hw, hw_source = find_hardware(target, args.system_info)
    ex = Expecter(settings, hw, args.scenario or settings.scenario)
    rec, why = ex.recommend_facts(model.facts)
    if rec is None:
        raise UsageError(why or f"no recommendation for {args.model}")
    other = _other_backend(rec)
    other_rec = ex.recommend_facts(model.facts, backend=other)[0] if other else None
    configs = probe.chain(rec.recipe_options(), other_rec.recipe_options() if other_rec else None,
                         other_label=f"the other backend ({other})")
    if args.dry_run:
        doc = probe.job(args.model, configs, args.runs, unload=not args.keep_loaded)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    outcome = probe.run(client, args.model, configs, args.runs, unload=not args.keep_loaded, timeout=args.timeout)
    chosen = outcome.chosen
    findings = []
    if chosen is not None:
        perf_rec = rec if chosen is outcome.attempts[0] else None
        m = Measurement(args.model, chosen.config.options.get("llamacpp_backend"),
                        str(chosen.config.options.get("llamacpp_args") or ""), chosen.config.options.get("ctx_size"),
                        "probe", chosen.tps, chosen.ttft_ms, chosen.samples[0][2], len(chosen.samples),
                        min(s[0] for s in chosen.samples), max(s[0] for s in chosen.samples),
                        source=f"{client.url}/v1/jobs/{outcome.job_id}")
        findings = monitor.against_prediction(m, perf_rec.performance if perf_rec else None,
                                              rec.expected.rule_id if rec.expected else None,
                                              None if perf_rec else "a fallback ran: the prediction is for the "
                                                                    "recommendation")
    if args.write:
        _write(Path(args.write), args.model, outcome, hw_source, args.runs)
    code = 0 if outcome.verdict == "ok" else 1
    payload = {"model": args.model, "verdict": outcome.verdict, "job": outcome.job_id, "job_status": outcome.status,
               "attempts": [a.to_dict() for a in outcome.attempts], "chosen": chosen.config.label if chosen else None,
               "findings": [f.to_dict() for f in findings], "hardware_source": hw_source, "exit_code": code,
               "lemond": {"url": client.url}}
    if args.json:
        from engine.envelope import print_json

        print_json("probe", payload)
        return code
    out = sys.stdout
    out.write(f"probe {args.model} on {client.url}: job {outcome.job_id} {outcome.status}\n")
    for i, a in enumerate(outcome.attempts):
        opts = ", ".join(f"{k}={v!r}" for k, v in a.config.options.items())
        speed = f": {a.tps:.1f} tokens/s, TTFT {a.ttft_ms:.1f} ms (median of {len(a.samples)})" if a.tps else ""
        out.write(f"  {i + 1}. {a.config.label} [{opts}] {a.status}{speed}\n")
        if a.error:
            out.write(f"     {a.error.splitlines()[0][:300]}\n")
    for f in findings:
        out.write(f"  {f.severity}: {f.metric} vs {f.against}: {f.message}\n")
    verdict = {"ok": "the recommendation loads and runs",
               "fallback": f"the recommendation failed; {chosen.config.label if chosen else ''} works: "
                           "`engine apply --set ...` it, or report the failure (the profile needs review)",
               "failed": "no configuration of the chain loaded: leave this model to Lemonade's defaults and "
                         "look at lemond's log"}[outcome.verdict]
    out.write(f"verdict: {outcome.verdict}: {verdict}\n")
    return code


def _write(path: Path, model: str, outcome: Any, hw_source: str, runs: int) -> None:
    from engine.adaptive.measure import bench_document
    from engine.lemonade.store import atomic_write

    groups = []
    for a in outcome.attempts:
        if a.status == "not reached":
            continue
        o = a.config.options
        groups.append((model, o.get("llamacpp_backend"), str(o.get("llamacpp_args") or ""), o.get("ctx_size"),
                       "probe", [(s[0], s[1]) for s in a.samples] if a.status == "ok" else [],
                       a.samples[0][2] if a.samples else None, 0 if a.status == "ok" else runs))
    doc = bench_document(groups, hardware={"source": hw_source}, runs=runs)
    atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode())
