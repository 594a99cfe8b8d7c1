"""One model's saved recipe options and a recommendation -> the entry to save, and back (undo).

A key or llama-server setting the user saved is never changed: we only fill keys that are not set (lemond's
"not set" sentinels) and add flags for settings the user's `llamacpp_args` does not name. What we wrote is
recorded as *owned* — keys with their values, flags as tokens — so re-applying replaces only our own values
and undo removes exactly them (a value the user changed since is theirs and stays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.lemonade import args as largs

ARGS = "llamacpp_args"
SCALARS = ("llamacpp_backend", "ctx_size")
KEYS = (*SCALARS, ARGS)
_MISSING = object()


def is_sentinel(key: str, value: Any) -> bool:
    """lemond's "not set" (RecipeOptions): null, "", "auto", -1; for ctx_size every non-number (-1 is auto)."""
    if key == "ctx_size":
        return not isinstance(value, (int, float)) or isinstance(value, bool)
    return value is None or value in ("", "auto") or (type(value) in (int, float) and value == -1)


@dataclass(frozen=True)
class EntryPlan:
    """What one model's saved entry becomes."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]
    owned: Mapping[str, Any]  # what we own in `after`: {key: value}, llamacpp_args as a token list
    user: Mapping[str, Any] = field(default_factory=dict)  # the user's values that kept ours out
    blocked_flags: tuple[str, ...] = ()  # our flags left out because the user's args set that setting

    @property
    def changed(self) -> bool:
        return dict(self.before) != dict(self.after)

    def changes(self) -> dict[str, Any]:
        """Keys whose saved value changes: new value, or None to clear (the options endpoint's body)."""
        out: dict[str, Any] = {}
        for key in sorted(set(self.before) | set(self.after)):
            old, new = self.before.get(key, _MISSING), self.after.get(key, _MISSING)
            if old != new:
                out[key] = None if new is _MISSING else new
        return out

    def diff(self) -> list[dict[str, Any]]:
        """[{key, before, after}] with None for "not saved"."""
        return [{"key": k, "before": self.before.get(k), "after": v} for k, v in self.changes().items()]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def plan_entry(saved: Mapping[str, Any], recommended: Mapping[str, Any],
               owned: Mapping[str, Any] | None = None) -> EntryPlan:
    """Merge `recommended` ({llamacpp_backend, ctx_size, llamacpp_args: tokens}) into `saved`.

    `owned` is what an earlier apply wrote (its values still present are ours to replace)."""
    owned = dict(owned or {})
    after = dict(saved)
    now: dict[str, Any] = {}
    user: dict[str, Any] = {}
    for key in SCALARS:
        want = recommended.get(key)
        cur = saved.get(key, _MISSING)
        ours = key in owned and cur is not _MISSING and cur == owned[key]
        if want is None or is_sentinel(key, want) or (key == "ctx_size" and want == -1):
            if ours:  # the recommendation no longer sets it: take ours back
                del after[key]
            continue
        if cur is _MISSING or is_sentinel(key, cur) or ours:
            after[key] = want
            now[key] = want
        elif cur != want:
            user[key] = cur
    cur_args = saved.get(ARGS, _MISSING)
    tokens = list(recommended.get(ARGS) or ())
    if cur_args is not _MISSING and _text(cur_args) is None and not is_sentinel(ARGS, cur_args):
        user[ARGS] = cur_args  # not a string: lemond ignores it at load, we leave it alone
        blocked: tuple[str, ...] = tuple(o.flag for o in largs.check_ours(tokens))
    else:
        text = _text(cur_args) or ""
        user_text, removed = largs.remove(text, owned.get(ARGS) or ())
        merged = largs.merge(user_text, tokens)
        blocked = merged.blocked
        if merged.blocked:
            user["flags"] = list(merged.blocked)
        if (merged.added or removed) and merged.text.strip(" "):
            after[ARGS] = merged.text
        elif removed:  # ours gone and nothing left
            after.pop(ARGS, None)
        if merged.added:
            now[ARGS] = list(merged.added)
    return EntryPlan(dict(saved), after, now, user, blocked)


def undo_entry(saved: Mapping[str, Any], owned: Mapping[str, Any],
               before: Mapping[str, Any] | None = None) -> EntryPlan:
    """`saved` without what we own (values we wrote and nobody changed since); a key that held a "not set"
    value before our first apply gets that value back."""
    before = before or {}
    after = dict(saved)
    kept: dict[str, Any] = {}
    for key in SCALARS:
        if key not in owned:
            continue
        if saved.get(key, _MISSING) == owned[key]:
            if key in before:
                after[key] = before[key]
            else:
                after.pop(key, None)
        elif key in saved:
            kept[key] = saved[key]
    tokens: Sequence[str] = owned.get(ARGS) or ()
    if tokens and isinstance(saved.get(ARGS), str):
        text, removed = largs.remove(saved[ARGS], tokens)
        if len(removed) < len(tokens):
            kept["flags"] = [t for t in tokens if t not in removed and largs.is_flag(t)]
        if text.strip(" "):
            after[ARGS] = text
        elif ARGS in before:
            after[ARGS] = before[ARGS]
        else:
            after.pop(ARGS, None)
    return EntryPlan(dict(saved), after, {}, kept)
