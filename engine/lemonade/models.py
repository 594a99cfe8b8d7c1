"""Lemonade's models by canonical id (`extra.<stem>`, `user.<name>`, `builtin.<name>`) with their model facts:
from a running lemond (`GET /v1/models`) or, while it is stopped, from its config dir (extra_models_dir,
user_models.json) and the bundled registry (server_models.json).

A bare name resolves the way lemond's public names do: user > extra > builtin. In extra_models_dir a GGUF at the
top is `extra.<stem>`; a folder is `extra.<folder>` with its first non-projector GGUF (folders lemond splits into
variants are not told apart here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UserError

if TYPE_CHECKING:
    from engine.lemonade.client import LemondClient
    from engine.lemonade.paths import LemonadeHome
    from facts.models import ModelFacts

PREFIXES = ("user.", "extra.", "builtin.")


@dataclass(frozen=True)
class LemonadeModel:
    """One model as Lemonade knows it, with its facts (or why they could not be read)."""

    id: str  # canonical id: the key of recipe_options.json
    recipe: str
    checkpoint: str | None
    facts: ModelFacts | None
    facts_error: str | None = None

    @property
    def name(self) -> str:
        return self.id.split(".", 1)[1]


def split_id(name: str) -> tuple[str | None, str]:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return prefix[:-1], name[len(prefix):]
    return None, name


def _facts(get: Callable[[], ModelFacts]) -> tuple[ModelFacts | None, str | None]:
    from facts.errors import FactsError

    try:
        return get(), None
    except FactsError as err:
        return None, str(err)


def _facts_for(name: str, recipe: str, checkpoint: str | None, entry: dict[str, Any] | None = None
               ) -> tuple[ModelFacts | None, str | None]:
    """A local GGUF's header, else the registry entry of that name, else the entry's own fields."""
    from facts.registry import load_registry, registry_model_facts, resolve_model_spec

    if checkpoint and checkpoint.lower().endswith(".gguf") and Path(checkpoint).is_file():
        facts, err = _facts(lambda: resolve_model_spec(checkpoint))
        if facts is not None:
            return facts.model_copy(update={"name": name, "recipe": recipe}), None
        return facts, err
    if entry is None and name in load_registry():
        return _facts(lambda: resolve_model_spec(name))
    if entry is not None:
        return _facts(lambda: registry_model_facts(name, {"recipe": recipe, **entry}))
    return None, f"no model facts for {name!r}: its checkpoint {checkpoint!r} is not a local GGUF"


# ---- from a running lemond ----------------------------------------------------------------------------

def canonical_running(client: LemondClient, info: dict[str, Any]) -> str:
    """The canonical id of a model in lemond's list (its `id` is the public, maybe bare, name)."""
    public = str(info["id"])
    kind, _ = split_id(public)
    if kind is not None:
        return public
    if info.get("source") == "extra_models_dir":
        return f"extra.{public}"
    for prefix in ("user.", "builtin."):
        if client.model(prefix + public) is not None:
            return prefix + public
    raise UserError(f"lemond lists {public!r} but answers neither user.{public} nor builtin.{public}")


def from_lemond(client: LemondClient, info: dict[str, Any]) -> LemonadeModel:
    model_id = canonical_running(client, info)
    recipe = str(info.get("recipe") or "llamacpp")
    checkpoints = info.get("checkpoints") if isinstance(info.get("checkpoints"), dict) else {}
    checkpoint = checkpoints.get("main") or info.get("checkpoint")
    checkpoint = checkpoint if isinstance(checkpoint, str) else None
    kind, name = split_id(model_id)
    entry = None if kind == "builtin" else {k: info[k] for k in ("checkpoint", "labels", "size") if k in info}
    facts, err = _facts_for(name, recipe, checkpoint, entry)
    return LemonadeModel(model_id, recipe, checkpoint, facts, err)


def running(client: LemondClient, names: list[str], all_downloaded: bool) -> list[LemonadeModel]:
    """The models named (any spelling lemond accepts), or every downloaded one."""
    if all_downloaded:
        return [from_lemond(client, info) for info in client.models()]
    out = []
    for name in names:
        info = client.model(name)
        if info is None:
            raise UserError(f"lemond at {client.url} has no model {name!r} (see GET /v1/models)")
        kind, _ = split_id(name)
        model = from_lemond(client, info)
        if kind is not None and model.id != name:  # asked for a canonical id: keep exactly that
            model = LemonadeModel(name, model.recipe, model.checkpoint, model.facts, model.facts_error)
        out.append(model)
    return out


# ---- from the config dir (lemond stopped) -----------------------------------------------------------------

def _extra_models(home: LemonadeHome) -> dict[str, Path]:
    root = home.extra_models_dir()
    found: dict[str, Path] = {}
    if root is None or not root.is_dir():
        return found
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix.lower() == ".gguf" and "mmproj" not in path.name.lower():
            found.setdefault(path.stem, path)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".gguf" and p.is_file()
                           and "mmproj" not in p.name.lower())
            if files:
                found.setdefault(path.name, files[0])
    return found


def _user_checkpoint(entry: dict[str, Any]) -> str | None:
    checkpoints = entry.get("checkpoints") if isinstance(entry.get("checkpoints"), dict) else {}
    value = checkpoints.get("main") or entry.get("checkpoint")
    return value if isinstance(value, str) else None


def _stopped_one(home: LemonadeHome, model_id: str, extra: dict[str, Path], users: dict[str, Any]
                 ) -> LemonadeModel:
    from facts.registry import load_registry

    kind, name = split_id(model_id)
    if kind == "extra":
        path = extra[name]
        facts, err = _facts_for(name, "llamacpp", str(path))
        return LemonadeModel(model_id, "llamacpp", str(path), facts, err)
    if kind == "user":
        entry = users[name] if isinstance(users[name], dict) else {}
        recipe = str(entry.get("recipe") or "llamacpp")
        checkpoint = _user_checkpoint(entry)
        facts, err = _facts_for(name, recipe, checkpoint, entry)
        return LemonadeModel(model_id, recipe, checkpoint, facts, err)
    entry = load_registry()[name]
    facts, err = _facts_for(name, str(entry.get("recipe") or "llamacpp"), None)
    return LemonadeModel(model_id, str(entry.get("recipe") or "llamacpp"), entry.get("checkpoint"), facts, err)


def stopped(home: LemonadeHome, names: list[str], all_downloaded: bool) -> list[LemonadeModel]:
    """The models named, or every downloaded one (extra, local user models, built-ins in the HF cache)."""
    from facts.registry import downloaded_gguf, load_registry

    extra = _extra_models(home)
    users = home.user_models()
    registry = load_registry()
    ids: list[str] = []
    if all_downloaded:
        ids += [f"user.{n}" for n, e in users.items() if isinstance(e, dict)]
        ids += [f"extra.{n}" for n in extra]
        ids += [f"builtin.{n}" for n, e in registry.items()
                if isinstance(e.get("checkpoint"), str) and downloaded_gguf(e["checkpoint"]) is not None]
    for name in names:
        kind, bare = split_id(name)
        known = {"user": bare in users, "extra": bare in extra, "builtin": bare in registry}
        if kind is not None:
            if not known[kind]:
                raise UserError(f"no model {name!r} in {home.config_dir} (user_models.json, extra_models_dir) "
                                "or Lemonade's registry")
            ids.append(name)
            continue
        hit = next((k for k in ("user", "extra", "builtin") if known[k]), None)
        if hit is None:
            raise UserError(f"no model {name!r} in {home.config_dir} (user_models.json, extra_models_dir) "
                            "or Lemonade's registry")
        ids.append(f"{hit}.{bare}")
    return [_stopped_one(home, i, extra, users) for i in dict.fromkeys(ids)]
