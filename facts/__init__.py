"""What the machine and the model are: fact models, detection, document parsers, archetypes.

Names are imported on first use (PEP 562): `engine facts` and `engine recommend` load only what they need.
"""

from __future__ import annotations

import importlib
from typing import Any

# eager: these functions share their module's name, so they must be bound before anything imports the
# module (which would otherwise leave the module under that name)
from facts.detect import detect  # noqa: F401 (re-exported)
from facts.merge import merge  # noqa: F401 (re-exported)

_EXPORTS = {
    "CPU": "facts.models", "GPU": "facts.models", "NPU": "facts.models", "Absent": "facts.models",
    "Archetype": "facts.models", "HardwareFacts": "facts.models", "Memory": "facts.models",
    "ModelFacts": "facts.models", "OSInfo": "facts.models",
    "FactsError": "facts.errors", "FactsInputError": "facts.errors", "ModelFactsError": "facts.errors",
    "classify": "facts.archetype", "from_llama_devices": "facts.llamacpp",
    "from_system_info": "facts.lemonade", "model_class": "facts.modelclass",
    "precision": "facts.modelclass", "size_class": "facts.modelclass", "read_document": "facts.documents",
}

__all__ = sorted([*_EXPORTS, "detect", "merge"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'facts' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
