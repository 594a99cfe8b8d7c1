"""`llamacpp_args` as lemond reads it: split and join, the flag allowlist check, and the flag-by-flag merge in
which the user's flags always win.

Splitting follows lemond's `parse_custom_args` (custom_args.h): tokens are separated by spaces outside single or
double quotes, and the quotes are dropped. We emit tokens as a list and join them with quotes only where a token
holds a space. The merge knows llama-server's other spellings of a setting (`-ngl` = `--gpu-layers` =
`--n-gpu-layers`, `-kvu` / `--no-kv-unified`, …; from `llama-server --help`, llama.cpp 0c1e570), so a user's
`--threads 4` keeps our `-t 2` out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from engine.errors import InternalError

# spellings of one llama-server setting (negations included): a user flag in a group blocks ours in it
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("-t", "--threads"), ("-b", "--batch-size"), ("-ub", "--ubatch-size"), ("-fa", "--flash-attn"),
    ("-ctk", "--cache-type-k"), ("-ctv", "--cache-type-v"), ("-ngl", "--gpu-layers", "--n-gpu-layers"),
    ("-ncmoe", "--n-cpu-moe", "-cmoe", "--cpu-moe"),  # both say where MoE experts live
    ("-np", "--parallel"), ("-kvu", "--kv-unified", "-no-kvu", "--no-kv-unified"),
    ("--mmap", "--no-mmap", "--mlock", "-lm", "--load-mode", "-dio", "--direct-io"),
    ("-cb", "--cont-batching", "-nocb", "--no-cont-batching"), ("--context-shift", "--no-context-shift"),
    ("-sm", "--split-mode"), ("-ts", "--tensor-split"), ("-mg", "--main-gpu"), ("-fit", "--fit"),
    ("-kvo", "--kv-offload", "-nkvo", "--no-kv-offload"), ("--op-offload", "--no-op-offload"),
    ("--warmup", "--no-warmup"), ("--swa-full",), ("--numa",), ("--poll",), ("--prio",), ("--cache-reuse",),
)
_SETTING = {flag: group[0] for group in _GROUPS for flag in group}
# what llama.cpp's --fit places itself: with the user's `--fit on` we add none of these
_PLACEMENT = frozenset({"-ngl", "-ncmoe", "-ts"})
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.,:=+/-]+")
_NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def split(text: str) -> list[str]:
    """lemond's split: spaces outside quotes separate tokens, quotes are dropped."""
    out: list[str] = []
    cur, quote = "", ""
    for ch in text:
        if not quote and ch in "\"'":
            quote = ch
        elif quote and ch == quote:
            quote = ""
        elif not quote and ch == " ":
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def join(tokens: Iterable[str]) -> str:
    """Tokens as one `llamacpp_args` string that `split` turns back into the same tokens."""
    parts = []
    for token in tokens:
        if not token:
            raise InternalError("an empty llama-server argument cannot be written")
        if " " not in token and '"' not in token and "'" not in token:
            parts.append(token)
        elif '"' not in token:
            parts.append(f'"{token}"')
        elif "'" not in token:
            parts.append(f"'{token}'")
        else:
            raise InternalError(f"llama-server argument {token!r} holds both quote characters")
    return " ".join(parts)


def setting(flag: str) -> str:
    """The setting a flag spelling belongs to (its group's first spelling; itself when unknown)."""
    return _SETTING.get(flag, flag)


def is_flag(token: str) -> bool:
    return token.startswith("-") and not _NEGATIVE_NUMBER.fullmatch(token)


@dataclass(frozen=True)
class Option:
    """One flag with its values, as given (`--x=v` keeps `--x` as flag and `v` as value)."""

    flag: str
    values: tuple[str, ...]

    @property
    def tokens(self) -> tuple[str, ...]:
        return (self.flag, *self.values)


def options(tokens: Sequence[str]) -> list[Option]:
    """A user's tokens grouped the way lemond groups them: a value belongs to the flag before it."""
    out: list[Option] = []
    for token in tokens:
        if is_flag(token):
            flag, eq, value = token.partition("=")
            out.append(Option(flag, (value,) if eq else ()))
        elif out:
            out[-1] = Option(out[-1].flag, (*out[-1].values, token))
        else:
            out.append(Option("", (token,)))  # a stray value before any flag: kept, never matched
    return out


@lru_cache(maxsize=1)
def arity() -> dict[str, int]:
    """How many values each flag lemonade-autotune may write takes: its vocabulary's flags and the
    extra-argument allowlist (engine.recipes.llamacpp.flags), nothing else."""
    from engine.recipes.llamacpp import flags

    out: dict[str, int] = {}
    for spec in flags.SPECS:
        if spec.name == "extra_args" or not spec.flag:
            continue
        if spec.name == "mmap":
            out["--mmap"] = out["--no-mmap"] = 0
        elif spec.name == "kv_unified":
            out["-kvu"] = out["--no-kv-unified"] = 0
        else:
            out[spec.flag] = 1
    for flag, (kind, _backends) in flags.EXTRA_ARGS.items():
        out[flag] = 0 if kind is None else 1
    assert not set(out) & flags.RESERVED_FLAGS
    return out


def check_ours(tokens: Sequence[str]) -> list[Option]:
    """Our tokens as options; InternalError when one is not allowlisted, is Lemonade-reserved, lacks its
    value or is not a plain word (the last line of defence before anything is written)."""
    from engine.recipes.llamacpp.flags import RESERVED_FLAGS

    known = arity()
    out: list[Option] = []
    i = 0
    while i < len(tokens):
        flag = tokens[i]
        if flag.split("=", 1)[0] in RESERVED_FLAGS:
            raise InternalError(f"refusing to write {flag!r}: Lemonade reserves it")
        if flag not in known:
            raise InternalError(f"refusing to write {flag!r}: not an allowlisted llama-server flag")
        n = known[flag]
        values = tuple(tokens[i + 1:i + 1 + n])
        if len(values) < n or any(not _SAFE_TOKEN.fullmatch(v) or is_flag(v) for v in values):
            raise InternalError(f"refusing to write {flag!r} with value(s) {values!r}")
        out.append(Option(flag, values))
        i += 1 + n
    return out


def _fit_on(user: Sequence[Option]) -> bool:
    return any(setting(o.flag) == "-fit" and (not o.values or o.values[0] == "on") for o in user)


@dataclass(frozen=True)
class Merged:
    """Our options merged into a user's args: the text, what we added, what the user's flags kept out."""

    text: str
    added: tuple[str, ...]  # our tokens now in `text`
    blocked: tuple[str, ...]  # our flags left out because the user set that setting


def merge(user_text: str, ours: Sequence[str]) -> Merged:
    """The user's text verbatim, then each of our options whose setting the user does not set."""
    user = options(split(user_text))
    taken = {setting(o.flag) for o in user}
    fit = _fit_on(user)
    added: list[str] = []
    blocked: list[str] = []
    for opt in check_ours(ours):
        s = setting(opt.flag)
        if s in taken or (fit and s in _PLACEMENT):
            blocked.append(opt.flag)
            continue
        taken.add(s)
        added.extend(opt.tokens)
    text = user_text
    if added:
        text = f"{user_text.rstrip(' ')} {join(added)}" if user_text.strip(" ") else join(added)
    return Merged(text, tuple(added), tuple(blocked))


def remove(text: str, owned: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """`text` without the options we own that are still there unchanged; (new text, tokens removed).

    When our tokens are still the exact tail we appended, the user's text before them comes back verbatim."""
    if not owned:
        return text, ()
    tail = join(owned)
    if text == tail:
        return "", tuple(owned)
    if text.endswith(" " + tail):
        return text[: -len(tail) - 1], tuple(owned)
    mine = {o.tokens for o in check_ours(owned)}
    kept: list[str] = []
    removed: list[str] = []
    for opt in options(split(text)):
        if opt.tokens in mine:
            mine.discard(opt.tokens)
            removed.extend(opt.tokens)
        else:
            kept.extend(opt.tokens if opt.flag else opt.values)
    if not removed:
        return text, ()
    return join(kept), tuple(removed)
