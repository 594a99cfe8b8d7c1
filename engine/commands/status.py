"""`engine status`: auto-tune on/off and why, the archetype, the rulebook in force, and per model what apply
wrote, what the user set, what lemond will use and which wins."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    from engine.commands.apply import add_lemonade_flags

    p = subparsers.add_parser("status", help="auto-tune state, archetype, rulebook and per-model options",
                              description="Show whether auto-tune is on (and why), the archetype, the rulebook "
                                          "in force, and per model what apply wrote, what the user set, what "
                                          "lemond will use and which wins.")
    p.add_argument("models", nargs="*", metavar="MODEL", help="only these models (default: every model lemond "
                                                              "lists, or every model with saved options)")
    p.add_argument("--system-info", metavar="FILE", help="Lemonade system-info to use while lemond is stopped")
    add_lemonade_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def _rulebook(settings: Any) -> dict[str, Any]:
    from engine import config
    from engine.profiles import remote_status
    from engine.rulebook import bundled_root

    book = config.load_book(settings)
    roots = [str(r) for r in config.rulebook_roots(settings, refresh=False)]
    def rules_in(folder: str) -> list[dict[str, Any]]:
        return [{"id": r.id, "source": r.source, "sets": dict(r.set), "priority": r.priority}
                for r in book.rules if r.source.startswith(f"{folder}/")]

    user_rules, local_rules = rules_in(config.USER_RULEBOOK), rules_in(config.LOCAL_RULEBOOK)
    return {"name": book.name, "digest": book.digest, "rules": len(book.rules), "files": len(book.files),
            "roots": roots, "bundled": str(bundled_root()), "user_rulebook_rules": len(user_rules),
            "user_rules": user_rules, "local_rules": local_rules, "origin": remote_status.origin(settings), "remote": remote_status.remote(settings)}


def _hardware(target: Any, system_info: str | None) -> dict[str, Any]:
    from engine.errors import UserError
    from engine.lemonade.target import hardware
    from facts.archetype import classify

    try:
        hw, source = hardware(target, system_info) if target is not None else (None, "")
    except UserError:
        hw = None
    if hw is None:
        from facts.detect import detect

        hw, source = detect(), "detected on this machine (lemond's view is not known)"
    a = classify(hw)
    return {"archetype": a.id, "confidence": a.confidence, "backoff": list(a.backoff), "source": source,
            "reasons": list(a.reasons)}


def _models(target: Any, names: list[str]) -> list[dict[str, Any]]:
    from engine.lemonade import models as lmodels
    from engine.lemonade.status import estimate_effective, model_status

    store = target.store()
    record = store.record()["models"]
    if target.running:
        client = target.client()
        health = client.health()
        loaded = {m.get("model_name"): m for m in health.get("all_models_loaded") or [] if isinstance(m, dict)}
        infos = [client.model(n) for n in names] if names else client.models()
        out = []
        for info in infos:
            if info is None:
                continue
            model_id = lmodels.canonical_running(client, info)
            opts = client.options(model_id)
            eff = {k: opts["effective"].get(k) for k in ("llamacpp_backend", "ctx_size", "llamacpp_args")}
            entry = loaded.get(info["id"]) or loaded.get(model_id)
            out.append(model_status(model_id, opts["saved"], record.get(model_id), eff, uses_from="lemond",
                                    loaded=entry))
        return out
    if target.home is None:
        return []
    raw, data = store.read()
    config = target.home.config_json()
    from engine.lemonade.paths import read_json_file
    from engine.lemonade.target import SYSTEM_INFO

    snapshot = read_json_file(target.home.state_dir / SYSTEM_INFO, "the saved system-info") or {}
    default = ((snapshot.get("recipes") or {}).get("llamacpp") or {}).get("default_backend")
    ids = names or sorted(set(data) | set(record))
    out = []
    for model_id in ids:
        saved = data.get(model_id) if isinstance(data.get(model_id), dict) else {}
        out.append(model_status(model_id, saved, record.get(model_id), estimate_effective(saved, config, default),
                                uses_from="the files (lemond stopped; architecture defaults not included)"))
    return out


def payload(args: argparse.Namespace) -> dict[str, Any]:
    from engine import config
    from engine.errors import UserError
    from engine.lemonade.target import locate

    settings = config.load(no_autotune=args.no_autotune)
    try:
        target = locate(settings, args.lemonade, args.lemonade_config)
        lemonade: dict[str, Any] = target.to_dict()
    except UserError as err:
        target, lemonade = None, {"mode": "unknown", "error": str(err)}
    out: dict[str, Any] = {"autotune": settings.autotune.to_dict(), "settings": settings.to_dict(),
                           "hardware": _hardware(target, args.system_info), "rulebook": _rulebook(settings),
                           "lemonade": lemonade}
    out["models"] = _models(target, list(args.models)) if target is not None else []
    return out


def render_text(p: dict[str, Any]) -> str:
    from engine.lemonade.status import render_rows

    hw, book, lem, st = p["hardware"], p["rulebook"], p["lemonade"], p["settings"]
    lines = [f"auto-tune: {p['autotune']['why']}",
             f"archetype: {hw['archetype']} (confidence {hw['confidence']}), from {hw['source']}",
             f"rulebook: {book['name']} ({book['rules']} rules, {book['files']} files) from {', '.join(book['roots'])}"
             + (f"; {book['user_rulebook_rules']} user rule(s)" if book["user_rulebook_rules"] else "")
             + (f"; {len(book['local_rules'])} learned rule(s) (engine forget removes them)"
                if book["local_rules"] else ""),
             f"rulebook origin: {book['origin']}; remote: {book['remote']['state']}: {book['remote']['why']}"]
    for kind, rule in [*(("user", r) for r in book["user_rules"]), *(("learned", r) for r in book["local_rules"])]:
        sets = ", ".join(f"{k}={v}" for k, v in rule["sets"].items())
        lines.append(f"{kind} rule: {rule['id']} ({rule['source']}) sets {sets}")
    if st["overrides"]:
        lines.append("overrides (config.yaml): " + ", ".join(f"{k}={v}" for k, v in st["overrides"].items()))
    if lem.get("mode") == "api":
        lines.append(f"lemonade: lemond {lem.get('version') or ''} running at {lem['url']}; config dir "
                     f"{lem.get('config_dir') or 'unknown'}")
    elif lem.get("mode") == "file":
        lines.append(f"lemonade: lemond stopped; config dir {lem['config_dir']} ({lem['config_dir_why']})")
    else:
        lines.append(f"lemonade: {lem.get('error')}")
    if p["models"]:
        lines.append("models:")
    for m in p["models"]:
        lines.append(f"  {m['model']}{'  (loaded)' if m['loaded'] else ''}"
                     f"{'  applied ' + m['applied_at'] if m['applied'] and m.get('applied_at') else ''}")
        with_ = m.get("applied_with") or {}
        if m["applied"] and with_.get("rulebook"):
            sets = " ".join(f"--set {k}={v}" for k, v in (with_.get("overrides") or {}).items())
            lines.append(f"    applied from {with_['rulebook']}, scenario {with_.get('scenario')}{', ' + sets if sets else ''}")
        lines.extend(render_rows(m["rows"]))
        if m.get("launch_command"):
            lines.append("    running: " + " ".join(m["launch_command"]))
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json

    p = payload(args)
    if args.json:
        print_json("status", p)
    else:
        sys.stdout.write(render_text(p))
    return 0
