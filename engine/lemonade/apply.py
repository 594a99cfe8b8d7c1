"""Apply recommendations to a Lemonade, or take them back: through lemond's options API while it runs (dry run
first, then the write, each checked), or by rewriting recipe_options.json while it is stopped (one locked,
atomic transaction; refused if a lemond for the dir starts meanwhile).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.lemonade import args as largs
from engine.lemonade import models as lmodels
from engine.lemonade.client import LemondError
from engine.lemonade.plan import ModelPlan, plan_apply, plan_undo, skip
from engine.lemonade.store import atomic_write, dump, empty_record
from engine.lemonade.target import Target, running_reason

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.lemonade.models import LemonadeModel
    from engine.session import Engine
    from facts.models import HardwareFacts


@dataclass
class Request:
    """What the user asked for."""

    models: list[str]
    all_downloaded: bool = False
    dry_run: bool = False
    undo: bool = False
    scenario: str = "chat"
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    plans: list[ModelPlan]
    effective: dict[str, dict[str, Any]] = field(default_factory=dict)  # API mode: what lemond will use
    restored_file: str | None = None  # file mode undo: the backup the file was restored from

    def to_dict(self) -> list[dict[str, Any]]:
        out = []
        for plan in self.plans:
            item = plan.to_dict()
            if plan.model in self.effective:
                item["lemond_will_use"] = self.effective[plan.model]
            out.append(item)
        return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _record_entry(previous: Mapping[str, Any] | None, plan: ModelPlan, saved_before: Mapping[str, Any] | None,
                  via: str, req: Request) -> dict[str, Any]:
    assert plan.entry is not None
    before = previous["before"] if previous and "before" in previous else saved_before
    return {"before": before, "owned": dict(plan.entry.owned), "recommended": dict(plan.recommended or {}),
            "rulebook": plan.rulebook, "scenario": req.scenario, "overrides": _jsonable(req.overrides),
            "applied_at": _now(), "via": via}


def _jsonable(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def _set_entry(data: dict[str, Any], model: str, after: Mapping[str, Any]) -> None:
    if after:
        data[model] = dict(after)
    else:
        data.pop(model, None)


# ---- lemond stopped: the file --------------------------------------------------------------------------

def apply_file(target: Target, settings: Settings, engine: Engine, hw: HardwareFacts, req: Request) -> Outcome:
    assert target.home is not None
    home = target.home
    store = target.store()
    with store.transaction() as txn:
        if req.undo:
            return _undo_file(txn, req, home)
        chosen = lmodels.stopped(home, req.models, req.all_downloaded)
        plans = []
        for model in chosen:
            saved = txn.data.get(model.id)
            saved = saved if isinstance(saved, dict) else {}
            previous = txn.record["models"].get(model.id)
            plan = plan_apply(engine, settings, hw, model, saved, (previous or {}).get("owned"),
                              scenario=req.scenario, overrides=req.overrides)
            plans.append(plan)
            if req.dry_run or plan.entry is None or plan.action != "applied":
                continue
            _set_entry(txn.data, model.id, plan.entry.after)
            if plan.entry.owned:
                txn.record["models"][model.id] = _record_entry(previous, plan, txn.data_before.get(model.id), "file",
                                                                   req)
            else:
                txn.record["models"].pop(model.id, None)
        if not req.dry_run:
            txn.commit(check=lambda: running_reason(home))
        return Outcome(plans)


def _undo_file(txn: Any, req: Request, home: Any) -> Outcome:
    owned = list(txn.record["models"])
    wanted = [_canonical_in(n, owned) for n in req.models] if req.models else owned
    if not req.dry_run and owned and set(wanted) >= set(owned):
        backup = (txn.record.get("file") or {}).get("original", "<no file>")
        if txn.restore_original(check=lambda: running_reason(home)):
            return Outcome([ModelPlan(m, "undone", f"restored {home.recipe_options} byte for byte as it was "
                                                   "before lemonade-autotune's first write") for m in owned],
                           restored_file=backup or "<no file: removed>")
    plans = []
    for model in wanted:
        saved = txn.data.get(model)
        saved = saved if isinstance(saved, dict) else {}
        plan = plan_undo(model, saved, txn.record["models"].get(model))
        plans.append(plan)
        if req.dry_run or plan.entry is None:
            continue
        _set_entry(txn.data, model, plan.entry.after)
        txn.record["models"].pop(model, None)
    if not txn.record["models"]:
        txn.record["file"] = {}
    if not req.dry_run:
        txn.commit(check=lambda: running_reason(home))
    return Outcome(plans)


def _canonical_in(name: str, owned: list[str]) -> str:
    if name in owned:
        return name
    kind, bare = lmodels.split_id(name)
    hits = [m for m in owned if lmodels.split_id(m)[1] == bare]
    return hits[0] if kind is None and len(hits) == 1 else name


# ---- lemond running: the API ---------------------------------------------------------------------------

def _missing_from_effective(plan: ModelPlan, effective: Mapping[str, Any]) -> str | None:
    """Why lemond would not use what we own (None when every owned value is in its effective options)."""
    assert plan.entry is not None
    owned = plan.entry.owned
    for key in ("ctx_size", "llamacpp_backend"):
        if key in owned and effective.get(key) != owned[key]:
            return f"lemond would use {key}={effective.get(key)!r}, not {owned[key]!r}"
    if owned.get("llamacpp_args"):
        have = {o.tokens for o in largs.options(largs.split(str(effective.get("llamacpp_args") or "")))}
        lost = [o.flag for o in largs.check_ours(owned["llamacpp_args"]) if o.tokens not in have]
        if lost:
            return f"lemond's effective llamacpp_args would not carry {' '.join(lost)}"
    return None


def _loaded(client: Any) -> dict[str, dict[str, Any]]:
    try:
        return {m.get("model_name"): m for m in client.health().get("all_models_loaded") or [] if isinstance(m, dict)}
    except LemondError:
        return {}


def apply_api(target: Target, settings: Settings, engine: Engine, hw: HardwareFacts, req: Request) -> Outcome:
    client = target.client()
    store = target.store()
    with store.locked():
        record = store.record()
        if req.undo:
            return _undo_api(client, store, record, req)
        chosen = lmodels.running(client, req.models, req.all_downloaded)
        return _apply_api_models(client, store, record, chosen, settings, engine, hw, req)


def _apply_api_models(client: Any, store: Any, record: dict[str, Any], chosen: list[LemonadeModel],
                      settings: Settings, engine: Engine, hw: HardwareFacts, req: Request) -> Outcome:
    loaded = _loaded(client)
    out = Outcome([])
    for model in chosen:
        saved = client.options(model.id)["saved"]
        previous = record["models"].get(model.id)
        plan = plan_apply(engine, settings, hw, model, saved, (previous or {}).get("owned"),
                          scenario=req.scenario, overrides=req.overrides)
        if plan.entry is None or plan.action != "applied":
            out.plans.append(plan)
            continue
        changes = plan.entry.changes()
        dry = client.post_options(model.id, changes, dry_run=True)
        lost = _missing_from_effective(plan, dry["effective"])
        if lost:
            out.plans.append(skip(model.id, f"{lost} (dry run); nothing written", recommended=plan.recommended,
                                  rulebook=plan.rulebook))
            continue
        out.effective[model.id] = _effective(dry)
        if not req.dry_run:
            if plan.entry.owned:
                record["models"][model.id] = _record_entry(previous, plan, saved, "api", req)
            else:
                record["models"].pop(model.id, None)
            store_record(store, record)  # first: a crash after it leaves a claim undo ignores, never the reverse
            answer = client.post_options(model.id, changes, dry_run=False)
            if answer["saved"] != dict(plan.entry.after):
                raise LemondError(f"{model.id}: lemond saved {answer['saved']!r}, expected {dict(plan.entry.after)!r}")
        if public_name(model.id) in loaded or model.id in loaded:
            plan = replace(plan, notes=(*plan.notes, "loaded now: the new options apply at its next load "
                                                     "(POST /v1/load reloads it when they differ)"))
        out.plans.append(plan)
    return out


def public_name(model_id: str) -> str:
    return lmodels.split_id(model_id)[1]


def _effective(answer: Mapping[str, Any]) -> dict[str, Any]:
    eff = answer["effective"]
    out = {k: eff.get(k) for k in ("llamacpp_backend", "llamacpp_args", "ctx_size") if k in eff}
    if eff.get("ctx_size") == -1 and isinstance(answer.get("resolved_ctx_size"), int):
        out["resolved_ctx_size"] = answer["resolved_ctx_size"]
    return out


def _undo_api(client: Any, store: Any, record: dict[str, Any], req: Request) -> Outcome:
    owned = list(record["models"])
    wanted = [_canonical_in(n, owned) for n in req.models] if req.models else owned
    out = Outcome([])
    for model in wanted:
        info = client.model(model)
        if info is None:
            out.plans.append(skip(model, f"lemond has no model {model!r} now; its ownership record is kept"))
            continue
        saved = client.options(model)["saved"]
        plan = plan_undo(model, saved, record["models"].get(model))
        out.plans.append(plan)
        if plan.entry is None:
            continue
        changes = plan.entry.changes()
        if changes:
            dry = client.post_options(model, changes, dry_run=True)
            out.effective[model] = _effective(dry)
        if req.dry_run:
            continue
        if changes:
            answer = client.post_options(model, changes, dry_run=False)
            if answer["saved"] != dict(plan.entry.after):
                raise LemondError(f"{model}: lemond saved {answer['saved']!r}, expected {dict(plan.entry.after)!r}")
        record["models"].pop(model, None)  # after the write: a crash before it keeps our claim, undo can rerun
        if not record["models"]:
            record["file"] = {}
        store_record(store, record)
    return out


def store_record(store: Any, record: dict[str, Any]) -> None:
    store.home.state_dir.mkdir(exist_ok=True)
    atomic_write(store.home.state_dir / "owned.json", dump(record or empty_record()))
