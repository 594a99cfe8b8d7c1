"""Learn from this run: local rules from measurements that beat the recommendation beyond the noise.

Measurements of one model at one context size, configurations differing in backend and llama.cpp flags, are
compared with the configuration the recommendation would run (the llama.cpp default standing for `default`:
`-b 2048 -ub 512`). A configuration *beats* it when, over the scenarios both ran, each with at least MIN_RUNS runs,
its median generation tokens/s gain is above MIN_GAIN and above the noise (the larger relative run-to-run spread,
(max - min) / p50, of the two). The best such configuration becomes one rule of layer `local`:

- `when`: this machine's exact archetype id, the recipe, the model's architecture, class and quantisation (and, for
  a backend, that it is available);
- `set`: only the parameters that differ between it and the recommended configuration, among those measured
  (`ctx_size` never: it is a memory decision);
- `evidence`: runs, median tokens/s, spread, the files it came from.

The rule id is a function of where it applies (archetype, model) so learning again replaces it and learning the same
files twice changes nothing. Rules live in `<config dir>/local-rulebook/learned.yaml` (engine.config).
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.adaptive.measure import Measurement
    from engine.recommend import Recommendation

MIN_RUNS = 2
MIN_GAIN = 0.02
LEARNED_FILE = "learned.yaml"
PRIORITY = 100
# llama.cpp's own values for the parameters a recommendation leaves at `default` (common/common.h)
LLAMA_DEFAULTS: Mapping[str, Any] = {"batch": 2048, "ubatch": 512}
LEARNABLE = ("backend", "batch", "ubatch", "threads", "flash_attn", "cache_type_k", "cache_type_v", "n_gpu_layers",
             "n_cpu_moe", "parallel", "kv_unified")
_FA = {"1": "on", "0": "off", "true": "on", "false": "off"}


def config_params(m: Measurement) -> dict[str, Any] | None:
    """The learnable parameters a measured configuration ran with (None when its args hold a flag we cannot map
    to a parameter: then it is not compared)."""
    from engine.adaptive.measure import args_map
    from engine.lemonade.args import setting
    from engine.recipes.llamacpp.flags import SPECS

    by_flag = {setting(s.flag): s for s in SPECS if s.flag and s.name in LEARNABLE}
    out: dict[str, Any] = {"backend": m.backend} if m.backend else {}
    for flag, values in args_map(m.args).items():
        spec = by_flag.get(flag)
        if spec is None or len(values) != 1:
            return None
        raw = _FA.get(values[0].lower(), values[0]) if spec.name == "flash_attn" else values[0]
        try:
            out[spec.name] = spec.validate(int(raw) if spec.is_int and re.fullmatch(r"\d+", raw) else raw)
        except ValueError:  # a value the vocabulary refuses (PydanticCustomError): not comparable
            return None
    return out


def effective(values: Mapping[str, Any], param: str) -> Any:
    """A parameter's value as run: a `default` (or absent) value is llama.cpp's own default, when known."""
    v = values.get(param, "default")
    return LLAMA_DEFAULTS.get(param, "default") if v == "default" else v


@dataclass(frozen=True)
class Proposal:
    rule: dict[str, Any]  # the YAML rule
    model: str
    gain: float  # median relative tokens/s gain
    noise: float
    runs: int
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    scenarios: tuple[str, ...]

    @property
    def id(self) -> str:
        return str(self.rule["id"])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "gain_pct": round(self.gain * 100, 1),
                "noise_pct": round(self.noise * 100, 1), "runs": self.runs, "baseline": self.baseline,
                "candidate": self.candidate, "scenarios": list(self.scenarios), "rule": self.rule}


@dataclass
class Learned:
    proposals: list[Proposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a model gave no proposal


def _spread(m: Measurement) -> float:
    if m.tps_min is None or m.tps_max is None or not m.tps:
        return float("inf")
    return (m.tps_max - m.tps_min) / m.tps


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "model"


def compare(base: Sequence[Measurement], cand: Sequence[Measurement]) -> tuple[float, float, int, tuple[str, ...]]:
    """(median gain, median noise, fewest runs, scenarios) over the scenarios both measured."""
    b = {m.scenario: m for m in base if m.tps}
    c = {m.scenario: m for m in cand if m.tps}
    both = sorted(b.keys() & c.keys())
    if not both:
        return 0.0, float("inf"), 0, ()
    gains = [c[s].tps / b[s].tps - 1.0 for s in both]
    noise = [max(_spread(b[s]), _spread(c[s])) for s in both]
    runs = min(min(b[s].runs, c[s].runs) for s in both)
    return statistics.median(gains), statistics.median(noise), runs, tuple(both)


def rule_for(rec: Recommendation, model: str, changed: Mapping[str, Any], gain: float, noise: float, runs: int,
             best: Sequence[Measurement], sources: Sequence[str]) -> dict[str, Any]:
    ctx = rec.context
    when: dict[str, Any] = {"archetype": rec.archetype.id, "recipe": rec.recipe}
    for attr in ("architecture", "model_class", "quant"):
        if isinstance(ctx.get(attr), str):
            when[attr] = ctx[attr]
    if "backend" in changed:
        when["backends"] = {"contains": changed["backend"]}
    where = "|".join(f"{k}={when[k]}" for k in ("archetype", "recipe", "architecture", "model_class", "quant")
                     if k in when)
    rid = f"local-{_slug(model)}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"
    tps = statistics.median(m.tps for m in best if m.tps)
    sets = ", ".join(f"{k} {v}" for k, v in changed.items())
    return {"id": rid, "description": f"learned on this machine: {sets} for {model} ({gain:+.0%} tokens/s over the "
                                      f"recommendation, noise {noise:.0%}, {runs}+ runs per scenario)",
            "layer": "local", "priority": PRIORITY, "when": when, "set": dict(changed),
            "evidence": {"n": runs, "metric": "local tg (lemonade bench p50)", "median_tps": round(tps, 2),
                         "spread": round(noise, 4), "sources": sorted(set(sources)),
                         "note": f"engine learn: {gain:+.1%} median over {len(best)} scenario(s) against the "
                                 "recommended configuration measured in the same files"}}


def propose(measurements: Sequence[Measurement],
            recommend: Callable[[str], tuple[Recommendation | None, str | None]]) -> Learned:
    """Proposals (at most one per model) from measurements; `recommend(model)` gives the recommendation."""
    out = Learned()
    groups: dict[tuple[str, int | None], dict[tuple, list[Measurement]]] = defaultdict(lambda: defaultdict(list))
    params_of: dict[tuple, dict[str, Any]] = {}
    for m in measurements:
        if m.failed or not m.tps:
            continue
        p = config_params(m)
        if p is None:
            out.notes.append(f"{m.model}: {m.backend} {m.args!r} holds flags learn does not compare; left out")
            continue
        key = tuple(sorted(p.items(), key=lambda kv: kv[0]))
        params_of[key] = p
        groups[(m.model, m.ctx_size)][key].append(m)
    best_per_model: dict[str, Proposal] = {}
    for (model, _ctx), configs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        rec, why = recommend(model)
        if rec is None:
            out.notes.append(f"{model}: {why}")
            continue
        values = rec.values()
        varied = sorted({k for key in configs for k, _ in key})
        base_key = next((k for k in configs if all(effective(dict(k), p) == effective(values, p) for p in varied)),
                        None)
        if base_key is None:
            out.notes.append(f"{model}: the recommended configuration ({', '.join(f'{p} {effective(values, p)}' for p in varied)}) "
                             "was not measured in these files: nothing to compare with (measure it too)")
            continue
        base = configs[base_key]
        best: Proposal | None = None
        for key, ms in configs.items():
            if key == base_key:
                continue
            gain, noise, runs, scen = compare(base, ms)
            if runs < MIN_RUNS or gain <= max(MIN_GAIN, noise):
                continue
            cand = dict(key)
            changed = {p: cand.get(p, LLAMA_DEFAULTS.get(p, "default")) for p in varied
                       if effective(cand, p) != effective(values, p)}
            if not changed:
                continue
            rule = rule_for(rec, model, changed, gain, noise, runs, ms, [m.source.split(":$")[0] for m in ms])
            prop = Proposal(rule, model, gain, noise, runs, {p: effective(values, p) for p in varied}, cand, scen)
            if best is None or prop.gain > best.gain:
                best = prop
        if best is None:
            out.notes.append(f"{model}: no measured configuration beats the recommendation beyond the noise")
        elif model not in best_per_model or best.gain > best_per_model[model].gain:
            best_per_model[model] = best
    out.proposals = [best_per_model[m] for m in sorted(best_per_model)]
    return out


# ---- the local rulebook ---------------------------------------------------------------------------------

def learned_path(settings: Any) -> Path:
    return settings.local_rulebook / LEARNED_FILE


def read_rules(path: Path) -> list[dict[str, Any]]:
    import yaml

    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: not valid YAML ({err}); fix or delete it (engine forget --all)") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise UsageError(f"{path}: expected a mapping with a 'rules:' list")
    return [r for r in rules if isinstance(r, dict)]


HEADER = ("# Local rules learned on this machine by `engine learn` (layer local). Remove them with `engine forget`.\n"
          "# Edits by hand are kept, but learn replaces a rule of the same id.\n")


def dump(rules: Sequence[Mapping[str, Any]]) -> str:
    import yaml

    return HEADER + yaml.safe_dump({"rules": [dict(r) for r in rules]}, sort_keys=False, allow_unicode=True,
                                   width=120)


def merged(existing: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`existing` with each new rule replacing the one of its id (or appended)."""
    by_id = {str(r.get("id")): dict(r) for r in existing}
    for r in new:
        by_id[str(r["id"])] = dict(r)
    order = [str(r.get("id")) for r in existing] + [str(r["id"]) for r in new if str(r["id"]) not in
                                                   {str(x.get("id")) for x in existing}]
    return [by_id[i] for i in dict.fromkeys(order)]


def write_rules(path: Path, rules: Sequence[Mapping[str, Any]]) -> None:
    from engine.lemonade.store import atomic_write

    if not rules:
        if path.exists():
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dump(rules).encode())


def lint_errors(roots: Sequence[Any], rules: Sequence[Mapping[str, Any]], workdir: Path) -> list[str]:
    """Lint errors (text) of the rulebook `roots` + a local rulebook holding exactly `rules`."""
    from engine import config
    from engine.lint import lint

    local = workdir / config.LOCAL_RULEBOOK
    local.mkdir(parents=True, exist_ok=True)
    (local / LEARNED_FILE).write_text(dump(rules), encoding="utf-8")
    ids = {str(r["id"]) for r in rules}
    result = lint(*roots, local)
    return [str(f) for f in result.findings if f.severity == "error" and (f.rule in ids or config.LOCAL_RULEBOOK
                                                                           in f.path)]
