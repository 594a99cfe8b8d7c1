"""One rulebook file -> validated rules: the YAML schema, conditions, cross-checks and located errors."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, KIND_OPS, Attribute
from engine.errors import LocatedError
from engine.params import PARAMS, RECIPE_BACKENDS, ParamValues, backend_allowed
from engine.recipes import RECIPES
from engine.rulebook._yaml import Parsed, parse

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


# ---------------------------------------------------------------------------------------------- schema

class _RunnerUp(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: Any = None
    median_tps: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    n: Annotated[int, Field(ge=0)] | None = None


class _Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    n: Annotated[int, Field(ge=0, le=10**9)] | None = None  # rows behind a rule: far below 10^9
    metric: str | None = None
    median_tps: Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)] | None = None
    spread: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    dispersion: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    runner_up: _RunnerUp | None = None
    sources: list[str] = []
    builds: str | None = None
    dates: str | None = None
    note: str | None = None
    kind: Literal["measured", "model"] = "measured"  # model: derived from the performance model (facts/perf.py)
    basis: dict[str, Any] | None = None  # kind model: what calibrated it (devices, rows, efficiencies, margin)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: Annotated[str, Field(pattern=ID_PATTERN, max_length=128)]
    description: Annotated[str, Field(min_length=1)]
    layer: Literal[ir.LAYERS]  # type: ignore[valid-type]
    priority: Annotated[int, Field(ge=0, le=ir.PRIORITY_MAX)] = 0
    when: dict[str, Any] | None = None
    set: ParamValues  # type: ignore[valid-type]
    evidence: _Evidence | Literal["none"] | None = None

    @field_validator("set", mode="before")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, dict) and not v:
            raise PydanticCustomError("empty_set", "a rule must set at least one parameter")
        return v


# ---------------------------------------------------------------------------------------------- loading

def _loc_str(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


Ids = list[tuple[str, int, tuple[int, int]]]


def load_file(raw: bytes, label: str, shown: str, offset: int
               ) -> tuple[list[ir.Rule], list[LocatedError], Ids]:
    """One file's rules (none when it has errors), its errors, and (id, index, mark) of every raw id."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return [], [LocatedError(shown, 1, 1, "", "encoding", f"the file is not UTF-8: {err}")], []
    parsed = parse(text)
    errors = [LocatedError(shown, line, col, _loc_str(loc), code, msg) for loc, line, col, code, msg in parsed.problems]
    if any(e.code != "duplicate_key" for e in errors):
        return [], errors, []  # a syntax error: nothing more can be read from this file
    if not isinstance(parsed.data, dict):
        kind = type(parsed.data).__name__ if parsed.data is not None else "null"
        return [], [*errors, LocatedError(shown, 1, 1, "", "document_type",
                                          f"expected a mapping with 'rules:' at the top, got {kind}")], []
    data = parsed.data
    for key in data:
        if key != "rules":
            errors.append(LocatedError(shown, *parsed.mark((key,), prefer_key=True), _loc_str((key,)),
                                       "extra_forbidden", f"unknown top-level field {key!r} (only 'rules')"))
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        got = "missing" if "rules" not in data else f"a {type(raw_rules).__name__}"
        errors.append(LocatedError(shown, *parsed.mark(("rules",)), "rules", "list_type",
                                   f"'rules' should be a list of rules, got {got}"))
        return [], errors, []
    out: list[ir.Rule] = []
    ids: Ids = []
    for i, raw in enumerate(raw_rules):
        here = ("rules", i)
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            ids.append((raw["id"], i, parsed.mark((*here, "id"))))
        problems: list[Problem] = []
        conds: list[ir.Condition] = []
        when = raw.get("when") if isinstance(raw, dict) else None
        if isinstance(when, dict):
            conds, problems = _conditions(when, (*here, "when"))
        try:
            rm = _Rule.model_validate(raw)
        except ValidationError as err:
            errors += [_from_pydantic(e, parsed, shown, here) for e in err.errors()]
            rm = None
        except RecursionError:
            errors.append(LocatedError(shown, *parsed.mark(here), _loc_str(here), "recursive",
                                       "recursive YAML (alias cycle) is not allowed"))
            rm = None
        if rm is not None:
            problems += _cross_checks(rm, conds, here)
        errors += [LocatedError(shown, *parsed.mark(loc, prefer_key=pk), _loc_str(loc), code, msg)
                   for loc, code, msg, pk in problems]
        if rm is None or errors:
            continue
        line, _col = parsed.mark(here)
        values = {k: getattr(rm.set, k) for k in rm.set.model_fields_set}
        ordered = {k: values[k] for k in raw["set"] if k in values}
        rule = ir.Rule(id=rm.id, description=rm.description, layer=rm.layer, priority=rm.priority,
                       when=tuple(conds), set=ordered, source=f"{label}:{line}",
                       index=offset + i, evidence=_evidence(rm.evidence))
        out.append(rule)
    return ([], errors, ids) if errors else (out, [], ids)  # load_rulebook sorts errors by place


def _from_pydantic(e: Mapping[str, Any], parsed: Parsed, shown: str, prefix: tuple[Any, ...]) -> LocatedError:
    loc = prefix + tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p in ("literal", "none"))))
    code, msg = e["type"], e["msg"]
    if code == "extra_forbidden" and len(loc) >= 2 and loc[-2] == "set":
        msg = f"unknown parameter {loc[-1]!r} (see engine.params.PARAMETERS)"
        code = "unknown_parameter"
    elif code == "extra_forbidden":
        msg = f"unknown field {loc[-1]!r}"
    elif code == "model_type" and len(loc) == 2:
        msg = f"each rule should be a mapping (id, description, layer, when, set), got {type(e['input']).__name__}"
    line, col = parsed.mark(loc, prefer_key=code in ("extra_forbidden", "unknown_parameter"))
    return LocatedError(shown, line, col, _loc_str(loc), code, msg)


def _evidence(ev: _Evidence | str | None) -> ir.Evidence | None:
    if ev is None:
        return None
    if ev == "none":
        return ir.Evidence(none=True)
    assert isinstance(ev, _Evidence)
    runner = ev.runner_up.model_dump(exclude_none=True) if ev.runner_up else None
    return ir.Evidence(n=ev.n, metric=ev.metric, median_tps=ev.median_tps, spread=ev.spread, dispersion=ev.dispersion,
                       runner_up=MappingProxyType(runner) if runner else None, sources=tuple(ev.sources),
                       builds=ev.builds, dates=ev.dates, note=ev.note, kind=ev.kind,
                       basis=MappingProxyType(ev.basis) if ev.basis else None)


# ---------------------------------------------------------------------------------------------- conditions

Problem = tuple[tuple[Any, ...], str, str, bool]  # loc, code, message, point at the key


def _norm(attr: Attribute, value: Any) -> Any:
    return float(value) if attr.kind == "float" else value


def _conditions(when: Mapping[str, Any], loc: tuple[Any, ...]) -> tuple[list[ir.Condition], list[Problem]]:
    conds: list[ir.Condition] = []
    problems: list[Problem] = []
    for name, spec in when.items():
        here = (*loc, name)
        attr = CONTEXT_ATTRIBUTES.get(name)
        if attr is None:
            import difflib

            close = difflib.get_close_matches(str(name), CONTEXT_ATTRIBUTES, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else " (see docs/architecture.md)"
            problems.append((here, "unknown_attribute", f"unknown context attribute {name!r}{hint}", True))
            continue
        if isinstance(spec, dict):
            ops = [(op, v, (*here, op)) for op, v in spec.items()]
            if not ops:
                problems.append((here, "empty_condition", "an empty mapping tests nothing; remove it", False))
        elif isinstance(spec, list):
            ops = [("in", spec, here)]
        else:
            ops = [("eq", spec, here)]
        for op, value, where in ops:
            cond, problem = _condition(attr, op, value, where)
            if problem:
                problems.append(problem)
            elif cond is not None:
                conds.append(cond)
    return conds, problems


def _condition(attr: Attribute, op: Any, value: Any, where: tuple[Any, ...]
               ) -> tuple[ir.Condition | None, Problem | None]:
    if op not in ir.OPS:
        return None, (where, "unknown_operator",
                      f"unknown operator {op!r} (one of {', '.join(ir.OPS)})", True)
    if op not in KIND_OPS[attr.kind]:
        why = "ordering compares numbers only" if op in ("lt", "le", "gt", "ge") else \
            "`contains` needs a set-valued attribute (archetype, backends)"
        return None, (where, "operator_type", f"{op!r} does not apply to {attr.name} ({attr.kind}): {why}", True)
    if op in ("exists", "missing"):
        if not isinstance(value, bool):
            return None, (where, "bool_type", f"{op} takes true or false, got {value!r}", False)
        flip = {"exists": "missing", "missing": "exists"}
        return ir.Condition(attr.name, op if value else flip[op]), None  # type: ignore[arg-type]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            return None, (where, "list_type", f"{op} takes a non-empty list of values, got {value!r}", False)
        for i, v in enumerate(value):
            why = _scalar_problem(attr, v)
            if why:
                return None, ((*where, i), "value_type", why, False)
        return ir.Condition(attr.name, op, tuple(dict.fromkeys(_norm(attr, v) for v in value))), None
    why = _scalar_problem(attr, value)
    if why:
        return None, (where, "value_type", why, False)
    return ir.Condition(attr.name, op, _norm(attr, value)), None


def _scalar_problem(attr: Attribute, value: Any) -> str | None:
    if value is None:
        return f"{attr.name}: a condition needs a value (null never matches; use `missing: true`)"
    if isinstance(value, (list, dict)):
        return f"{attr.name}: expected a single value here, got a {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{attr.name}: {value!r} is not a finite number"
    return attr.check_value(value)


def _cross_checks(rm: _Rule, conds: list[ir.Condition], loc: tuple[Any, ...]) -> list[Problem]:
    """Backend and parameters belong to the rule's recipe; argument lists allowed for the rule's backend."""
    problems: list[Problem] = []
    recipes = _pinned(conds, "recipe")
    backend = rm.set.backend
    if backend is not None and recipes:
        bad = [r for r in recipes if not backend_allowed(r, backend)]
        if bad:
            problems.append(((*loc, "set", "backend"), "backend_recipe",
                             f"backend {backend!r} is not offered by recipe {', '.join(bad)} "
                             f"(allowed: {', '.join(RECIPE_BACKENDS[bad[0]])})", False))
    for name in rm.set.model_fields_set:
        foreign = [r for r in recipes if r in RECIPES and name not in RECIPES[r].parameters]
        if foreign:
            problems.append(((*loc, "set", name), "recipe_parameter",
                             f"{name!r} is not a parameter of recipe {foreign[0]} (its parameters: "
                             f"{', '.join(RECIPES[foreign[0]].parameters)})", True))
        spec = PARAMS[name]
        value = getattr(rm.set, name)
        if spec.list_check is None or not value:
            continue
        for b in [backend] if backend else _pinned(conds, "backend"):
            found = spec.list_check(value, b)
            if found:
                problems.append(((*loc, "set", name), "extra_args_backend", "; ".join(found), False))
                break
    return problems


def _pinned(conds: list[ir.Condition], attr: str) -> list[str]:
    for c in conds:
        if c.attr == attr and c.op == "eq":
            return [c.value]
        if c.attr == attr and c.op == "in":
            return list(c.value)
    return []
