"""What the machine and the model are: fact models, detection, document parsers, archetypes."""

from facts.detect import detect
from facts.errors import FactsError, FactsInputError, ModelFactsError
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
    "detect",
    "model_class",
    "precision",
    "size_class",
]
