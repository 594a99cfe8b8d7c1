"""Activation checks: a downloaded rulebook becomes active only if `engine lint` finds 0 errors and every value
passes the flag allowlist (no Lemonade-reserved flag anywhere); rules may not claim the user or local layers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError

# layers that belong to this machine and its user: a remote rulebook must never outrank them
FORBIDDEN_LAYERS = frozenset({"user", "local"})


class ActivationError(UserError):
    """A verified download whose rulebook fails the checks; the last good rulebook stays active."""

    code = "activation"

    def __init__(self, version: int, problems: list[str]) -> None:
        self.version, self.problems = version, problems
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        super().__init__(f"remote rulebook version {version} refused: {shown}")


@dataclass(frozen=True)
class Checked:
    """A rulebook that passed: its content digest, rule count and lint warnings."""

    digest: str
    rules: int
    warnings: int


def _reserved() -> frozenset[str]:
    from engine.recipes import sdcpp, whispercpp
    from engine.recipes.llamacpp import flags

    return flags.RESERVED_FLAGS | sdcpp.RESERVED_FLAGS | whispercpp.RESERVED_FLAGS


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def allowlist_problems(book: Any) -> list[str]:
    """Why a loaded rulebook's values are not all allowed: a list parameter outside its recipe's allowlist, a
    Lemonade-reserved flag in any value, a rule in a layer only this machine may fill."""
    from engine.params import PARAMS

    reserved = _reserved()
    problems: list[str] = []
    for rule in book.rules:
        where = f"{rule.source} rule {rule.id!r}"
        if rule.layer in FORBIDDEN_LAYERS:
            problems.append(f"{where}: layer {rule.layer!r} is this machine's; a remote rulebook may not use it")
        for name, value in rule.set.items():
            spec = PARAMS.get(name)
            if spec is None:
                problems.append(f"{where}: unknown parameter {name!r}")
                continue
            if spec.is_list:
                tokens = list(_strings(value))
                bad = spec.list_check(tokens, None) if spec.list_check else []
                problems.extend(f"{where}: {name}: {b}" for b in bad)
            hit = sorted({t.split("=", 1)[0] for t in _strings(value)} & reserved)
            if hit:
                problems.append(f"{where}: {name}: Lemonade reserves {', '.join(hit)}")
    return problems


def _shown(path: str, root: Path) -> str:
    """A finding's file as the bundle names it (`remote@N/families/x.yaml`), not the staging directory."""
    try:
        return f"{root.name}/{Path(path).resolve().relative_to(root.resolve()).as_posix()}"
    except ValueError:
        return path


def check(root: Path, version: int) -> Checked:
    """Lint the rulebook under `root` and check the allowlist; ActivationError listing what is wrong."""
    from engine.errors import RulebookReadError
    from engine.lint import lint

    try:
        result = lint(root)
    except RulebookReadError as err:
        raise ActivationError(version, [str(err)]) from None
    errors = [f"lint: {_shown(f.path, root)}:{f.line}: {f.code}: {f.message}" for f in result.findings
              if f.severity == "error"]
    if result.rulebook is None or errors:
        raise ActivationError(version, errors or ["the rulebook does not load"])
    problems = allowlist_problems(result.rulebook)
    if problems:
        raise ActivationError(version, problems)
    return Checked(result.rulebook.digest, len(result.rulebook.rules), result.warnings)
