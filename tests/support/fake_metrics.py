"""The fake lemond's `GET /metrics` (Prometheus text, after prometheus_metrics.cpp) and `GET /v1/system-stats`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psutil

from tests.support.wire import call

if TYPE_CHECKING:
    from tests.support.fake_router import Router

GIB = 1024.0**3
_MODEL_METRICS = (
    ("lemonade_model_input_tokens", "gauge", "Latest input token count reported by a model.", "input_tokens"),
    ("lemonade_model_output_tokens", "gauge", "Latest output token count reported by a model.", "output_tokens"),
    ("lemonade_model_prompt_tokens", "gauge", "Latest prompt token count reported by a model.", "prompt_tokens"),
    ("lemonade_model_cache_tokens", "gauge",
     "Latest prompt tokens served from the backend prefix cache for a model.", "cache_tokens"),
    ("lemonade_model_time_to_first_token_seconds", "gauge", "Latest time to first token reported by a model.",
     "time_to_first_token"),
    ("lemonade_model_tokens_per_second", "gauge", "Latest generation throughput reported by a model.",
     "tokens_per_second"),
    ("lemonade_model_requests_total", "counter", "Cumulative inference requests observed for a model.",
     "request_count_total"),
    ("lemonade_model_input_tokens_total", "counter", "Cumulative input tokens observed for a model.",
     "input_tokens_total"),
    ("lemonade_model_output_tokens_total", "counter", "Cumulative output tokens observed for a model.",
     "output_tokens_total"),
    ("lemonade_model_prompt_tokens_total", "counter", "Cumulative prompt tokens observed for a model.",
     "prompt_tokens_total"),
    ("lemonade_model_cache_tokens_total", "counter",
     "Cumulative prompt tokens served from the backend prefix cache for a model.", "cache_tokens_total"),
)
_TOTALS = (
    ("lemonade_requests_total", "Cumulative inference requests observed by Lemonade.", "request_count_total"),
    ("lemonade_input_tokens_total", "Cumulative input tokens observed by Lemonade.", "input_tokens_total"),
    ("lemonade_output_tokens_total", "Cumulative output tokens observed by Lemonade.", "output_tokens_total"),
    ("lemonade_prompt_tokens_total", "Cumulative prompt tokens observed by Lemonade.", "prompt_tokens_total"),
    ("lemonade_cache_tokens_total", "Cumulative prompt tokens served from backend prefix caches.",
     "cache_tokens_total"),
)


def system_stats() -> dict[str, Any]:
    """cpu_percent and memory_gb (MemTotal - MemAvailable, GiB, 0.1) as on Linux; no GPU/NPU counters here."""
    vm = psutil.virtual_memory()
    return {"cpu_percent": float(psutil.cpu_percent(interval=None)), "gpu_percent": None,
            "memory_gb": round((vm.total - vm.available) / GIB, 1), "npu_percent": None, "vram_gb": None}


def _labels(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"'.replace("\n", "\\n") for k, v in sorted(labels.items()))
    return "{" + inner + "}" if inner else ""


def _describe(out: list[str], name: str, kind: str, text: str) -> None:
    out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def _llamacpp_lines(port: int, labels: dict[str, str], described: set[str]) -> list[str]:
    """llama-server's own /metrics re-exported as lemonade_llamacpp_* with the model's labels."""
    try:
        text = call(f"http://127.0.0.1:{port}", "GET", "/metrics", timeout=5).text
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = re.match(r"^(# (?:HELP|TYPE) )(\S+)(.*)$", line)
        if m:
            name = "lemonade_llamacpp_" + re.sub(r"[^A-Za-z0-9_]", "_", m.group(2)).removeprefix("llamacpp_")
            if (m.group(1) + name) not in described:
                described.add(m.group(1) + name)
                out.append(m.group(1) + name + m.group(3))
            continue
        m = re.match(r"^([^#\s{][^\s{]*)(\{[^}]*\})?(\s.*)$", line)
        if m:
            name = "lemonade_llamacpp_" + re.sub(r"[^A-Za-z0-9_]", "_", m.group(1)).removeprefix("llamacpp_")
            own = m.group(2)[1:-1] if m.group(2) else ""
            extra = _labels(labels)[1:-1]
            out.append(f"{name}{{{own + ',' if own else ''}{extra}}}{m.group(3)}")
    return out


def prometheus_text(router: Router, version: str, max_models: int) -> str:
    out: list[str] = []
    _describe(out, "lemonade_server_up", "gauge", "Whether the Lemonade server is running.")
    out.append("lemonade_server_up 1")
    _describe(out, "lemonade_server_info", "gauge", "Lemonade server build information.")
    out.append(f'lemonade_server_info{{version="{version}"}} 1')
    _describe(out, "lemonade_loaded_models", "gauge", "Number of models currently loaded in Lemonade.")
    out.append(f"lemonade_loaded_models {len(router.loaded)}")
    _describe(out, "lemonade_model_info", "gauge", "Metadata for each Lemonade model observed by this process.")
    _describe(out, "lemonade_model_loaded", "gauge", "Whether this model is currently loaded in Lemonade.")
    for name, kind, text, _ in _MODEL_METRICS:
        _describe(out, name, kind, text)
    backends = list(router.loaded.values())
    described: set[str] = set()
    llamacpp: list[str] = []
    for backend in backends:
        labels = {"checkpoint": backend.model.checkpoint, "device": "gpu", "model_name": backend.public,
                  "recipe": backend.model.recipe, "type": "llm"}
        out.append(f"lemonade_model_info{_labels(labels)} 1")
        out.append(f"lemonade_model_loaded{_labels(labels)} 1")
        stats = router.per_model.get(backend.model.canonical)
        if stats is not None:
            values = stats.to_json()
            for name, _, _, key in _MODEL_METRICS:
                if values[key] is not None:
                    out.append(f"{name}{_labels(labels)} {values[key]}")
        if backend.process is not None:
            llamacpp += _llamacpp_lines(backend.port, labels, described)
    out += llamacpp
    _describe(out, "lemonade_max_loaded_models", "gauge", "Configured loaded model limit per model type.")
    for kind in ("classification", "embedding", "image", "llm", "reranking", "transcription", "tts"):
        out.append(f'lemonade_max_loaded_models{{type="{kind}"}} {max_models}')
    for name, text, _ in _TOTALS:
        _describe(out, name, "counter", text)
    _describe(out, "lemonade_routing_decisions_total", "counter", "Cumulative collection.router routing decisions.")
    _describe(out, "lemonade_routing_switches_total", "counter",
              "Cumulative routing decisions that changed a conversation's routed model.")
    totals = router.stats.to_json()
    out += [f"{name} {totals[key]}" for name, _, key in _TOTALS]
    out += ["lemonade_routing_decisions_total 0", "lemonade_routing_switches_total 0"]
    stats = system_stats()
    _describe(out, "lemonade_cpu_usage_percent", "gauge", "System CPU utilization percentage.")
    out.append(f"lemonade_cpu_usage_percent {stats['cpu_percent']:g}")
    _describe(out, "lemonade_memory_used_gb", "gauge", "System memory usage in GiB.")
    out.append(f"lemonade_memory_used_gb {stats['memory_gb']}")
    for name, text in (("lemonade_gpu_usage_percent", "GPU utilization percentage."),
                       ("lemonade_vram_used_gb", "GPU memory usage in GiB."),
                       ("lemonade_npu_usage_percent", "NPU utilization percentage.")):
        _describe(out, name, "gauge", text)
    return "\n".join(out) + "\n"
