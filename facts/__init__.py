"""What the machine and the model are: fact models, detection, document parsers, archetypes."""

from facts.archetype import classify
from facts.detect import detect
from facts.errors import FactsError, FactsInputError, ModelFactsError
from facts.lemonade import from_system_info
from facts.llamacpp import from_llama_devices
from facts.merge import merge
from facts.modelclass import model_class, precision, size_class
from facts.models import (
    CPU,
    GPU,
    NPU,
    Absent,
    Archetype,
    HardwareFacts,
    Memory,
    ModelFacts,
    OSInfo,
)

__all__ = [
    "CPU",
    "GPU",
    "NPU",
    "Absent",
    "Archetype",
    "FactsError",
    "FactsInputError",
    "HardwareFacts",
    "Memory",
    "ModelFacts",
    "ModelFactsError",
    "OSInfo",
    "classify",
    "detect",
    "from_llama_devices",
    "from_system_info",
    "merge",
    "model_class",
    "precision",
    "size_class",
]
