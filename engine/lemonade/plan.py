"""What `apply` would do to one model: recommend, check that it is safe to write, merge with what is saved.

Skipped with the reason, never written: a model whose recipe cannot run here (RecipeUnavailableError) or that
lemonade-autotune does not write options for (only llamacpp), a recommendation that does not fit the memory
budget, a backend this Lemonade cannot run (its system-info does not list it as installed or installable: the load
would fail after unloading what ran), and a model whose facts cannot be read. The flags are checked against the allowlist and Lemonade's reserved flags once more
(engine.lemonade.args.check_ours) before anything is merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import BackendUnavailableError, DoesNotFitError, RecipeUnavailableError
from engine.lemonade import args as largs
from engine.lemonade.merge import EntryPlan, plan_entry, undo_entry

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.lemonade.models import LemonadeModel
    from engine.recommend import Recommendation
    from engine.session import Engine
    from facts.models import HardwareFacts


@dataclass(frozen=True)
class ModelPlan:
    """One model's outcome: applied / unchanged / skipped / undone / nothing to undo."""

    model: str
    action: str
    reason: str | None = None
    entry: EntryPlan | None = None
    recommended: Mapping[str, Any] | None = None  # recipe options as recommended (before the merge)
    rulebook: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "action": self.action, "reason": self.reason,
                               "recommended": dict(self.recommended) if self.recommended else None,
                               "rulebook": self.rulebook}
        if self.entry is not None:
            out.update(before=dict(self.entry.before), after=dict(self.entry.after), owned=dict(self.entry.owned),
                       user_kept=dict(self.entry.user), changes=self.entry.diff())
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def skip(model: str, reason: str, **kw: Any) -> ModelPlan:
    return ModelPlan(model, "skipped", reason, **kw)


def backend_problem(hw: HardwareFacts, recipe: str, backend: str) -> tuple[str | None, str | None]:
    """(why this Lemonade cannot run `backend`, or None; a note when it will download it at the first load).

    A backend its system-info calls installable is fine: lemond installs it at load (LlamaCppServer::load ->
    BackendManager::install_backend); one it calls unsupported (or that it does not list) is not."""
    available = [b.split(":", 1)[1] for b in hw.backends if b.startswith(f"{recipe}:")]
    installed = [b.split(":", 1)[1] for b in hw.installed_backends if b.startswith(f"{recipe}:")]
    if not hw.backends:
        return (f"cannot tell which {recipe} backends this Lemonade can run (its system-info has no recipes "
                "section); nothing is written"), None
    if backend not in available:
        return (f"backend {backend!r} cannot run in this Lemonade (it can run: {', '.join(available) or 'none'});"
                " pass --set backend=<one of those>"), None
    if backend not in installed:
        return None, f"backend {backend!r} is not installed yet: lemond downloads it at the model's first load"
    return None, None


def recommendation_for(engine: Engine, settings: Settings, hw: HardwareFacts, model: LemonadeModel,
                       scenario: str, overrides: Mapping[str, Any]) -> Recommendation | ModelPlan:
    """The recommendation, or a skip saying why there is none to write."""
    from engine.config import recommend_kwargs

    if model.facts is None:
        return skip(model.id, f"cannot read the model's facts: {model.facts_error}")
    try:
        from engine import recipes

        own = recipes.get(model.facts.recipe).parameters  # a --set for every model applies where it means something
        overrides = {k: v for k, v in overrides.items() if k in own}
        rec = engine.recommend(hw, model.facts, scenario=scenario, **recommend_kwargs(settings, overrides))
    except (RecipeUnavailableError, BackendUnavailableError, DoesNotFitError) as err:
        return skip(model.id, str(err).split("\n(--force", 1)[0])
    if rec.recipe != "llamacpp":
        return skip(model.id, f"recipe {rec.recipe!r}: lemonade-autotune writes llama.cpp options only; "
                              "Lemonade's own defaults apply", recommended=rec.recipe_options(), rulebook=rec.rulebook)
    return rec


def plan_apply(engine: Engine, settings: Settings, hw: HardwareFacts, model: LemonadeModel,
               saved: Mapping[str, Any], owned: Mapping[str, Any] | None, *, scenario: str,
               overrides: Mapping[str, Any]) -> ModelPlan:
    """The entry to save for `model` (or a skip with the reason)."""
    from engine import recipes

    rec = recommendation_for(engine, settings, hw, model, scenario, overrides)
    if isinstance(rec, ModelPlan):
        return rec
    options = rec.recipe_options()
    kw = {"recommended": options, "rulebook": rec.rulebook}
    problem, backend_note = backend_problem(hw, rec.recipe, options["llamacpp_backend"])
    if problem:
        return skip(model.id, problem, **kw)
    tokens = recipes.get(rec.recipe).args(rec.values())
    largs.check_ours(tokens)  # raises InternalError: nothing is written
    if largs.join(tokens) != options["llamacpp_args"]:
        from engine.errors import InternalError

        raise InternalError(f"{model.id}: rendered llamacpp_args {options['llamacpp_args']!r} differ from the "
                            f"checked tokens {tokens!r}")
    recommended = {"llamacpp_backend": options["llamacpp_backend"], "ctx_size": options["ctx_size"],
                   "llamacpp_args": tokens}
    entry = plan_entry(saved, recommended, owned)
    notes = [backend_note] if backend_note and "llamacpp_backend" in entry.owned else []
    if entry.user:
        kept = ", ".join(f"{k}={v!r}" for k, v in entry.user.items() if k != "flags")
        flags = entry.user.get("flags")
        notes.append("kept what the user saved: " + "; ".join(
            p for p in (kept, f"flags {' '.join(flags)} (the user's args set them)" if flags else "") if p))
    return ModelPlan(model.id, "applied" if entry.changed else "unchanged", None, entry, **kw, notes=tuple(notes))


def plan_undo(model: str, saved: Mapping[str, Any], record: Mapping[str, Any] | None) -> ModelPlan:
    """The entry without what we own (`record` is the model's ownership record)."""
    if not record or not record.get("owned"):
        return ModelPlan(model, "nothing to undo", "lemonade-autotune owns nothing in this model's options")
    entry = undo_entry(saved, record["owned"], record.get("before") or {})
    notes = ()
    if entry.user:
        notes = ("kept the user's changes to values lemonade-autotune had written: "
                 + ", ".join(f"{k}={v!r}" for k, v in entry.user.items()),)
    return ModelPlan(model, "undone" if entry.changed else "nothing to undo", None, entry, notes=notes)
