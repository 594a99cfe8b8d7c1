"""Per model: what `apply` wrote, what the user set, what lemond will use, and which of them wins.

"lemond will use" comes from lemond itself while it runs (`GET /v1/models/{id}/options` `effective`, and for a
loaded model `/v1/health` `recipe_options` + `launch_command`); while it is stopped it is worked out from the
files the way lemond layers them (saved entry > config.json `llamacpp` section > built-in defaults; the
architecture defaults, which hold only sampler flags, are left out and the answer says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.lemonade import args as largs
from engine.lemonade.merge import ARGS, SCALARS, is_sentinel

_MISSING = object()


def _ours_present(saved: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
    """What apply wrote that is still saved unchanged."""
    out = {k: owned[k] for k in SCALARS if k in owned and saved.get(k, _MISSING) == owned[k]}
    tokens = owned.get(ARGS) or ()
    if tokens and isinstance(saved.get(ARGS), str):
        _rest, removed = largs.remove(saved[ARGS], tokens)
        if removed:
            out[ARGS] = list(removed)
    return out


def _user_values(saved: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: saved[k] for k in SCALARS if k in saved and k not in ours and not is_sentinel(k, saved[k])}
    text = saved.get(ARGS)
    if isinstance(text, str):
        rest, _ = largs.remove(text, ours.get(ARGS) or ())
        if rest.strip():
            out[ARGS] = rest
    return out


def _flag_values(text: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(text, str):
        return {}
    return {o.flag: o.values for o in largs.options(largs.split(text)) if o.flag}


def estimate_effective(saved: Mapping[str, Any], config: Mapping[str, Any], default_backend: str | None
                       ) -> dict[str, Any]:
    """lemond's layering for the three keys, from the files (while it is stopped)."""
    section = config.get("llamacpp") if isinstance(config.get("llamacpp"), dict) else {}
    backend = saved.get("llamacpp_backend")
    if is_sentinel("llamacpp_backend", backend):
        backend = section.get("backend") if section.get("backend") not in (None, "", "auto") else default_backend
    ctx = saved.get("ctx_size")
    if is_sentinel("ctx_size", ctx):
        ctx = config.get("ctx_size") if not is_sentinel("ctx_size", config.get("ctx_size")) else -1
    low = section.get(f"{backend}_args") or section.get("args") or ""
    high = saved.get(ARGS) if isinstance(saved.get(ARGS), str) else ""
    merged = dict(_flag_values(high))
    for flag, values in _flag_values(low).items():
        twin = "--" + flag[5:] if flag.startswith("--no-") else ("--no-" + flag[2:] if flag.startswith("--") else "")
        if flag not in merged and twin not in merged:
            merged[flag] = values
    text = " ".join(" ".join((f, *v)) for f, v in sorted(merged.items())) if high and low else (high or low)
    return {"llamacpp_backend": backend, "ctx_size": ctx, ARGS: text}


def model_status(model_id: str, saved: Mapping[str, Any], record: Mapping[str, Any] | None,
                 uses: Mapping[str, Any], *, uses_from: str, loaded: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The status of one model (see the module docstring)."""
    owned = (record or {}).get("owned") or {}
    ours = _ours_present(saved, owned)
    user = _user_values(saved, ours)
    rows = []
    for key in SCALARS:
        value = uses.get(key)
        if key in ours and value == ours[key]:
            wins = "autotune"
        elif key in user and value == user[key]:
            wins = "user"
        else:
            wins = "lemonade"
        rows.append({"key": key, "apply_wrote": ours.get(key), "user_set": user.get(key), "lemond_uses": value,
                     "wins": wins})
    our_flags = {o.flag: o.values for o in largs.options(ours.get(ARGS) or [])}
    user_flags = _flag_values(user.get(ARGS))
    for flag, values in _flag_values(uses.get(ARGS)).items():
        if our_flags.get(flag) == values:
            wins = "autotune"
        elif user_flags.get(flag) == values:
            wins = "user"
        else:
            wins = "lemonade"
        rows.append({"key": flag, "apply_wrote": " ".join(our_flags[flag]) if flag in our_flags else None,
                     "user_set": " ".join(user_flags[flag]) if flag in user_flags else None,
                     "lemond_uses": " ".join(values), "wins": wins})
    for flag, values in our_flags.items():  # written, but lemond would not pass it
        if flag not in _flag_values(uses.get(ARGS)):
            rows.append({"key": flag, "apply_wrote": " ".join(values), "user_set": None, "lemond_uses": None,
                         "wins": "lemonade"})
    out: dict[str, Any] = {"model": model_id, "applied": bool(ours), "applied_at": (record or {}).get("applied_at"),
                           "applied_with": {k: (record or {}).get(k) for k in ("rulebook", "scenario", "overrides")},
                           "apply_wrote": ours, "user_set": user, "lemond_uses": dict(uses), "uses_from": uses_from,
                           "rows": rows, "loaded": loaded is not None}
    if loaded is not None:
        out["launch_command"] = loaded.get("launch_command")
        out["running_options"] = loaded.get("recipe_options")
    return out


def render_rows(rows: list[dict[str, Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    lines = [f"    {'option':<18}{'apply wrote':<14}{'user set':<14}{'lemond uses':<14}wins"]
    for r in rows:
        lines.append(f"    {r['key']:<18}{cell(r['apply_wrote']):<14}{cell(r['user_set']):<14}"
                     f"{cell(r['lemond_uses']):<14}{r['wins']}")
    return lines
