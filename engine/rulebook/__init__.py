"""Load YAML rulebooks: every file under the roots validated at once, located errors, a content digest.

The bundled rulebook is the repository's top-level `rulebook/` directory, shipped inside the package
(`engine/_bundled/rulebook` in a wheel) and found with importlib.resources, so it works installed, editable,
from a source checkout or from a zip. A loaded rulebook is cached compiled (engine.rulebook.cache).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Union

from engine import ir
from engine.errors import LocatedError, RulebookError, RulebookReadError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["BUNDLED", "LocatedError", "RulebookError", "RulebookReadError", "RootLike", "bundled_root",
           "display_path", "load_rulebook", "parse_yaml", "read_sources"]

BUNDLED = "bundled"  # how a command line names the bundled rulebook (`--rulebook bundled`)
RootLike = Union[str, "os.PathLike[str]", "Traversable"]


def parse_yaml(text: str):  # noqa: ANN201 - engine.rulebook._yaml.Parsed
    """One YAML document with line:col marks per data path and located problems (the rulebook loader's
    parser, strict YAML 1.2 booleans, no aliases), for other YAML files the engine reads."""
    from engine.rulebook._yaml import parse

    return parse(text)


def bundled_root() -> Traversable:
    """The rulebook shipped with the package: `engine/_bundled/rulebook` in an installed wheel or zip, the
    top-level `rulebook/` directory in a source checkout or an editable install (where the package is the
    checkout's `engine/`)."""
    shipped = resources.files("engine").joinpath("_bundled", "rulebook")
    if shipped.is_dir():
        return shipped
    import engine

    return Path(engine.__file__).resolve().parent.parent / "rulebook"


def display_path(path: Path | Traversable) -> str:
    """`path` relative to the working directory when it lies below it, else as given."""
    if not isinstance(path, Path):
        return str(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _root(spec: RootLike) -> Traversable:
    return Path(spec) if isinstance(spec, (str, os.PathLike)) else spec


def _yaml_files(root: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    """(label, file) of every `*.yaml` below `root`, sorted, skipping hidden files and directories."""
    out: list[tuple[str, Traversable]] = []
    for child in root.iterdir():
        if child.name.startswith("."):
            continue
        label = f"{prefix}/{child.name}"
        if child.is_dir():
            out += _yaml_files(child, label)
        elif child.name.endswith(".yaml") and child.is_file():
            out.append((label, child))
    return sorted(out, key=lambda pair: pair[0].split("/"))


def read_sources(*roots: RootLike) -> list[tuple[str, str, bytes]]:
    """(label, shown path, bytes) of every rulebook file under the roots (default: the bundled rulebook).

    The label is `<root name>/<relative path>` (what rule sources and the digest use); RulebookReadError
    when a root or file cannot be read.
    """
    out: list[tuple[str, str, bytes]] = []
    for spec in roots or (bundled_root(),):
        root = _root(spec)
        shown_root = display_path(root)
        if root.is_file():
            pairs = [(root.name, root)]
        elif root.is_dir():
            pairs = _yaml_files(root, root.name)
        else:
            raise RulebookReadError([LocatedError(shown_root, 1, 1, "", "not_found",
                                                  "rulebook directory or file does not exist")])
        for label, file in pairs:
            shown = display_path(file)
            try:
                out.append((label, shown, file.read_bytes()))
            except OSError as err:
                raise RulebookReadError([LocatedError(shown, 1, 1, "", "unreadable", str(err))]) from err
    return out


def digest_of(sources: list[tuple[str, str, bytes]]) -> str:
    """sha256 over the files' labels and bytes (order-independent): names a rulebook's content."""
    h = hashlib.sha256()
    for label, _shown, raw in sorted(sources, key=lambda s: s[0]):
        h.update(label.encode() + b"\0" + str(len(raw)).encode() + b"\0" + raw)
    return h.hexdigest()


def load_rulebook(*roots: RootLike, cache: bool = True) -> ir.Rulebook:
    """Load and validate every `*.yaml` under the roots (default: the bundled rulebook).

    Raises RulebookError listing every problem at once (RulebookReadError for unreadable input). With
    `cache`, a rulebook whose exact content was compiled before is read from the compiled cache.
    """
    sources = read_sources(*roots)
    digest = digest_of(sources)
    root_name = ",".join(_root(r).name for r in roots) if roots else "rulebook"
    if cache:
        from engine.rulebook import cache as compiled

        hit = compiled.get(digest)
        if hit is not None:
            return hit
    book = _compile(sources, digest, root_name)
    if cache:
        compiled.put(book)
    return book


def _compile(sources: list[tuple[str, str, bytes]], digest: str, root_name: str) -> ir.Rulebook:
    from engine.rulebook._schema import load_file

    errors: list[LocatedError] = []
    rules: list[ir.Rule] = []
    first_seen: dict[str, tuple[str, int]] = {}
    for label, shown, raw in sources:
        file_rules, file_errors, ids = load_file(raw, label, shown, len(rules))
        errors.extend(file_errors)
        for rule_id, i, (line, col) in ids:
            if rule_id in first_seen:
                where = "{}:{}".format(*first_seen[rule_id])
                errors.append(LocatedError(shown, line, col, f"rules[{i}].id", "duplicate_id",
                                           f"duplicate rule id {rule_id!r} (first defined at {where})"))
            else:
                first_seen[rule_id] = (shown, line)
        rules.extend(file_rules)
    if errors:
        order = {label: i for i, label in enumerate(dict.fromkeys(e.path for e in errors))}
        raise RulebookError(sorted(errors, key=lambda e: (order[e.path], e.line, e.col)))
    return ir.Rulebook(rules=tuple(rules), digest=digest, root=root_name,
                       files=tuple(label for label, _shown, _raw in sources), from_files=True)
