"""The validated, normalised benchmark record every input format is turned into."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Backend = Literal["system", "metal", "cuda", "vulkan", "rocm", "cpu", "sycl", "opencl", "npu"]
TestKind = Literal["pp", "tg", "pg"]

# llama.cpp defaults: what an empty column means (llama-bench and llama-server agree on these)
DEFAULT_BATCH = 2048
DEFAULT_UBATCH = 512
DEFAULT_KV = "f16"


@functools.lru_cache(maxsize=65536)
def metric_name(test: str, n_prompt: int, n_gen: int, depth: int) -> str:
    """The llama-bench test name of a measurement: 'pp512', 'tg128 @ d32768', 'pp4096+tg128'."""
    base = {"pp": f"pp{n_prompt}", "tg": f"tg{n_gen}", "pg": f"pp{n_prompt}+tg{n_gen}"}[test]
    return f"{base} @ d{depth}" if depth else base


class BenchRecord(BaseModel):
    """One throughput measurement: hardware x model x backend/parameters x test -> tokens/s."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # no inf/NaN tokens/s

    where: str  # "file:line" of the row (or "file:$.models[0].results[1]..." for JSON)
    source: str  # URL or file the number comes from
    fmt: str  # community-csv | llama-bench-json | llama-bench-jsonl | llama-bench-csv | llama-bench-md | lemonade-bench
    # hardware
    hardware: str
    archetype: str
    backoff: tuple[str, ...]
    vendor: str
    family: str | None = None
    arch: str | None = None
    memclass: str
    gpu_count: int = Field(default=1, ge=0)
    # model
    model: str  # normalised model key (name + quant)
    architecture: str | None = None
    params_b: float | None = Field(default=None, gt=0)
    active_params_b: float | None = Field(default=None, gt=0)
    moe: bool = False
    quant: str | None = None
    precision: str | None = None
    size_class: str | None = None
    model_class: str | None = None
    # backend and parameters
    backend: Backend
    variant: str = ""
    ngl: int | None = None
    batch: int | None = Field(default=None, ge=1)
    ubatch: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)
    flash_attn: bool | None = None
    type_k: str | None = None
    type_v: str | None = None
    # test and result
    test: TestKind
    n_prompt: int = Field(default=0, ge=0)
    n_gen: int = Field(default=0, ge=0)
    depth: int = Field(default=0, ge=0)
    scenario: str | None = None  # Lemonade bench scenario name (chat-short, ...), when it came from there
    tps: float = Field(gt=0)
    tps_std: float | None = Field(default=None, ge=0)
    build: str = ""  # "b6077" / commit; empty when unknown
    build_number: int | None = None
    date: str = ""  # ISO "YYYY-MM-DD" (day 01 / month 01 when the source gave less); empty when unknown

    @property
    def metric(self) -> str:
        """The llama-bench test name: 'pp512', 'tg128 @ d32768', 'pp4096+tg128'."""
        return metric_name(self.test, self.n_prompt, self.n_gen, self.depth)

    def config(self) -> tuple[str, int, int, str, str, str]:
        """The settable configuration (backend, batch, ubatch, fa, K type, V type), defaults filled."""
        fa = "unset" if self.flash_attn is None else ("on" if self.flash_attn else "off")
        return (self.backend, self.batch or DEFAULT_BATCH, self.ubatch or DEFAULT_UBATCH, fa,
                self.type_k or DEFAULT_KV, self.type_v or DEFAULT_KV)


class IngestIssue(BaseModel):
    """A rejected input row: where it is and what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"
