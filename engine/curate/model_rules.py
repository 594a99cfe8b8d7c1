"""Backend rules from the performance model (facts/perf.py) for GPU families without direct evidence.

Curation calibrates the model on the kept rows and, for every AMD GPU family the GPU table knows (and every one
the data shows), every precision x dense/MoE and every scenario, ranks the backends Lemonade offers there. A
predicted margin beyond the noise of same-machine comparisons picks the faster backend; a margin inside it picks
the more robust one (fewer known failures that can apply there, rulebook/models/known-failures.yaml), or
nothing when both have as many. Such rules say `evidence: kind
model`, sit below every measured rule (priority MODEL_PRIORITY), and carry their basis: which machines and rows
calibrated them, each backend's efficiency, the margin and its uncertainty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from engine.curate.decide import MIN_WIN, NOISE_FACTOR, _provenance
from engine.curate.rows import LONG_DEPTH, Proto, Row, config_medians
from facts import perf

MODEL_PRIORITY = 20  # below every measured rule (native-backend rules start at 40, comparisons at 200)
# backends the model ranks per vendor (Lemonade's llamacpp GPU backends where there is a choice)
CANDIDATES: dict[str, tuple[str, ...]] = {"amd": ("rocm", "vulkan")}
PRECISIONS = ("quantized", "16bit")
SCENARIO_PHASE = {"chat": "tg", "coding": "pp", "long-context": "ppd"}
SHALLOW = 4096  # generation measured at a smaller depth reads mostly weights


def phase_of(cell: tuple) -> str | None:
    """tg, pp (shallow prompt processing) or ppd (at a long-context depth) for a test cell."""
    _, _, test, n_p, _, depth = cell
    if test == "tg":
        return "tg" if depth < SHALLOW else None  # generation deep into a context also reads the KV cache
    if test == "pp":
        return "ppd" if max(depth, n_p) >= LONG_DEPTH else "pp"
    return None


def observations(rows: Sequence[Row], protos: dict[tuple[str, str], Proto]) -> list[perf.Obs]:
    """One observation per test cell and GPU backend: its best configuration (median of repeats); single-GPU
    machines with a known bandwidth and model size only."""
    by: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        by[(r.cell, r.cfg[0])].append(r)
    out: list[perf.Obs] = []
    for (cell, backend), members in sorted(by.items(), key=lambda kv: repr(kv[0])):
        p = protos[(cell[0], cell[1])]
        phase = phase_of(cell)
        if phase is None or backend in ("cpu", "system") or p.gpu_count != 1 or p.memclass == "cpu":
            continue
        tokens = perf.bytes_per_token(p.params_b, p.active_params_b, p.quant, p.precision)
        roof = perf.roofline(phase, p.bandwidth_gbs, tokens, p.active_params_b or p.params_b)
        if roof is None:
            continue
        tps = max(config_medians(members).values())
        out.append(perf.Obs(backend, phase, p.vendor, p.family or "", p.arch or "", p.memclass, p.precision or "",
                            p.moe, cell[0], cell[:6], roof, tps, min(r.source for r in members)))
    return out


def _groups(protos: dict[tuple[str, str], Proto]) -> dict[tuple[str, str, str], set[str]]:
    """(vendor, family, memclass) of every GPU family of a ranked vendor (the GPU table's and the data's) ->
    the architectures it has."""
    from facts import catalog

    found: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in catalog.rows():
        if r.family and r.vendor in CANDIDATES:
            found[(r.vendor, r.family, "unified" if r.unified else "discrete")].add(r.arch)
    for p in protos.values():
        if p.family and p.memclass != "cpu" and p.vendor in CANDIDATES:
            found[(p.vendor, p.family, p.memclass)].add(p.arch or "")
    return dict(sorted(found.items()))


def known_exclusions() -> list[tuple[str, tuple]]:
    """(failing backend, conditions) of every known-failure rule that moves away from a backend (the bundled
    rulebook's models/known-failures.yaml; ids name the failing backend: known-failure-<backend>-...)."""
    from engine.rulebook import bundled_root, load_rulebook

    out = []
    for r in load_rulebook(bundled_root() / "models").rules:
        parts = r.id.split("-")
        if r.id.startswith("known-failure-") and "backend" in r.set and len(parts) > 2 and parts[2] != r.set["backend"]:
            out.append((parts[2], r.when))
    return out


def failures(backend: str, vendor: str, family: str, memclass: str, archs: set[str],
             exclusions: list[tuple[str, tuple]]) -> int:
    """Known failures of `backend` that can apply to a GPU of this group (a condition on something else may hold)."""
    from engine.ir import holds

    n = 0
    for failing, conds in exclusions:
        if failing != backend:
            continue
        ctxs = [{"vendor": vendor, "family": family, "memclass": memclass, "unified": memclass == "unified",
                 **({"arch": a} if a else {})} for a in sorted(archs) or [""]]
        if any(all(holds(c, ctx) for c in conds if c.attr in ctx) for ctx in ctxs):
            n += 1
    return n


def model_choices(rows: Sequence[Row], protos: dict[tuple[str, str], Proto], measured: Sequence = ()) -> list:
    """Backend choices from the calibrated model (engine.curate.curate.Choice, hw_level "model"); none where a
    measured family-level backend choice already covers the group (`measured`: the measured choices)."""
    from engine.curate.curate import Choice

    covered = {(dict(d.hw_value)["family"], d.scenario, dict(d.model_value).get("precision"))
               for d in measured if d.param == "backend" and d.hw_level == "family"
               and (not d.model_value or d.model_level == "precision")}

    obs = observations(rows, protos)
    cal = perf.fit(obs)
    by_machine: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_machine[r.cell[0]].append(r)

    def prov(rank: perf.Ranking) -> dict:  # the rows of the same-machine comparisons behind the ranking
        pair = (rank.winner.backend, rank.runner_up.backend)
        return _provenance([r for m in rank.machines for r in by_machine.get(m, ()) if r.cfg[0] in pair])
    out: list[Choice] = []
    exclusions = known_exclusions()
    for (vendor, family, memclass), archs in _groups(protos).items():
        counts = {b: failures(b, vendor, family, memclass, archs, exclusions) for b in CANDIDATES[vendor]}
        for precision in PRECISIONS:
            for moe in (False, True):
                for scen, phase in SCENARIO_PHASE.items():
                    if (family, scen, None) in covered or (family, scen, precision) in covered:
                        continue  # measured on this family: the measured rule decides
                    g = perf.Group(phase, vendor, family, memclass, precision, moe)
                    rank = cal.rank(CANDIDATES[vendor], g)
                    if rank is None and phase == "ppd":  # no long-context comparison: shallow prompts
                        g = perf.Group("pp", vendor, family, memclass, precision, moe)
                        rank = cal.rank(CANDIDATES[vendor], g)
                    if rank is None or not all(_measured(cal, b, vendor, family) for b in
                                               (rank.winner.backend, rank.runner_up.backend)):
                        continue  # a backend never measured on this family: the model does not extrapolate to it
                    c = _choice(Choice, rank, g, scen, vendor, family, memclass, precision, moe, cal, prov, counts)
                    if c is not None:
                        out.append(c)
    return out


def _measured(cal: perf.Calibration, backend: str, vendor: str, family: str) -> bool:
    return any(k[0] == backend and k[2:] == (vendor, family) for k in cal.absolute.counts.get("family", {}))


def _choice(choice_cls, rank: perf.Ranking, g: perf.Group, scen: str, vendor: str, family: str, memclass: str,
            precision: str, moe: bool, cal: perf.Calibration, prov, counts: dict[str, int]):
    """The rule's choice: the predicted winner beyond the noise; inside it the backend with fewer known failures
    on this group (none when both have as many: the family rules or Lemonade's order decide)."""
    need = max(MIN_WIN, NOISE_FACTOR * rank.sigma)
    beyond = rank.margin > need
    a, b = rank.winner.backend, rank.runner_up.backend
    if not beyond and counts[a] == counts[b]:
        return None
    robust = a if counts[a] < counts[b] else b
    value = a if beyond else robust
    other = rank.runner_up if value == rank.winner.backend else rank.winner
    chosen = rank.winner if value == rank.winner.backend else rank.runner_up
    machines = list(rank.machines)
    why = (f"predicted {rank.winner.backend} ahead of {rank.runner_up.backend} by {rank.margin:.1%} "
           f"(uncertainty {rank.sigma:.1%} from {rank.paired} same-machine comparisons on {len(machines)} "
           f"machine(s))")
    why += "" if beyond else (f": inside the noise ({need:.1%}), so the more robust {robust} ({counts[robust]} known "
                              f"failures here against {counts[a if robust == b else b]})")
    basis = {"phase": g.phase, "roof": "bandwidth / weight bytes per token" if g.phase == "tg" else
             "bandwidth / active parameters (a compute proxy)",
             "efficiency": {chosen.backend: round(chosen.efficiency, 6), other.backend: round(other.efficiency, 6)},
             "margin": round(rank.margin, 4), "sigma": round(rank.sigma, 4), "paired": rank.paired,
             "spread": round(chosen.spread, 4), "machines": machines[:8], "rows": cal.rows, "pairs": cal.pairs,
             "inside_noise": not beyond}
    ev = {"kind": "model", "n": chosen.rows, "metric": f"predicted {g.phase}", "spread": round(rank.sigma, 4),
          "runner_up": {"value": other.backend, "n": other.rows}, **prov(rank),
          "note": f"performance model: {why}", "basis": basis}
    hw = (("family", family), ("memclass", memclass), ("vendor", vendor))
    model = (("precision", precision), ("moe", moe))
    return choice_cls("model", hw, "model", model, scen, "backend", value, None,
                      rank.margin if beyond else 0.0, rank.sigma, ev, MODEL_PRIORITY)

