"""The job system's expression language for the fake lemond: `${path}` references, `when`/`branch` conditions
(Lemonade's docs/dev/job-expression-language.md, include/lemon/jobs/job_expr.h)."""

from __future__ import annotations

import json
import re
from typing import Any


class JobError(Exception):
    """A job request or step failed; `status` is the HTTP status lemond answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def resolve_path(path: str, ctx: Any) -> Any:
    cur = ctx
    for seg in path.split("."):
        if isinstance(cur, dict) and seg in cur:
            cur = cur[seg]
        elif isinstance(cur, list) and re.fullmatch(r"\d+", seg) and int(seg) < len(cur):
            cur = cur[int(seg)]
        else:
            raise JobError(400, "unknown reference: ${" + path + "}")
    return cur


def stringify(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:f}"  # std::to_string(double)
    return "" if v is None else json.dumps(v, separators=(",", ":"))


def truthy(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if _is_num(v):
        return v != 0
    return bool(v)  # "", None, [], {} are falsy


_TOKEN = re.compile(r"\s*(?:(\$\{)|(['\"])|(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z][A-Za-z0-9_]*)"
                    r"|(&&|\|\||==|!=|<=|>=|[!<>+\-*/()]))")


def tokenize(s: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(s):
        if s[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(s, i)
        if not m:
            raise JobError(400, f"unexpected character '{s[i]}' in expression")
        ref, quote, num, word, op = m.groups()
        if ref:
            close = s.find("}", m.end())
            if close < 0:
                raise JobError(400, "unterminated ${ in expression")
            out.append(("ref", s[m.end():close]))
            i = close + 1
        elif quote:
            j, lit = m.end(), []
            while j < len(s) and s[j] != quote:
                if s[j] == "\\" and j + 1 < len(s):
                    lit.append(s[j + 1])
                    j += 2
                else:
                    lit.append(s[j])
                    j += 1
            if j >= len(s):
                raise JobError(400, "unterminated string in expression")
            out.append(("str", "".join(lit)))
            i = j + 1
        elif num:
            out.append(("num", float(num)))
            i = m.end()
        elif word:
            if word not in ("true", "false", "null"):
                raise JobError(400, f"unexpected identifier '{word}' in expression")
            out.append(("lit", {"true": True, "false": False, "null": None}[word]))
            i = m.end()
        else:
            out.append(("op", op))
            i = m.end()
    out.append(("end", None))
    return out


class _Parser:
    """Recursive descent over the grammar in job-expression-language.md (no short-circuit, no chaining)."""

    def __init__(self, tokens: list[tuple[str, Any]], ctx: Any, syntax_only: bool = False) -> None:
        self.toks, self.ctx, self.syntax_only, self.pos = tokens, ctx, syntax_only, 0

    def parse(self) -> Any:
        v = self.or_()
        if self.toks[self.pos][0] != "end":
            raise JobError(400, "trailing tokens in expression")
        return v

    def accept(self, op: str) -> bool:
        if self.toks[self.pos] == ("op", op):
            self.pos += 1
            return True
        return False

    def num(self, v: Any, what: str) -> float:
        if not _is_num(v):
            if self.syntax_only:
                return 0.0
            raise JobError(400, f"expected a number for {what}")
        return float(v)

    def or_(self) -> Any:
        left = self.and_()
        while self.accept("||"):
            right = self.and_()
            left = truthy(left) or truthy(right)
        return left

    def and_(self) -> Any:
        left = self.not_()
        while self.accept("&&"):
            right = self.not_()
            left = truthy(left) and truthy(right)
        return left

    def not_(self) -> Any:
        return (not truthy(self.not_())) if self.accept("!") else self.cmp()

    def cmp(self) -> Any:
        left = self.add()
        for op in ("==", "!=", "<=", ">=", "<", ">"):
            if self.accept(op):
                return self.compare(op, left, self.add())
        return left

    def add(self) -> Any:
        left = self.mul()
        while self.toks[self.pos] in (("op", "+"), ("op", "-")):
            op = self.toks[self.pos][1]
            self.pos += 1
            right = self.mul()
            left = self.num(left, op) + self.num(right, op) if op == "+" else self.num(left, op) - self.num(right, op)
        return left

    def mul(self) -> Any:
        left = self.unary()
        while self.toks[self.pos] in (("op", "*"), ("op", "/")):
            op = self.toks[self.pos][1]
            self.pos += 1
            right = self.unary()
            if op == "*":
                left = self.num(left, "*") * self.num(right, "*")
            elif self.num(right, "/") == 0.0:
                if not self.syntax_only:
                    raise JobError(400, "division by zero in expression")
                left = 0.0
            else:
                left = self.num(left, "/") / self.num(right, "/")
        return left

    def unary(self) -> Any:
        return -self.num(self.unary(), "unary -") if self.accept("-") else self.primary()

    def primary(self) -> Any:
        kind, value = self.toks[self.pos]
        if kind in ("num", "str", "lit"):
            self.pos += 1
            return value
        if kind == "ref":
            self.pos += 1
            return None if self.syntax_only else resolve_path(value, self.ctx)
        if self.accept("("):
            v = self.or_()
            if not self.accept(")"):
                raise JobError(400, "missing ) in expression")
            return v
        raise JobError(400, "unexpected token in expression")

    def compare(self, op: str, a: Any, b: Any) -> bool:
        if op in ("==", "!="):
            same = (a == b) and (isinstance(a, bool) == isinstance(b, bool))
            return same if op == "==" else not same
        if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if self.syntax_only:
            return False
        raise JobError(400, "cannot order-compare these operand types")


def eval_condition(expr: str, ctx: Any) -> bool:
    return True if not expr else truthy(_Parser(tokenize(expr), ctx).parse())


def check_syntax(expr: str) -> str:
    try:
        if expr:
            _Parser(tokenize(expr), None, syntax_only=True).parse()
    except JobError as err:
        return str(err)
    return ""


def resolve_refs(value: Any, ctx: Any) -> Any:
    """`${path}` in params: a whole-string reference keeps its JSON type, embedded ones are interpolated."""
    if isinstance(value, dict):
        return {k: resolve_refs(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, ctx) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    if re.fullmatch(r"\$\{[^}]*\}", value):
        return resolve_path(value[2:-1], ctx)
    return re.sub(r"\$\{([^}]*)\}", lambda m: stringify(resolve_path(m.group(1), ctx)), value)
