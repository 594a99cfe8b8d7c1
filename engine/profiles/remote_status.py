"""Where the rulebook in force comes from (bundled / remote@N / local / defaults) and the remote's state, with why.

States: `off` (switched off), `not-configured` (no mirror), `fresh` (the last check verified the mirror within
the interval), `stale` (the active remote rulebook was verified longer ago than the interval, or the last check
was refused: a rejected or invalid update), `offline-using-cache` (the mirror could not be reached; the last good
remote rulebook is in use), `fallback-to-bundled` (no usable remote rulebook: none activated yet, pinned to
bundled, or the stored one is damaged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.profiles import policy
from engine.profiles.store import PREFIX, Store

if TYPE_CHECKING:
    from engine.config import Settings


def _mirror_configured(settings: Settings, mirror: dict[str, str]) -> bool:
    from engine.profiles.client import DEFAULT_URL

    return bool(settings.remote.url or mirror.get("url") or DEFAULT_URL)


def remote(settings: Settings, store: Store | None = None) -> dict[str, Any]:
    """The remote's state, why, and the facts behind it (active and latest version, times, mirror)."""
    store = store or Store()
    st = store.state()
    usable = st.active is not None and not st.damaged and store.problem(st.active) is None
    out: dict[str, Any] = {"active": st.active if usable else None, "pinned": st.pinned,
                           "remote_version": st.remote_version, "last_attempt": st.last_attempt,
                           "last_success": st.last_success, "next_attempt": st.next_attempt,
                           "outcome": st.outcome, "error": st.error, "failures": st.failures,
                           "mirror": st.mirror.get("url") or settings.remote.url, "installed": store.installed(),
                           "store": str(store.root)}
    name = f"{PREFIX}{st.active}"
    if not settings.remote.enabled:
        state, why = "off", f"{settings.remote.why}; the bundled rulebook is used and nothing is fetched"
    elif not usable:
        state = "fallback-to-bundled"
        if st.damaged:
            why = f"the local profiles state is damaged ({st.damaged}); the next update rebuilds it"
        elif st.active is not None:
            why = f"the stored {store.problem(st.active)}; the next update fetches it again"
        elif st.pinned:
            why = "pinned to the bundled rulebook (`engine profiles pin latest` follows the mirror again)"
        elif st.error:
            why = f"no remote rulebook could be activated yet: {st.error}"
        elif not _mirror_configured(settings, st.mirror):
            state, why = "not-configured", ("no profiles mirror is configured (this package ships no default "
                                            "mirror; docs/profiles.md)")
        else:
            why = "no remote rulebook activated yet (`engine profiles update`)"
    elif st.outcome == "offline":
        state = "offline-using-cache"
        why = f"{st.error}; using {name}, last verified {st.last_success or 'never'}"
    elif st.outcome in ("rejected", "invalid"):
        state = "stale"
        why = f"the last check was refused: {st.error}; keeping {name}, last verified {st.last_success}"
    elif policy.stale(st.last_success, settings.remote.interval_hours):
        state = "stale"
        why = (f"{name} was last verified {st.last_success or 'never'}, longer ago than the "
               f"{settings.remote.interval_hours:g} h interval; next check {st.next_attempt or 'at the next start'}")
    else:
        state = "fresh"
        extra = f" (pinned; the mirror offers {PREFIX}{st.remote_version})" if st.pinned else ""
        why = f"verified {st.last_success}: {name} is in use{extra}"
    out.update(state=state, why=why)
    return out


def origin(settings: Settings, rulebook_dirs: tuple[str, ...] = (), store: Store | None = None) -> str:
    """`defaults` (auto-tune off), `local` (--rulebook dirs), `remote@N` or `bundled`."""
    from engine.profiles.store import active_root

    if not settings.autotune.enabled:
        return "defaults"
    if rulebook_dirs:
        return "local"
    root = active_root(settings)
    return root.name if root is not None else "bundled"
