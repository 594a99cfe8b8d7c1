"""What monitor, probe and learn share: the hardware, the engine over the user's settings, a recommendation per
model (with its expected performance), cached, and never an exception for a model we cannot place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UserError

if TYPE_CHECKING:
    from engine.recommend import Recommendation
    from facts.models import HardwareFacts, ModelFacts


def find_hardware(target: Any | None, system_info: str | None) -> tuple[HardwareFacts, str]:
    """`--system-info FILE`, else the running lemond's system-info (or the saved one), else this machine."""
    if system_info:
        from engine.inputs import hardware

        return hardware(system_info), f"--system-info {system_info}"
    if target is not None:
        from engine.lemonade.target import hardware as target_hardware

        try:
            return target_hardware(target, None)
        except UserError:
            pass
    from facts.detect import detect

    return detect(), "detected on this machine"


@dataclass
class Expecter:
    settings: Any
    hardware: HardwareFacts
    scenario: str
    engine: Any = None
    _cache: dict[tuple, tuple[Recommendation | None, str | None, ModelFacts | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine is None:
            from engine import config

            self.engine = config.make_engine(self.settings)

    def model_facts(self, name: str, checkpoint: str | None = None) -> ModelFacts:
        from engine import inputs

        if checkpoint and checkpoint.endswith(".gguf") and Path(checkpoint).is_file():
            return inputs.model(checkpoint)
        return inputs.model(name)

    def recommend(self, name: str, checkpoint: str | None = None, backend: str | None = None,
                  overrides: dict[str, Any] | None = None) -> tuple[Recommendation | None, str | None]:
        """(recommendation, None), or (None, why not) for a model we cannot recommend for."""
        key = (name, checkpoint, backend, tuple(sorted((overrides or {}).items())))
        if key not in self._cache:
            self._cache[key] = self._recommend(name, checkpoint, backend, overrides)
        rec, why, _ = self._cache[key]
        return rec, why

    def recommend_facts(self, model: ModelFacts, backend: str | None = None,
                        overrides: dict[str, Any] | None = None) -> tuple[Recommendation | None, str | None]:
        rec, why, _ = self._recommend(model.name, None, backend, overrides, model)
        return rec, why

    def _recommend(self, name, checkpoint, backend, overrides, model=None):
        from engine import config, recipes
        from facts.errors import FactsError

        if model is None:
            try:
                model = self.model_facts(name, checkpoint)
            except (FactsError, UserError, OSError) as err:
                return None, f"no model facts for {name!r}: {err}", None
        kwargs = config.recommend_kwargs(self.settings, overrides)
        try:
            if backend and backend in recipes.get(model.recipe).backends:
                kwargs["overrides"] = {**kwargs["overrides"], "backend": backend}
            rec = self.engine.recommend(self.hardware, model, scenario=self.scenario, force=True, **kwargs)
        except (FactsError, UserError) as err:
            return None, f"no recommendation for {name!r}: {err}", model
        return rec, None, model
