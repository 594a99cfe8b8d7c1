"""The recommendation table of README.md: model x machine -> recipe options, whether it fits, expected speed.

    python bench/recommend_table.py [--scenario chat] [--models NAME ...]

Runs `engine.recommend` exactly as `engine recommend --model NAME --system-info FILE` does (bundled rulebook,
memory fit on) on the six example machines; a model that does not fit is shown as such (the CLI exits 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MACHINES = ("strix-halo-128gb-linux", "rtx-4090-desktop-linux", "rx-7900-xtx-desktop-linux",
            "apple-m3-max-64gb-macos", "radeon-780m-laptop-windows", "cpu-only-linux")
MODELS = ("gpt-oss-20b-GGUF", "gpt-oss-120b-GGUF", "GLM-4.5-Air-UD-Q4K-XL-GGUF", "Qwen3-Next-80B-A3B-Instruct-GGUF",
          "Llama-4-Scout-17B-16E-Instruct-GGUF", "Qwen3-30B-A3B-GGUF", "Qwen3-Coder-30B-A3B-Instruct-GGUF",
          "Qwen3.5-122B-A10B-GGUF")


def cell(hw, model, scenario: str) -> str:
    from engine.errors import DoesNotFitError, RecipeUnavailableError
    from engine.recommend import recommend

    try:
        rec = recommend(hw, model, scenario=scenario)
    except DoesNotFitError as err:
        need = str(err).split(": it needs ", 1)[-1].split(" (", 1)[0]
        return f"**does not fit** ({need})" if "needs" in str(err) else "**does not fit**"
    except RecipeUnavailableError:
        return "cannot run"
    opts, v = rec.recipe_options(), rec.memory
    args = opts["llamacpp_args"]
    out = f"{opts['llamacpp_backend']} {opts['ctx_size']}" + (f" `{args}`" if args else "")
    if v is not None:
        fits = {"yes": "fits", "estimated": "fits (est.)", "unknown": "memory unknown", "no": "no"}[v.fits]
        spill = v.full_offload is False
        out += f"; {fits}" + ("; experts/layers on CPU" if spill else "")
    if rec.expected is not None:
        out += f"; {rec.expected.tokens_per_s:g} t/s {rec.expected.metric or ''}".rstrip()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="chat")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    from facts.lemonade import from_system_info
    from facts.registry import resolve_model_spec

    sysinfo = ROOT / "tests" / "fixtures" / "system-info"
    hws = [(m, from_system_info((sysinfo / f"{m}.json").read_text(), source=m)) for m in MACHINES]
    print(f"Scenario `{args.scenario}`. Cells: backend, ctx_size, llamacpp_args; fits; expected tokens/s.\n")
    print("| model | " + " | ".join(m for m, _ in hws) + " |")
    print("| --- | " + " | ".join("---" for _ in hws) + " |")
    for name in args.models:
        model = resolve_model_spec(name)
        print(f"| {name} | " + " | ".join(cell(hw, model, args.scenario) for _, hw in hws) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
