"""CI check: two installs of lemonade-autotune (e.g. Python 3.11 with durable-rules, Python 3.13 with the
pure-Python evaluator) give the same recommendation on the six system-info examples.

    python .ci/compare_evaluators.py ENGINE_A ENGINE_B     (paths of the two `engine` scripts)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("Qwen3-4B-Instruct-2507-GGUF", "Qwen3-30B-A3B-GGUF", "gpt-oss-120b-GGUF", "Qwen3-Embedding-8B-GGUF",
          "Qwen3.5-9B-FP16-vLLM", "Whisper-Large-v3-Turbo", "SDXL-Turbo")
SCENARIOS = ("chat", "coding")


def answer(engine: str, system_info: Path, model: str, scenario: str) -> dict:
    p = subprocess.run([engine, "recommend", "--model", model, "--system-info", str(system_info), "--scenario",
                        scenario, "--json"], capture_output=True, text=True, timeout=120)
    doc = json.loads(p.stdout)
    if p.returncode != 0:
        return {"exit": p.returncode, "errors": [(e["code"], e["message"]) for e in doc["errors"]]}
    return {"exit": 0, "recipe_options": doc["recipe_options"],
            "decisions": {k: (d["value"], d["rule"], d["layer"]) for k, d in doc["decisions"].items()}}


def main() -> int:
    a, b = sys.argv[1:3]
    files = sorted((ROOT / "tests" / "fixtures" / "system-info").glob("*.json"))
    six = [f for f in files if not f.name.startswith("old-schema")]
    differ = 0
    for si in six:
        for model in MODELS:
            for scenario in SCENARIOS:
                x, y = answer(a, si, model, scenario), answer(b, si, model, scenario)
                if x != y:
                    differ += 1
                    print(f"DIFFERENT {si.name} {model} {scenario}:\n  {x}\n  {y}")
    total = len(six) * len(MODELS) * len(SCENARIOS)
    print(f"compare_evaluators: {total - differ}/{total} recommendations identical on {len(six)} machines")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
