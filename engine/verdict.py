"""MemoryVerdict: whether a recommended configuration fits, with the numbers behind the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facts.models import GIB


@dataclass(frozen=True)
class MemoryVerdict:
    """`fits`: "yes", "no", "estimated" (fits by an estimate from guessed model facts) or "unknown" (the
    memory of the device is not known: the context and placement are left to Lemonade and llama.cpp)."""

    fits: str
    total_bytes: int | None = None  # the estimate of everything the model loads
    gpu_bytes: int | None = None  # the part on the GPU(s)
    budget_bytes: int | None = None
    budget: str | None = None  # how the budget was reached
    placement: str | None = None  # where the layers go, in words
    placed_by: str | None = None  # "fit" (llama.cpp --fit), "flags", "cpu"
    need: int | None = None  # the context the scenario needs
    context: int | None = None  # the context chosen
    trades: tuple[str, ...] = ()
    estimated: tuple[str, ...] = ()  # model facts that are guesses
    reason: str | None = None  # for "unknown": why
    full_offload: bool | None = None  # every layer and expert on the GPU (None: unknown or CPU backend)

    @property
    def ok(self) -> bool:
        return self.fits in ("yes", "estimated", "unknown")

    def to_dict(self) -> dict[str, Any]:
        return {"fits": self.fits, "total_bytes": self.total_bytes, "gpu_bytes": self.gpu_bytes,
                "budget_bytes": self.budget_bytes, "budget": self.budget, "placement": self.placement,
                "placed_by": self.placed_by, "need": self.need, "context": self.context, "trades": list(self.trades),
                "estimated": list(self.estimated), "reason": self.reason, "full_offload": self.full_offload}

    def line(self) -> str:
        """One line for the text output."""
        if self.fits == "unknown":
            return f"memory: unknown ({self.reason})"
        g = lambda n: f"{n / GIB:.1f} GiB"  # noqa: E731
        head = {"yes": "fits", "no": "DOES NOT FIT", "estimated": "fits (estimated)"}[self.fits]
        used = self.gpu_bytes if self.placed_by != "cpu" and self.gpu_bytes is not None else self.total_bytes
        where = "GPU part " if self.placed_by != "cpu" else ""
        out = f"memory: {head}: {where}{g(used or 0)} of a {g(self.budget_bytes or 0)} budget"
        if self.placement:
            out += f"; {self.placement}" + (" (llama.cpp --fit places it)" if self.placed_by == "fit" else "")
        return out
