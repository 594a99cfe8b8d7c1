"""`engine apply`: write recommendations into Lemonade's per-model options (or take them back with --undo).

While lemond runs: through `POST /v1/models/{id}/options` (dry run first, the diff shown); while it is stopped:
recipe_options.json, atomically under a lock with a backup. The user's saved values always win; `--watch`
follows lemond's model list and applies to every model that appears.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands._common import add_json_flag


def add_lemonade_flags(p: argparse.ArgumentParser) -> None:
    """Where Lemonade is (shared with `engine status`)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--lemonade", metavar="URL", help="a running lemond (default: the URL in Lemonade's "
                                                         "config.json, else http://127.0.0.1:13305)")
    where.add_argument("--lemonade-config", metavar="DIR",
                       help="Lemonade's config dir (default: the platform's, or /var/lib/lemonade for the packaged "
                            "service)")
    p.add_argument("--no-autotune", action="store_true", help="switch auto-tune off for this run")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apply", help="write recommendations into Lemonade's per-model options",
        description="Write recommended options for Lemonade models: through lemond's API while it runs, into "
                    "recipe_options.json while it is stopped. Values the user saved are never overwritten; "
                    "--undo takes back exactly what apply wrote.")
    p.add_argument("models", nargs="*", metavar="MODEL", help="model names or canonical ids (extra.x, user.x, "
                                                              "builtin.x)")
    p.add_argument("--all-downloaded", action="store_true", help="every downloaded model")
    p.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    p.add_argument("--undo", action="store_true", help="take back what apply wrote (all models when none named)")
    p.add_argument("--watch", action="store_true", help="keep running: apply to every model lemond lists from now "
                                                        "on (with --all-downloaded: to the current ones too)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="--watch poll interval (default 2 s)")
    p.add_argument("--system-info", metavar="FILE", help="Lemonade system-info to use while lemond is stopped "
                                                         "(default: the one saved the last time it ran)")
    p.add_argument("--scenario", default=None, metavar="NAME", help="workload (default: the config's, else chat)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PARAM=VALUE",
                   help="user override for every model, e.g. --set ctx_size=16384")
    add_lemonade_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def _value(v: Any) -> str:
    return "(not set)" if v is None else json.dumps(v)


def render_text(payload: dict[str, Any]) -> str:
    t = payload["target"]
    lines = []
    if t["mode"] == "api":
        lines.append(f"lemond {t['version'] or ''} at {t['url']}: writing through POST /v1/models/{{id}}/options "
                     f"(dry run first){' — dry run only' if payload['dry_run'] else ''}")
    else:
        lines.append(f"lemond is stopped: {'would write' if payload['dry_run'] else 'writing'} "
                     f"{t['config_dir']}/recipe_options.json (locked, atomic, backed up)")
    hw = payload.get("hardware")
    if hw:
        lines.append(f"hardware: {hw['archetype']} (confidence {hw['confidence']}), from {hw['source']}")
    for m in payload["models"]:
        head = f"{m['model']}: {m['action']}"
        lines.append(head + (f": {m['reason']}" if m.get("reason") else ""))
        for change in m.get("changes") or []:
            lines.append(f"  {change['key']:<17} {_value(change['before'])} -> {_value(change['after'])}")
        eff = m.get("lemond_will_use")
        if eff:
            lines.append("  lemond will use: " + ", ".join(f"{k} {_value(v)}" for k, v in eff.items()))
        for note in m.get("notes") or []:
            lines.append(f"  {note}")
    if payload.get("restored_file"):
        lines.append(f"restored from backup {payload['restored_file']}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from engine import config
    from engine.commands._common import print_json
    from engine.errors import UsageError
    from engine.inputs import parse_overrides
    from engine.lemonade.apply import Request, apply_api, apply_file
    from engine.lemonade.store import LemondRunning
    from engine.lemonade.target import hardware, locate
    from engine.recommend import validate_overrides

    settings = config.load(no_autotune=args.no_autotune)
    if not (args.models or args.all_downloaded or args.undo) and not args.watch:
        raise UsageError("name the models to apply (or --all-downloaded, --undo, --watch)")
    if args.watch and (args.undo or args.dry_run):
        raise UsageError("--watch applies; it cannot be combined with --undo or --dry-run")
    overrides = validate_overrides(parse_overrides(args.overrides))
    req = Request(list(args.models), args.all_downloaded, args.dry_run, args.undo,
                  args.scenario or settings.scenario, overrides)
    if req.scenario != "chat":
        from engine import scenarios

        scenarios.check(req.scenario)
    if not settings.autotune.enabled and not args.undo:
        payload = {"autotune": settings.autotune.to_dict(), "models": [], "applied": 0}
        message = f"auto-tune is {settings.autotune.why}: nothing applied (Lemonade's own defaults stay in force)"
        if args.json:
            print_json("apply", payload)
        else:
            print(message)
        return 0
    target = locate(settings, args.lemonade, args.lemonade_config)
    if target.found is not None and not target.running:
        raise LemondRunning(f"{target.found.how}: its options file must not be written behind its back; "
                            "wait until it answers (then apply goes through its API) or stop it")
    if args.watch:
        return _watch(args, settings, target, req)
    payload: dict[str, Any] = {"target": target.to_dict(), "autotune": settings.autotune.to_dict(),
                               "dry_run": req.dry_run, "undo": req.undo}
    if req.undo:
        outcome = (apply_api if target.running else apply_file)(target, settings, None, None, req)  # type: ignore[arg-type]
    else:
        from facts.archetype import classify

        hw, source = hardware(target, args.system_info)
        arche = classify(hw)
        payload["hardware"] = {"archetype": arche.id, "confidence": arche.confidence, "source": source}
        eng = config.make_engine(settings)
        try:
            outcome = (apply_api if target.running else apply_file)(target, settings, eng, hw, req)
        finally:
            eng.close()
    payload["models"] = outcome.to_dict()
    payload["restored_file"] = outcome.restored_file
    if args.json:
        print_json("apply", payload)
    else:
        sys.stdout.write(render_text(payload))
    named_skips = [p for p in outcome.plans if p.action == "skipped" and not req.all_downloaded]
    return 1 if named_skips else 0


def _watch(args: argparse.Namespace, settings: Any, target: Any, req: Any) -> int:
    import signal
    import threading

    from engine import config
    from engine.errors import UsageError
    from engine.lemonade.target import hardware
    from engine.lemonade.watch import watch

    if not target.running:
        raise UsageError("--watch follows a running lemond; none answers "
                                f"({target.found.how if target.found else target.url})")
    hw, _source = hardware(target, args.system_info)
    eng = config.make_engine(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def emit(outcome: Any) -> None:
        for item in outcome.to_dict():
            if args.json:
                print(json.dumps({"kind": "apply-watch", **item}), flush=True)
            else:
                sys.stdout.write(render_text({"target": target.to_dict(), "dry_run": False, "models": [item]})
                                 .split("\n", 1)[1])
                sys.stdout.flush()

    def note(text: str) -> None:
        print(f"engine apply --watch: {text}", file=sys.stderr, flush=True)

    watch(target, settings, eng, hw, req, interval=args.interval, emit=emit, note=note, stop=stop)
    return 0
