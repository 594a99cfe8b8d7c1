"""Verify after load, with a fallback: one Lemonade job (`POST /v1/jobs`) that loads the recommended configuration,
runs short measured chats, and on a failed load or chat (OOM, a crash, a flag this llama-server refuses) moves on to
the next configuration of the fallback chain, then unloads.

The chain, each step the previous one made safer, duplicates dropped:

1. the recommendation;
2. the same with half the context;
3. placement left to llama.cpp's --fit (our `-ngl` / `--n-cpu-moe` / `-ts` removed), half the context;
4. the recommendation for the other backend (the runner-up, else another installed one).

Job shape (lemonade-sdk/lemonade docs/dev/job-system.md): `load_i` (on_fail -> `load_{i+1}`), `chat_i_r`
(on_fail -> `load_{i+1}`, the last one on_done -> `unload`), a `none` step reached only when every configuration
failed, and `unload` of the model. Steps not reached end `skipped`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.adaptive.measure import MEASURE_PROMPT, MEASURE_TOKENS

if TYPE_CHECKING:
    from engine.lemonade.client import LemondClient

PLACEMENT = ("-ngl", "-ncmoe", "-ts")  # settings (engine.lemonade.args.setting) that --fit decides itself


@dataclass(frozen=True)
class Config:
    label: str
    options: Mapping[str, Any]  # Lemonade recipe options for the load step

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "options": dict(self.options)}


def _without_placement(args: str) -> str:
    from engine.lemonade.args import join, options, setting, split

    return join(t for o in options(split(args)) if setting(o.flag) not in PLACEMENT for t in o.tokens)


def chain(recommended: Mapping[str, Any], other: Mapping[str, Any] | None = None, *,
          other_label: str = "the other backend") -> list[Config]:
    """The fallback chain from the recommended options (and the other backend's, when there is one)."""
    first = dict(recommended)
    out = [Config("recommended", first)]
    ctx = first.get("ctx_size")
    if isinstance(ctx, int) and ctx > 2048:
        out.append(Config("half the context", {**first, "ctx_size": max(2048, ctx // 2)}))
    args = str(first.get("llamacpp_args") or "")
    fit = _without_placement(args)
    smaller = {**first, "llamacpp_args": fit}
    if isinstance(ctx, int) and ctx > 2048:
        smaller["ctx_size"] = max(2048, ctx // 2)
    out.append(Config("placement left to llama.cpp --fit", smaller))
    if other:
        out.append(Config(other_label, dict(other)))
    seen: list[dict] = []
    unique = []
    for c in out:
        if dict(c.options) not in seen:
            seen.append(dict(c.options))
            unique.append(c)
    return unique


def job(model: str, configs: Sequence[Config], runs: int = 2, *, unload: bool = True,
        max_tokens: int = MEASURE_TOKENS) -> dict[str, Any]:
    """The job document for POST /v1/jobs."""
    steps: list[dict[str, Any]] = []
    n = len(configs)
    for i, c in enumerate(configs):
        fallback = f"load_{i + 1}" if i + 1 < n else "none"
        steps.append({"id": f"load_{i}", "op": "load", "params": {"model": "${inputs.model}", **c.options},
                      "on_fail": fallback})
        for r in range(runs):
            step = {"id": f"chat_{i}_{r}", "op": "chat", "on_fail": fallback,
                    "params": {"model": "${inputs.model}", "max_tokens": max_tokens, "temperature": 0,
                               "messages": [{"role": "user", "content": MEASURE_PROMPT}]}}
            if r == runs - 1:
                step["on_done"] = "unload" if unload else "end"
            steps.append(step)
    steps.append({"id": "none", "op": "sleep", "params": {"ms": 1}})  # reached only when every config failed
    if unload:
        steps.append({"id": "unload", "op": "unload", "params": {"model": "${inputs.model}"}, "on_fail": "continue"})
    steps.append({"id": "end", "op": "sleep", "params": {"ms": 1}})
    return {"name": f"lemonade-autotune probe {model}", "inputs": {"model": model}, "steps": steps}


@dataclass(frozen=True)
class Attempt:
    config: Config
    status: str  # "ok" | "load failed" | "chat failed" | "not reached"
    error: str | None = None
    samples: tuple[tuple[float, float, int], ...] = ()  # (tps, ttft_ms, prompt tokens) per chat
    load_ms: int | None = None

    @property
    def tps(self) -> float | None:
        return statistics.median(s[0] for s in self.samples) if self.samples else None

    @property
    def ttft_ms(self) -> float | None:
        return statistics.median(s[1] for s in self.samples) if self.samples else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "status": self.status, "error": self.error, "load_ms": self.load_ms,
                "tps": self.tps, "ttft_ms": self.ttft_ms, "samples": [list(s) for s in self.samples]}


@dataclass
class Outcome:
    job_id: str
    status: str  # the job's status
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def chosen(self) -> Attempt | None:
        return next((a for a in self.attempts if a.status == "ok"), None)

    @property
    def verdict(self) -> str:
        c = self.chosen
        if c is None:
            return "failed"
        return "ok" if c is self.attempts[0] else "fallback"


def _timings(output: Any) -> tuple[float, float, int] | None:
    t = output.get("timings") if isinstance(output, dict) else None
    if not isinstance(t, dict) or not isinstance(t.get("predicted_per_second"), int | float):
        return None
    n_in = t.get("prompt_n") or (output.get("usage") or {}).get("prompt_tokens") or 0
    return float(t["predicted_per_second"]), float(t.get("prompt_ms") or 0.0), int(n_in)


def read_outcome(record: Mapping[str, Any], configs: Sequence[Config], runs: int) -> Outcome:
    steps = {s.get("id"): s for s in record.get("steps") or [] if isinstance(s, dict)}
    out = Outcome(str(record.get("id")), str(record.get("status")))
    for i, c in enumerate(configs):
        load = steps.get(f"load_{i}") or {}
        chats = [steps.get(f"chat_{i}_{r}") or {} for r in range(runs)]
        if load.get("status") == "failed":
            out.attempts.append(Attempt(c, "load failed", str(load.get("error") or ""), (), load.get("duration_ms")))
        elif load.get("status") != "completed":
            out.attempts.append(Attempt(c, "not reached"))
        else:
            samples = tuple(t for s in chats if s.get("status") == "completed" and (t := _timings(s.get("output"))))
            bad = next((s for s in chats if s.get("status") == "failed"), None)
            if bad is not None or len(samples) < runs:
                why = str(bad.get("error") or "") if bad else "the chat answer has no llama.cpp timings"
                out.attempts.append(Attempt(c, "chat failed", why, samples, load.get("duration_ms")))
            else:
                out.attempts.append(Attempt(c, "ok", None, samples, load.get("duration_ms")))
    return out


def run(client: LemondClient, model: str, configs: Sequence[Config], runs: int = 2, *, unload: bool = True,
        timeout: float = 600.0, poll: float = 0.25) -> Outcome:
    """Submit the job, wait for it to end, read what each configuration did."""
    from engine.lemonade.client import LemondError

    job_id = client.submit_job(job(model, configs, runs, unload=unload))
    deadline = time.monotonic() + timeout
    while True:
        record = client.job(job_id)
        if record.get("status") in ("completed", "failed", "interrupted"):
            break
        if time.monotonic() > deadline:
            raise LemondError(f"job {job_id} on {client.url} did not end within {timeout:g} s (still "
                              f"{record.get('status')}); see GET /v1/jobs/{job_id}")
        time.sleep(poll)
    return read_outcome(record, configs, runs)
