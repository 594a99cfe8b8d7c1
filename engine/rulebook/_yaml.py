"""Parse one YAML document keeping line:col marks per data path; duplicate keys, aliases and runaway sizes are
errors. libyaml's C parser does the scanning where PyYAML has it (about 5x faster), the Python one elsewhere."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser keeps line/column marks too
MAX_NODES = 1_000_000  # a rulebook file of ~10,000 rules has ~300,000 nodes


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader with YAML 1.2 booleans (`on`/`off`/`yes`/`no` stay strings) and no timestamps."""


_REPLACED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int",
             "tag:yaml.org,2002:float")
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for ch, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# numbers: YAML 1.1 ints and YAML 1.2 floats (1e3, -.5), without sexagesimal forms (`1:30` stays a string)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))

MAX_INT_DIGITS = 4000  # below Python's int() limit (4,300 digits): the schema then says which range a value breaks


class _BadValue(yaml.MarkedYAMLError):
    pass


def _int(loader: Any, node: yaml.ScalarNode) -> int:
    digits = len(node.value.replace("_", "").lstrip("+-"))
    if digits > MAX_INT_DIGITS:
        raise _BadValue(problem=f"an integer of {digits:,} digits; numbers in a rulebook stay within +-2**53",
                        problem_mark=node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)


@dataclass
class Parsed:
    """The document's data, marks per path ((line, col) 1-based for keys and values) and problems."""

    data: Any = None
    value_marks: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)
    problems: list[tuple[tuple[Any, ...], int, int, str, str]] = field(default_factory=list)  # loc, line, col, code, msg

    def mark(self, loc: tuple[Any, ...], prefer_key: bool = False) -> tuple[int, int]:
        """The best (line, col) for a data path: the deepest known ancestor when the path is absent."""
        for n in range(len(loc), -1, -1):
            sub = tuple(loc[:n])
            if prefer_key and n == len(loc) and sub in self.key_marks:
                return self.key_marks[sub]
            if sub in self.value_marks:
                return self.value_marks[sub]
        return (1, 1)


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _reader_problem(text: str, err: yaml.reader.ReaderError) -> tuple[tuple[Any, ...], int, int, str, str]:
    pos = max(0, min(len(text), int(err.position)))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = err.character if isinstance(err.character, int) else ord(str(err.character)[:1] or "?")
    return ((), line, col, "yaml_syntax", f"unacceptable character #x{char:04x}")


def parse(text: str) -> Parsed:
    """Compose, walk and construct one YAML document; YAML errors become located problems."""
    out = Parsed()
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as err:
        out.problems.append(_reader_problem(text, err))
        return out
    try:
        node = loader.get_single_node()
        if node is None:
            out.problems.append(((), 1, 1, "empty_document", "the file is empty; expected a mapping with 'rules:'"))
            return out
        _walk(node, (), out, set())
        if not any(p[3] == "yaml_alias" for p in out.problems):
            out.data = loader.construct_document(node)
    except _BadValue as err:
        out.problems.append(((), *_pos(err.problem_mark), "yaml_value", str(err.problem)))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = _pos(mark) if mark is not None else (1, 1)
        msg = "; ".join(str(p) for p in (err.problem, err.context) if p)
        if err.context and err.context_mark is not None and err.problem_mark is not None:
            msg += f" started at line {err.context_mark.line + 1}"
        out.problems.append(((), line, col, "yaml_syntax", msg or "invalid YAML"))
    except yaml.reader.ReaderError as err:  # the C parser reports bad characters while parsing
        out.problems.append(_reader_problem(text, err))
    except yaml.YAMLError as err:
        out.problems.append(((), 1, 1, "yaml_syntax", str(err)))
    except RecursionError:
        out.problems.append(((), 1, 1, "yaml_too_deep", "the YAML nesting is too deep"))
    except _TooBig:
        out.problems.append(((), 1, 1, "yaml_too_big", f"more than {MAX_NODES:,} YAML nodes in one file; "
                                                       "split it into several files"))
    except (ValueError, TypeError, OverflowError) as err:  # odd scalars PyYAML fails to construct
        out.problems.append(((), 1, 1, "yaml_value", f"cannot read a YAML value: {err}"))
    finally:
        loader.dispose()
    return out


def _key_id(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value)
    return ("<complex>", id(node))


def _key_value(node: yaml.Node) -> Any:
    """The path component for a scalar key (its constructed-like value; ints stay ints)."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:int":
            try:
                return int(node.value.replace("_", ""), 0)
            except ValueError:
                return node.value
        return node.value
    return None


class _TooBig(Exception):
    pass


def _walk(node: yaml.Node, path: tuple[Any, ...], out: Parsed, seen: set[int]) -> None:
    """Record marks per path, once per node: a node met twice is an alias (or an alias cycle), refused, so
    that no document can make the walk or the schema check repeat work (`billion laughs`)."""
    if id(node) in seen:
        line, col = _pos(node.start_mark)
        out.problems.append((path, line, col, "yaml_alias",
                             f"YAML aliases are not allowed in rulebooks (this value repeats the anchored node at "
                             f"line {line}); write the value out"))
        return
    seen.add(id(node))
    if len(seen) > MAX_NODES:
        raise _TooBig
    out.value_marks.setdefault(path, _pos(node.start_mark))
    if isinstance(node, yaml.MappingNode):
        keys: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _walk(value_node, path, out, seen)
                continue
            kid, kpos = _key_id(key_node), _pos(key_node.start_mark)
            sub = (*path, _key_value(key_node))
            if kid in keys:
                first = keys[kid]
                out.problems.append((sub, *kpos, "duplicate_key",
                                     f"duplicate key {key_node.value!r} (first at {first[0]}:{first[1]})"))
                continue
            keys[kid] = kpos
            out.key_marks.setdefault(sub, kpos)
            _walk(value_node, sub, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out, seen)
