"""Import contracts that keep the layering: facts never imports engine; engine.curate is an authoring leaf;
private modules stay inside their package; every package is named in pyproject.toml."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "facts")
# the CLI verbs that run curation are the only run-time modules allowed to import engine.curate
CURATE_USERS = {"engine.commands.curate", "engine.commands.backtest"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports (absolute names), at any depth of the file (lazy imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from x import _y` imports x._y when a module
    return out


MODULES = _modules()
IMPORTS = {name: {i for i in _imports(name, path) if i.split(".")[0] in PACKAGES} for name, path in MODULES.items()}


def test_facts_never_imports_engine():
    bad = {m: sorted(i for i in imps if i.split(".")[0] == "engine") for m, imps in IMPORTS.items()
           if m.split(".")[0] == "facts"}
    assert not {m: v for m, v in bad.items() if v}


def test_curation_is_a_leaf_nothing_at_run_time_imports():
    bad = {m: sorted(i for i in imps if i.startswith("engine.curate")) for m, imps in IMPORTS.items()
           if not m.startswith("engine.curate") and m not in CURATE_USERS}
    assert not {m: v for m, v in bad.items() if v}


def test_private_modules_are_imported_only_inside_their_package():
    problems = []
    for importer, imps in IMPORTS.items():
        for imported in imps:
            parts = imported.split(".")
            for k, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__") and ".".join(parts[:k + 1]) in MODULES:
                    owner = ".".join(parts[:k])  # the package the private module belongs to
                    if importer != owner and not importer.startswith(owner + "."):
                        problems.append(f"{importer} imports {'.'.join(parts[:k + 1])}")
                    break
    assert not problems, problems


def test_every_package_is_named_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(re.findall(r'"([a-z_.]+)"', re.search(r"packages = \[(.*?)\]", text, re.S).group(1)))
    found = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert found | {"engine._bundled.rulebook"} == listed
