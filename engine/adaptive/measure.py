"""Measurements: what a model did, from Lemonade bench JSON, lemond's `/v1/health` + `/metrics` + `/v1/stats`, or
a short chat of our own through the OpenAI-compatible API; and the bench-like JSON that probe and monitor write.

One `Measurement` is a model x configuration x scenario: generation tokens/s and TTFT (medians over its runs, with
the lowest and highest run), the prompt size, and where it came from. The bench-like JSON is Lemonade's own
`lemonade bench --json` layout (hardware, models[].results[].scenarios[] with p50/min/max stat blocks), so the
files lemonade-autotune writes and the ones Lemonade writes are read the same way.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.lemonade.client import LemondClient

MEASURE_PROMPT = "Count from one to twenty in words, separated by commas."
MEASURE_TOKENS = 32


@dataclass(frozen=True)
class Measurement:
    model: str
    backend: str | None  # llamacpp backend (rocm, vulkan, cuda, ...) when known
    args: str  # llamacpp_args / backend_args as run
    ctx_size: int | None
    scenario: str
    tps: float | None  # generation tokens/s (p50 of the runs)
    ttft_ms: float | None
    input_tokens: int | None
    runs: int  # measured runs behind the figures
    tps_min: float | None = None
    tps_max: float | None = None
    ttft_min: float | None = None
    ttft_max: float | None = None
    source: str = ""  # file:JSON path, or the lemond URL and endpoint
    failed: str | None = None  # every run failed: why
    tps_change_pct: float | None = None  # a Lemonade compare file's change against its baseline
    ttft_change_pct: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "args": self.args, "ctx_size": self.ctx_size,
                "scenario": self.scenario, "tps": self.tps, "ttft_ms": self.ttft_ms,
                "input_tokens": self.input_tokens, "runs": self.runs, "tps_min": self.tps_min,
                "tps_max": self.tps_max, "ttft_min": self.ttft_min, "ttft_max": self.ttft_max, "source": self.source,
                "failed": self.failed, "tps_change_pct": self.tps_change_pct, "ttft_change_pct": self.ttft_change_pct,
                **({"extra": dict(self.extra)} if self.extra else {})}


def args_map(text: str) -> dict[str, tuple[str, ...]]:
    """llamacpp_args as {setting: values}, every spelling of a setting as one key (`-ub 512` == `--ubatch-size 512`)."""
    from engine.lemonade.args import options, setting, split

    return {setting(o.flag): o.values for o in options(split(text or ""))}


# ---- Lemonade bench JSON -------------------------------------------------------------------------------

def _stat(block: Any, key: str, where: str) -> float | None:
    if block is None:
        return None
    if not isinstance(block, dict):
        raise UsageError(f"{where}: expected a stats object {{p50, min, max}}, got {json.dumps(block)[:60]}")
    v = block.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise UsageError(f"{where}.{key}: expected a number, got {json.dumps(v)[:60]}")
    return float(v)


def _typed(obj: Mapping[str, Any], key: str, kinds: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    """obj[key] when it is of `kinds` (bools are never numbers), `default` when absent or null; else UsageError."""
    v = obj.get(key)
    if v is None:
        return default
    if isinstance(v, kinds) and not isinstance(v, bool):  # no field of a bench file is a boolean
        return v
    raise UsageError(f"{where}.{key}: expected {_KIND_NAMES.get(kinds, 'a value of another type')}, got "
                     f"{json.dumps(v)[:60]}")


_KIND_NAMES: dict[Any, str] = {str: "a string", int: "an integer", dict: "an object", list: "a list",
                               (int, float): "a number"}


def read_bench(path: str | Path) -> list[Measurement]:
    """Every scenario of a Lemonade bench JSON file (and a compare file's changes); UsageError says where."""
    from facts.documents import JSONProblem, parse_json, read_document

    path = Path(path)
    label = str(path)
    try:
        doc = parse_json(read_document(path, "Lemonade bench").text)
    except JSONProblem as err:
        raise UsageError(err.at(label)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise UsageError(f"{label}: not a Lemonade bench file: expected a top-level 'models' list "
                         "(lemonade bench --json --output FILE)")
    out: list[Measurement] = []
    for mi, model in enumerate(doc["models"]):
        where_m = f"{label}:$.models[{mi}]"
        if not isinstance(model, dict) or not isinstance(model.get("model"), str):
            raise UsageError(f"{where_m}: expected an object with a 'model' name")
        name = model["model"]
        config = _typed(model, "config", dict, where_m, {})
        planned = _typed(config, "measurement_runs", int, f"{where_m}.config", 1)
        changes = {}
        for ci, c in enumerate(_typed(model, "comparison", list, where_m, [])):
            if isinstance(c, dict):
                w = f"{where_m}.comparison[{ci}]"
                key = (_typed(c, "backend", str, w), _typed(c, "backend_args", str, w, ""),
                       _typed(c, "ctx_size", int, w), _typed(c, "scenario", str, w))
                changes[key] = (_typed(c, "tps_pct_change", (int, float), w),
                                _typed(c, "ttft_pct_change", (int, float), w))
        for ri, res in enumerate(_typed(model, "results", list, where_m, [])):
            where_r = f"{where_m}.results[{ri}]"
            if not isinstance(res, dict):
                raise UsageError(f"{where_r}: expected an object")
            backend = _typed(res, "backend", str, where_r)
            args = _typed(res, "backend_args", str, where_r, "")
            ctx = res.get("ctx_size") if isinstance(res.get("ctx_size"), int) else None
            recipe = _typed(res, "recipe", str, where_r, "llamacpp")
            for si, sc in enumerate(_typed(res, "scenarios", list, where_r, [])):
                where = f"{where_r}.scenarios[{si}]"
                if not isinstance(sc, dict) or not isinstance(sc.get("name"), str):
                    raise UsageError(f"{where}: expected an object with a scenario 'name'")
                failed_all = bool(sc.get("all_runs_failed"))
                runs = planned - _typed(sc, "failed_runs", int, where, 0)
                tps_change, ttft_change = changes.get((f"{recipe}/{backend}", args, ctx, sc["name"]), (None, None))
                tokens = sc.get("input_tokens")
                out.append(Measurement(
                    name, backend or None, args, ctx, sc["name"],
                    _stat(sc.get("tps"), "p50", f"{where}.tps"), _stat(sc.get("ttft_ms"), "p50", f"{where}.ttft_ms"),
                    tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
                    0 if failed_all else max(runs, 0),
                    _stat(sc.get("tps"), "min", f"{where}.tps"), _stat(sc.get("tps"), "max", f"{where}.tps"),
                    _stat(sc.get("ttft_ms"), "min", f"{where}.ttft_ms"),
                    _stat(sc.get("ttft_ms"), "max", f"{where}.ttft_ms"), where,
                    "all runs failed" if failed_all else None, tps_change, ttft_change))
    return out


def bench_hardware_name(path: str | Path) -> str | None:
    """The bench file's GPU name (for the report), if any."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        gpus = doc.get("hardware", {}).get("gpu") or []
        return str(gpus[0].get("name")) if gpus else doc.get("hardware", {}).get("cpu")
    except (OSError, ValueError, AttributeError, IndexError):
        return None


def _block(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "p50": statistics.median(values), "p95": sorted(values)[max(0, int(0.95 * len(values)) - 1)]}


def bench_document(groups: Iterable[tuple[str, str | None, str, int | None, str, Sequence[tuple[float, float]],
                                          int | None, int]], *, hardware: Mapping[str, Any] | None = None,
                   runs: int = 1) -> dict[str, Any]:
    """A bench-like JSON document: (model, backend, args, ctx, scenario, [(tps, ttft_ms)...], input_tokens,
    failed runs) per scenario run, grouped as Lemonade groups them."""
    models: dict[str, dict[tuple, list[dict]]] = {}
    for model, backend, args, ctx, scenario, samples, n_in, failed in groups:
        sc: dict[str, Any] = {"name": scenario, "category": scenario, "failed_runs": failed,
                              "input_tokens": n_in, "output_tokens": MEASURE_TOKENS}
        if samples:
            sc["tps"] = _block([s[0] for s in samples])
            sc["ttft_ms"] = _block([s[1] for s in samples])
        else:
            sc["all_runs_failed"] = True
        models.setdefault(model, {}).setdefault((backend, args, ctx), []).append(sc)
    return {"hardware": dict(hardware or {}), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "generator": "lemonade-autotune",
            "models": [{"model": m, "config": {"measurement_runs": runs, "warmup_runs": 0},
                        "results": [{"backend": b or "", "backend_args": a, "ctx_size": c, "recipe": "llamacpp",
                                     "scenarios": scs} for (b, a, c), scs in res.items()]}
                       for m, res in models.items()]}


# ---- lemond --------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line (comments and malformed lines skipped)."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line.strip())
        if not m or line.startswith("#"):
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))
    return out


def backend_of(entry: Mapping[str, Any]) -> str | None:
    """The llamacpp backend of a `/v1/health` loaded model: recipe_options, else None (lemond's default)."""
    opts = entry.get("recipe_options") if isinstance(entry.get("recipe_options"), dict) else {}
    b = opts.get("llamacpp_backend")
    return str(b) if b else None


def from_lemond(client: LemondClient, health: Mapping[str, Any]) -> list[Measurement]:
    """What lemond says each loaded model did at its last request (`/metrics` per model, else `/v1/stats` for
    the one `model_loaded`). A model with no request yet has no measurement."""
    loaded = [m for m in health.get("all_models_loaded") or [] if isinstance(m, dict) and m.get("model_name")]
    per: dict[str, dict[str, float]] = {}
    try:
        for name, labels, value in parse_prometheus(client.metrics()):
            if name in ("lemonade_model_tokens_per_second", "lemonade_model_time_to_first_token_seconds",
                        "lemonade_model_input_tokens", "lemonade_model_requests_total") and "model_name" in labels:
                per.setdefault(labels["model_name"], {})[name] = value
    except Exception:  # noqa: BLE001 - /metrics is optional; /v1/stats below
        per = {}
    stats: dict[str, Any] = {}
    out = []
    for entry in loaded:
        name = str(entry["model_name"])
        opts = entry.get("recipe_options") if isinstance(entry.get("recipe_options"), dict) else {}
        m = per.get(name, {})
        tps = m.get("lemonade_model_tokens_per_second")
        ttft = m.get("lemonade_model_time_to_first_token_seconds")
        n_in = m.get("lemonade_model_input_tokens")
        source = f"{client.url}/metrics"
        if tps is None and name == health.get("model_loaded"):
            stats = stats or client.stats()
            tps, ttft, n_in = stats.get("tokens_per_second"), stats.get("time_to_first_token"), \
                stats.get("input_tokens")
            source = f"{client.url}/v1/stats"
        if not tps:
            continue
        out.append(Measurement(name, backend_of(entry), str(opts.get("llamacpp_args") or ""),
                               opts.get("ctx_size") if isinstance(opts.get("ctx_size"), int) else None, "live",
                               float(tps), float(ttft) * 1000.0 if ttft is not None else None,
                               int(n_in) if n_in is not None else None, 1, source=source,
                               extra={"launch_command": entry.get("launch_command"), "checkpoint":
                                      entry.get("checkpoint")}))
    return out


def chat_once(client: LemondClient, model: str, *, max_tokens: int = MEASURE_TOKENS,
              timeout: float = 300.0) -> tuple[float, float, int]:
    """(generation tokens/s, TTFT ms, prompt tokens) of one short chat, from llama-server's `timings`."""
    body = {"model": model, "messages": [{"role": "user", "content": MEASURE_PROMPT}], "max_tokens": max_tokens,
            "temperature": 0, "stream": False}
    reply = client.chat(body, timeout=timeout)
    t = reply.get("timings") if isinstance(reply.get("timings"), dict) else {}
    tps, prompt_ms = t.get("predicted_per_second"), t.get("prompt_ms")
    if not isinstance(tps, int | float) or not isinstance(prompt_ms, int | float):
        from engine.lemonade.client import LemondError

        raise LemondError(f"{client.url}: the chat answer for {model!r} has no `timings` (predicted_per_second, "
                          "prompt_ms): is it a llama.cpp model?")
    n_in = t.get("prompt_n") or (reply.get("usage") or {}).get("prompt_tokens") or 0
    return float(tps), float(prompt_ms), int(n_in)


def measure(client: LemondClient, entry: Mapping[str, Any], runs: int = 3) -> Measurement:
    """`runs` short chats against a loaded model (the first also warms the cache: all are counted, the
    median is robust to it)."""
    name = str(entry["model_name"])
    opts = entry.get("recipe_options") if isinstance(entry.get("recipe_options"), dict) else {}
    samples = [chat_once(client, name) for _ in range(max(1, runs))]
    tps = [s[0] for s in samples]
    ttft = [s[1] for s in samples]
    return Measurement(name, backend_of(entry), str(opts.get("llamacpp_args") or ""),
                       opts.get("ctx_size") if isinstance(opts.get("ctx_size"), int) else None, "monitor",
                       statistics.median(tps), statistics.median(ttft), samples[0][2], len(samples),
                       min(tps), max(tps), min(ttft), max(ttft), f"{client.url}/v1/chat/completions",
                       extra={"launch_command": entry.get("launch_command"), "checkpoint": entry.get("checkpoint"),
                              "samples": [list(s[:2]) for s in samples]})
