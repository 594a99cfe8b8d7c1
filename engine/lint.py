"""`engine lint` checks: schema, ids, salience, same-salience conflicts, shadowing, defaults, capacity."""

from __future__ import annotations

import os
from collections.abc import Iterable, Set
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES
from engine._regions import implies, overlap, reachable
from engine.recipes import RECIPES
from engine.rulebook import (
    LocatedError,
    RootLike,
    RulebookError,
    RulebookReadError,
    bundled_root,
    display_path,
    load_rulebook,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One lint finding, printed as `file:line: severity code: message`."""

    path: str
    line: int
    severity: Severity
    code: str
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity} {self.code}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LintResult:
    findings: tuple[Finding, ...]
    rulebook: ir.Rulebook | None  # None when it did not load

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)


def lint(*roots: RootLike) -> LintResult:
    """Lint the rulebook under `roots` (default: the bundled one). Unreadable input raises RulebookReadError."""
    root_paths = [Path(r) if isinstance(r, (str, os.PathLike)) else r for r in roots] or [bundled_root()]
    try:
        book = load_rulebook(*root_paths)
    except RulebookReadError:
        raise
    except RulebookError as err:
        return LintResult(tuple(_load_finding(e) for e in err.errors), None)
    where = _Locator(root_paths)
    dead = {r.id for r in book.rules if not reachable(r)}
    findings = [*check_salience(book, where), *check_conflicts(book, where), *check_shadowed(book, where, dead),
                *check_unreachable(book, where, dead), *check_defaults(book, where), *check_capacity(book, where)]
    findings.sort(key=lambda f: (f.path, f.line, f.severity != "error", f.code))
    return LintResult(tuple(findings), book)


def _load_finding(e: LocatedError) -> Finding:
    code = "duplicate-id" if e.code == "duplicate_id" else "schema"
    loc = f"{e.loc}: " if e.loc else ""
    return Finding(e.path, e.line, "error", code, f"{loc}{e.message} [{e.code}] (col {e.col})")


class _Locator:
    """Rule.source ("<root name>/<file>:<line>") -> a path the user can open from the working directory."""

    def __init__(self, roots: list[Traversable]) -> None:
        self.roots = roots

    def __call__(self, rule: ir.Rule) -> tuple[str, int]:
        label, _, line = rule.source.rpartition(":")
        head, *rest = label.split("/")
        for root in self.roots:
            path = root.joinpath(*rest) if rest else root
            if root.name == head and path.is_file():
                return display_path(path), int(line)
        return label, int(line or 0)

    def root(self) -> tuple[str, int]:
        return display_path(self.roots[0]), 0


def _finding(where: _Locator, rule: ir.Rule, severity: Severity, code: str, message: str) -> Finding:
    path, line = where(rule)
    return Finding(path, line, severity, code, message, rule.id)


def check_salience(book: ir.Rulebook, where: _Locator) -> Iterable[Finding]:
    for r in book.rules:
        if not 0 <= r.priority <= ir.PRIORITY_MAX or not 0 <= r.salience <= ir.SALIENCE_MAX:
            yield _finding(where, r, "error", "salience-range",
                           f"{r.id}: salience {r.salience} (priority {r.priority}) outside its layer band")


def check_conflicts(book: ir.Rulebook, where: _Locator) -> Iterable[Finding]:
    """Same layer + same priority + overlapping conditions + different values for one parameter."""
    groups: dict[int, list[ir.Rule]] = {}
    for r in book.rules:
        groups.setdefault(r.salience, []).append(r)
    for rules in groups.values():
        for i, a in enumerate(rules):
            for b in rules[i + 1:]:
                clash = sorted(p for p in set(a.set) & set(b.set) if a.set[p] != b.set[p])
                if clash and overlap(a, b):
                    bpath, bline = where(b)
                    detail = ", ".join(f"{p}={a.set[p]!r} vs {b.set[p]!r}" for p in clash)
                    yield _finding(where, a, "error", "conflict",
                                   f"{a.id} and {b.id} ({bpath}:{bline}) have the same layer and priority, "
                                   f"can match together and set {detail}; change a priority or the conditions")


def _open(attr: str) -> str | None:
    """The kind of an attribute whose values are an open set of strings (str or set, nothing enumerated)."""
    a = CONTEXT_ATTRIBUTES.get(attr)
    return a.kind if a is not None and a.kind in ("str", "set") and not a.values else None


def _needs(rule: ir.Rule) -> frozenset[tuple[str, Any]]:
    """(attribute, value) pairs a context must have to match `rule` (its equalities on open string sets)."""
    return frozenset((c.attr, c.value) for c in rule.when
                     if (c.op == "eq" and _open(c.attr)) or (c.op == "contains" and _open(c.attr) == "set"))


def _pins(rule: ir.Rule) -> frozenset[tuple[str, Any]]:
    """(attribute, value) pairs every context matching `rule` has, on open string sets: a rule that implies
    another has every pair of the other's `_needs` among them (a value left open could be any other string)."""
    allowed: dict[str, set[Any]] = {}
    excluded: dict[str, set[Any]] = {}
    pins: set[tuple[str, Any]] = set()
    for c in rule.when:
        kind = _open(c.attr)
        if kind == "set" and (c.op in ("eq", "contains") or (c.op == "in" and len(c.value) == 1)):
            pins.add((c.attr, c.value if c.op != "in" else c.value[0]))
        elif kind == "str" and c.op in ("eq", "in"):
            vals = {c.value} if c.op == "eq" else set(c.value)
            allowed[c.attr] = allowed[c.attr] & vals if c.attr in allowed else vals
        elif kind == "str" and c.op in ("ne", "not_in"):
            excluded.setdefault(c.attr, set()).update({c.value} if c.op == "ne" else c.value)
    for attr, vals in allowed.items():
        left = vals - excluded.get(attr, set())
        if len(left) == 1:
            pins.add((attr, next(iter(left))))
    return frozenset(pins)


def check_shadowed(book: ir.Rulebook, where: _Locator, dead: Set[str]) -> Iterable[Finding]:
    """A rule every one of whose matches also matches one higher-salience rule setting all its parameters.

    Candidates come from an index on one needed (attribute, value) pair each, so a rule is compared only with
    rules whose equalities it shares (and those without any): near-linear in the rulebook size."""
    order = sorted(book.rules, key=lambda r: -r.salience)
    rank = {id(s): i for i, s in enumerate(order)}
    attrs = {r.id: {c.attr for c in r.when} for r in book.rules}
    needs = {id(s): _needs(s) for s in order}
    keyed: dict[tuple[str, Any], list[ir.Rule]] = {}
    unkeyed: list[ir.Rule] = []
    for s in order:
        if needs[id(s)]:
            keyed.setdefault(min(needs[id(s)], key=lambda kv: (kv[0], repr(kv[1]))), []).append(s)
        else:
            unkeyed.append(s)
    for r in book.rules:
        if not r.set or r.id in dead:  # an unreachable rule is reported as such, not as shadowed
            continue
        params = set(r.set)
        pins = _pins(r)
        cands = [*unkeyed, *(s for p in pins for s in keyed.get(p, ()))]
        for s in sorted(cands, key=lambda s: rank[id(s)]):
            if s.salience <= r.salience:
                break  # sorted by salience, highest first
            # s's conditions can only follow from r's when r constrains every attribute s tests
            if (params <= set(s.set) and needs[id(s)] <= pins and attrs[s.id] <= attrs[r.id]
                    and implies(r, s)):
                spath, sline = where(s)
                yield _finding(where, r, "warning", "shadowed",
                               f"{r.id} never decides anything: {s.id} ({spath}:{sline}, salience {s.salience}) "
                               f"matches whenever it does and sets {', '.join(r.set)}")
                break


def check_unreachable(book: ir.Rulebook, where: _Locator, dead: Set[str]) -> Iterable[Finding]:
    """`dead`: ids of the rules whose conditions cannot all hold (_regions.reachable)."""
    for r in book.rules:
        if r.id in dead:
            yield _finding(where, r, "warning", "unreachable",
                           f"{r.id}: its conditions can never hold together")


def _recipes_of(rule: ir.Rule) -> tuple[str, ...] | None:
    """The recipes a rule is limited to by `recipe` conditions (None: its `when` also tests other facts)."""
    allowed: set[str] = set(RECIPES)
    for c in rule.when:
        if c.attr != "recipe":
            return None
        if c.op == "eq":
            allowed &= {c.value}
        elif c.op == "in":
            allowed &= set(c.value)
        elif c.op == "ne":
            allowed -= {c.value}
        elif c.op == "not_in":
            allowed -= set(c.value)
        else:
            return None
    return tuple(sorted(allowed))


def check_defaults(book: ir.Rulebook, where: _Locator) -> Iterable[Finding]:
    """Every parameter of every recipe has a recipe-default rule whose `when` is empty or names only recipes.

    `backend` only for recipes that run anywhere (llamacpp): for the others no available backend means the
    recipe cannot run here, which recommend reports as such."""
    have: dict[str, set[str]] = {name: set() for name in RECIPES}
    conditional: dict[str, ir.Rule] = {}
    for r in book.rules:
        if r.layer != "recipe-default":
            continue
        for name in _recipes_of(r) or ():
            have[name].update(r.set)
        for p in r.set:
            conditional.setdefault(p, r)
    for name, recipe in RECIPES.items():
        for p in recipe.parameters:
            if p in have[name] or (p == "backend" and not recipe.runs_anywhere):
                continue
            message = (f"parameter {p!r} of recipe {name} has no recipe-default rule with an empty or recipe-only "
                       f"`when`, so some contexts get no value; add one (e.g. `when: {{recipe: {name}}}`, "
                       "priority 0)")
            if p in conditional:
                r = conditional[p]
                yield _finding(where, r, "error", "no-default", message + f"; {r.id} here only sets it conditionally")
            else:
                path, line = where.root()
                yield Finding(path, line, "error", "no-default", message)


def check_capacity(book: ir.Rulebook, where: _Locator) -> Iterable[Finding]:
    """durable-rules pre-flight (run even when the python engine is selected: rulebooks stay portable)."""
    from engine.evaluators import capacity_errors

    err = capacity_errors(book)
    if err is None:
        return
    if len(err.rules) == len(err.problems):
        for rule, problem in zip(err.rules, err.problems, strict=True):
            yield _finding(where, rule, "error", "durable-capacity", problem.split(" ", 1)[1])
    else:
        path, line = where.root()
        for problem in err.problems:
            yield Finding(path, line, "error", "durable-capacity", problem)
