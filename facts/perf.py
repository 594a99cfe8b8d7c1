"""A roofline performance model: tokens/s per backend, GPU family, model class and phase, calibrated on data.

Generation (phase `tg`) is memory-bound: the roof is the GPU's memory bandwidth over the weight bytes read per
token (the active parameters at the model's bits per weight). Prompt processing (`pp`, and `ppd` at a long
context depth) is compute-bound; the GPU table has no compute figures, so its roof is bandwidth over active
parameters and the calibrated efficiency carries each family's compute-to-bandwidth ratio.

The efficiency is log-additive: a term per (backend, phase), and (shrunk towards zero, so a level without data
adds nothing) per vendor and memory class, GPU family, GPU architecture, precision, MoE, family x precision; a
per-machine term absorbs what one machine does differently (power limits, memory clocks) and is zero for a
machine never measured. Backend rankings use the difference of two backends' terms: a machine's own term cancels,
so same-machine comparisons are what calibrates them. Nothing here reads files or imports the engine: curation
feeds it observations (engine/curate/model_rules.py) and the rules it derives carry the numbers they need.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PHASES = ("tg", "pp", "ppd")
# bits per weight of llama.cpp's quantisation types (ggml block sizes; K-quant mixes as llama.cpp's presets)
BPW: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q5_K_S": 5.54, "Q5_1": 6.0,
    "Q5_0": 5.5, "Q4_K_M": 4.85, "Q4_K_S": 4.58, "Q4_1": 5.0, "Q4_0": 4.5, "IQ4_NL": 4.5, "IQ4_XS": 4.25,
    "MXFP4": 4.25, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5, "IQ3_M": 3.66, "IQ3_S": 3.44, "IQ3_XXS": 3.06,
    "Q2_K": 2.63, "IQ2_M": 2.7, "IQ2_S": 2.5, "IQ2_XS": 2.31, "IQ2_XXS": 2.06, "IQ1_M": 1.75, "IQ1_S": 1.56,
    "TQ2_0": 2.06, "TQ1_0": 1.69,
}
DEFAULT_BPW = {"16bit": 16.0, "quantized": 4.85}
# prior strength of each term (pseudo-observations): a term with few rows stays near zero
SHRINK = {"base": 0.5, "vendor": 3.0, "family": 3.0, "arch": 3.0, "precision": 3.0, "moe": 3.0, "fam_prec": 3.0,
          "machine": 4.0}
LEVELS = ("base", "vendor", "family", "arch", "precision", "moe", "fam_prec")
ITERATIONS = 40
MAD_SIGMA = 1.4826  # MAD -> standard deviation of a normal distribution


_QUANT = re.compile(r"(MXFP4|BF16|F16|F32|TQ[12]_0|I?Q[1-8](?:_K)?(?:_[01])?(?:_(?:XXS|XS|XL|S|M|L|NL))?)")


def bits_per_weight(quant: str | None, precision: str | None = None) -> float:
    """Bits per weight of a quantisation name (Q4_K_M, UD-Q4_K_XL, MXFP4, BF16, "Q4_K_M (notes)" ...)."""
    m = _QUANT.search((quant or "").upper())
    if m:
        q = m.group(1)
        bare = re.sub(r"_(?:XXS|XS|XL|S|M|L|NL)$", "", q)
        for cand in (q, q.replace("_XL", "_M").replace("_L", "_M"), bare, bare + "_M", bare + "_K_M", bare + "_0"):
            if cand in BPW:
                return BPW[cand]
    return DEFAULT_BPW.get(precision or "", DEFAULT_BPW["quantized"])


def bytes_per_token(params_b: float | None, active_params_b: float | None, quant: str | None,
                    precision: str | None = None, file_bytes: int | None = None) -> float | None:
    """Weight bytes read per generated token: the whole file, or the active share of it for a MoE model."""
    if file_bytes:
        total = float(file_bytes)
    elif params_b:
        total = params_b * 1e9 * bits_per_weight(quant, precision) / 8.0
    else:
        return None
    if active_params_b and params_b and active_params_b < params_b:
        total *= active_params_b / params_b
    return total


def roofline(phase: str, bandwidth_gbs: float | None, token_bytes: float | None,
             active_params_b: float | None) -> float | None:
    """The phase's roof (tokens/s for tg; a bandwidth-per-parameter proxy for pp / ppd); None when unknown."""
    if not bandwidth_gbs or bandwidth_gbs <= 0:
        return None
    if phase == "tg":
        return bandwidth_gbs * 1e9 / token_bytes if token_bytes else None
    return bandwidth_gbs / active_params_b if active_params_b else None


@dataclass(frozen=True)
class Obs:
    """One calibration observation: a backend's best measured tokens/s on one machine, model and test."""

    backend: str
    phase: str
    vendor: str
    family: str
    arch: str
    memclass: str
    precision: str
    moe: bool
    machine: str
    cell: tuple  # what identifies the test (machine, model, test): same-cell observations are paired
    roof: float
    tps: float
    source: str = ""


def _arch(o: Obs | Group) -> str:
    """The architecture term's key: a machine of unknown architecture gets one of its own, and a group's empty
    architecture (a GPU nobody measured) matches none."""
    machine = getattr(o, "machine", "")
    return o.arch or (f"machine:{machine}" if machine else "")


def _keys(o: Obs | Group, backend: str) -> dict[str, tuple]:
    b, ph = backend, o.phase
    return {"base": (b, ph), "vendor": (b, ph, o.vendor, o.memclass), "family": (b, ph, o.vendor, o.family),
            "arch": (b, ph, o.vendor, _arch(o)), "precision": (b, ph, o.precision), "moe": (b, ph, o.moe),
            "fam_prec": (b, ph, o.vendor, o.family, o.precision)}


def _pair_keys(o: Obs | Group, a: str, b: str) -> dict[str, tuple]:
    """Terms of the same-machine log ratio a/b: vendor-wide, then family, architecture, memory class, model."""
    base = (o.vendor, a, b, o.phase)
    return {"base": base, "vendor": (*base, o.memclass), "family": (*base, o.family), "arch": (*base, _arch(o)),
            "precision": (*base, o.precision), "moe": (*base, o.moe), "fam_prec": (*base, o.family, o.precision)}


@dataclass(frozen=True)
class Group:
    """What a prediction is for: a GPU group (arch "" = an architecture never measured) and a model class."""

    phase: str
    vendor: str
    family: str
    memclass: str
    precision: str
    moe: bool
    arch: str = ""


@dataclass(frozen=True)
class Prediction:
    backend: str
    log_eff: float  # log of tokens/s over the roof
    spread: float  # relative error of one prediction on a machine never measured (log scale ~ relative)
    rows: int  # observations behind the deepest term used
    machines: tuple[str, ...]  # the machines those observations come from (first few)

    @property
    def efficiency(self) -> float:
        return math.exp(self.log_eff)


@dataclass(frozen=True)
class Ranking:
    """Two backends compared for a group from same-machine comparisons: the first one's predicted margin and the
    uncertainty of that margin on a machine never measured."""

    winner: Prediction
    runner_up: Prediction
    margin: float  # predicted tokens/s ratio - 1
    sigma: float  # uncertainty of the log ratio
    paired: int  # same-machine comparisons of these two backends (this vendor and phase)
    machines: tuple[str, ...]  # the machines those comparisons come from


@dataclass
class _Terms:
    """One backfitted additive model: terms per level, their support and the residual spreads."""

    effects: dict[str, dict[tuple, float]] = field(default_factory=dict)
    counts: dict[str, dict[tuple, int]] = field(default_factory=dict)
    support: dict[str, dict[tuple, list[str]]] = field(default_factory=dict)
    spread: dict[tuple, tuple[float, int]] = field(default_factory=dict)  # base key -> (new-machine sd, n)

    def value(self, keys: dict[str, tuple]) -> float:
        return sum(self.effects[lv].get(k, 0.0) for lv, k in keys.items() if lv in self.effects)

    def deepest(self, keys: dict[str, tuple]) -> tuple[int, tuple[str, ...]]:
        """(rows, machines) behind the most specific term with data."""
        lv = next((x for x in ("arch", "fam_prec", "family", "vendor", "base") if keys[x] in self.counts.get(x, {})),
                  "base")
        return self.counts.get(lv, {}).get(keys[lv], 0), tuple(self.support.get(lv, {}).get(keys[lv], ()))[:8]


def _backfit(values: Sequence[float], keys: Sequence[dict[str, tuple]], machines: Sequence[tuple],
             labels: Sequence[str]) -> _Terms:
    """Backfitting: each term the shrunk mean of what the other terms leave, levels in a fixed order; the
    spread of a new machine's error leaves the machine and architecture terms out (they are unknown there)."""
    eff: dict[str, dict[tuple, float]] = {lv: defaultdict(float) for lv in LEVELS}
    mach: dict[tuple, float] = defaultdict(float)
    total = [0.0] * len(values)  # the sum of every term for each observation, kept up to date
    for _ in range(ITERATIONS):
        for lv in (*LEVELS, "machine"):
            target = mach if lv == "machine" else eff[lv]
            ks = machines if lv == "machine" else [k[lv] for k in keys]
            sums: dict[tuple, float] = defaultdict(float)
            ns: dict[tuple, int] = defaultdict(int)
            for i, k in enumerate(ks):
                sums[k] += values[i] - (total[i] - target[k])
                ns[k] += 1
            old = {k: target[k] for k in sums}
            for k in sums:
                target[k] = sums[k] / (ns[k] + SHRINK[lv])
            for i, k in enumerate(ks):
                total[i] += target[k] - old[k]
    out = _Terms(effects={lv: dict(v) for lv, v in eff.items()})
    for lv in LEVELS:
        support: dict[tuple, set[str]] = defaultdict(set)
        counts: dict[tuple, int] = defaultdict(int)
        for i, k in enumerate(keys):
            support[k[lv]].add(labels[i])
            counts[k[lv]] += 1
        out.support[lv] = {k: sorted(v) for k, v in support.items()}
        out.counts[lv] = dict(counts)
    per: dict[tuple, list[float]] = defaultdict(list)
    for i, k in enumerate(keys):
        per[k["base"]].append(values[i] - sum(eff[x][k[x]] for x in LEVELS if x != "arch"))
    out.spread = {k: (_robust_sd(v), len(v)) for k, v in per.items()}
    return out


@dataclass
class Calibration:
    """The absolute model (tokens/s over the roof) and the same-machine backend-ratio model."""

    absolute: _Terms = field(default_factory=_Terms)
    ratio: _Terms = field(default_factory=_Terms)
    rows: int = 0
    pairs: int = 0
    sources: tuple[str, ...] = ()

    def predict(self, backend: str, g: Group) -> Prediction | None:
        """The backend's efficiency for the group (None when the backend was never measured in this phase)."""
        keys = _keys(g, backend)
        if keys["base"] not in self.absolute.counts.get("base", {}):
            return None
        rows, machines = self.absolute.deepest(keys)
        sd, _ = self.absolute.spread.get(keys["base"], (0.5, 0))
        return Prediction(backend, self.absolute.value(keys), round(max(0.05, sd), 4), rows, machines)

    def rank(self, backends: Sequence[str], g: Group) -> Ranking | None:
        """The better of the two best-supported backends for the group, from same-machine comparisons of this
        vendor and phase (None when they were never compared side by side: the model cannot rank them)."""
        best: Ranking | None = None
        for x in range(len(backends)):
            for y in range(x + 1, len(backends)):
                a, b = sorted((backends[x], backends[y]))
                keys = _pair_keys(g, a, b)
                n = self.ratio.counts.get("base", {}).get(keys["base"], 0)
                pa, pb = self.predict(a, g), self.predict(b, g)
                if n == 0 or pa is None or pb is None:
                    continue
                diff = self.ratio.value(keys)
                sd, _ = self.ratio.spread.get(keys["base"], (0.0, 0))
                _, machines = self.ratio.deepest(keys)
                win, run = (pa, pb) if diff >= 0 else (pb, pa)
                # the runner-up's efficiency follows the ratio, so the two numbers agree with the decision
                run = Prediction(run.backend, win.log_eff - abs(diff), run.spread, run.rows, run.machines)
                r = Ranking(win, run, math.exp(abs(diff)) - 1.0, round(max(0.03, sd), 4), n, machines)
                if best is None or r.paired > best.paired:
                    best = r
        return best


def _robust_sd(values: Sequence[float]) -> float:
    if len(values) < 2:
        return abs(values[0]) if values else 0.0
    s = sorted(values)
    m = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    dev = sorted(abs(v - m) for v in s)
    mad = dev[len(dev) // 2] if len(dev) % 2 else (dev[len(dev) // 2 - 1] + dev[len(dev) // 2]) / 2
    return MAD_SIGMA * mad


def fit(observations: Iterable[Obs]) -> Calibration:
    """Fit both models on the observations (their order does not matter)."""
    obs = sorted(observations, key=lambda o: (repr(o.cell), o.backend, o.phase, o.tps))
    cal = Calibration(rows=len(obs), sources=tuple(sorted({o.source for o in obs if o.source})))
    if not obs:
        return cal
    cal.absolute = _backfit([math.log(o.tps / o.roof) for o in obs], [_keys(o, o.backend) for o in obs],
                            [(o.machine, o.phase) for o in obs], [o.machine for o in obs])
    by_cell: dict[tuple, dict[str, Obs]] = defaultdict(dict)
    for o in obs:
        by_cell[(o.cell, o.phase)][o.backend] = o
    diffs: list[float] = []
    keys: list[dict[str, tuple]] = []
    machines: list[tuple] = []
    labels: list[str] = []
    for key in sorted(by_cell, key=repr):
        members = by_cell[key]
        names = sorted(members)
        for x in range(len(names)):
            for y in range(x + 1, len(names)):
                oa, ob = members[names[x]], members[names[y]]
                diffs.append(math.log(oa.tps / ob.tps))
                keys.append(_pair_keys(oa, names[x], names[y]))
                machines.append((oa.machine, names[x], names[y], oa.phase))
                labels.append(oa.machine)
    cal.pairs = len(diffs)
    if diffs:
        cal.ratio = _backfit(diffs, keys, machines, labels)
    return cal
