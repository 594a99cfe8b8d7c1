"""The user's lemonade-autotune settings: the on/off switch, defaults for apply / serve, the user rulebook.

Where: `$LEMONADE_AUTOTUNE_CONFIG_DIR`, else the platform's user config directory (platformdirs:
`~/.config/lemonade-autotune` on Linux). In it, `config.yaml` (every key optional) and `user-rulebook/`, the
highest rule layer (its rules must say `layer: user`). Auto-tune is on by default; `LEMONADE_AUTOTUNE=0`, a
command's `--no-autotune` or `enabled: false` switch it off, and then every answer is Lemonade's own default.
The `remote:` mapping configures signed remote rulebooks (engine.profiles, docs/profiles.md); an activated remote
rulebook replaces the bundled one, `LEMONADE_AUTOTUNE_REMOTE=0` or `remote: {enabled: false}` switch it off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LocatedError, RulebookError, UsageError

if TYPE_CHECKING:
    from engine.ir import Rulebook
    from engine.session import Engine

ENV_SWITCH = "LEMONADE_AUTOTUNE"
ENV_CONFIG_DIR = "LEMONADE_AUTOTUNE_CONFIG_DIR"
ENV_REMOTE = "LEMONADE_AUTOTUNE_REMOTE"
CONFIG_FILE = "config.yaml"
USER_RULEBOOK = "user-rulebook"
LOCAL_RULEBOOK = "local-rulebook"  # rules `engine learn` saved (layer local; engine.adaptive.learn)
_OFF = {"0", "off", "false", "no"}
_ON = {"1", "on", "true", "yes"}
_KEYS = {"enabled": bool, "scenario": str, "lemonade": str, "lemonade_config": str, "overrides": dict,
         "remote": dict}
# `remote:` keys -> (type, default); numbers are checked against their ranges in _remote()
_REMOTE_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "enabled": ((bool,), True), "url": ((str,), None), "trusted_root": ((str,), None),
    "interval_hours": ((int, float), 24.0), "timeout_s": ((int, float), 3.0)}
EXAMPLE = """\
# lemonade-autotune settings (every key is optional)
enabled: true                 # false = Lemonade's own defaults everywhere (LEMONADE_AUTOTUNE=0 does the same)
scenario: chat                # chat, coding, long-context or a Lemonade bench scenario
# lemonade: http://127.0.0.1:13305    # where lemond listens (default: its config.json, else port 13305)
# lemonade_config: /var/lib/lemonade  # Lemonade's config dir (default: the platform's, see docs/integration.md)
# overrides: {ctx_size: 16384}        # like --set, for every model
# remote:                             # signed remote rulebooks (docs/profiles.md); no mirror is configured by default
#   url: https://profiles.example.org/  # a TUF repository: metadata/ and targets/ below it
#   trusted_root: /etc/lemonade-autotune/root.json  # its root.json (default: the one shipped, if any)
#   interval_hours: 24                # refresh at start when the last check is older (+-20 % jitter)
#   timeout_s: 3                      # network timeout per request
#   enabled: true                     # false (or LEMONADE_AUTOTUNE_REMOTE=0): bundled rulebook, no network
"""


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$LEMONADE_AUTOTUNE_CONFIG_DIR`, else the platform's user config dir for lemonade-autotune."""
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG_DIR, "").strip():
        return Path(env[ENV_CONFIG_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("lemonade-autotune", appauthor=False))


@dataclass(frozen=True)
class Autotune:
    """On or off, and why (which switch decided)."""

    enabled: bool
    why: str
    source: str  # "default" | "flag" | "env" | "config"

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "why": self.why, "source": self.source}


@dataclass(frozen=True)
class Remote:
    """Remote rulebooks: on or off (and why), the mirror, its trusted root, the refresh interval and timeout."""

    enabled: bool = True
    why: str = "on (the default; LEMONADE_AUTOTUNE_REMOTE=0 or remote: {enabled: false} switch it off)"
    url: str | None = None
    trusted_root: str | None = None
    interval_hours: float = 24.0
    timeout_s: float = 3.0

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "why": self.why, "url": self.url, "trusted_root": self.trusted_root,
                "interval_hours": self.interval_hours, "timeout_s": self.timeout_s}


@dataclass(frozen=True)
class Settings:
    """The settings in force: the config file's values, the switch, where the user rulebook is."""

    dir: Path
    file: Path
    file_exists: bool
    autotune: Autotune
    scenario: str = "chat"
    lemonade: str | None = None
    lemonade_config: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    remote: Remote = field(default_factory=Remote)

    @property
    def user_rulebook(self) -> Path:
        return self.dir / USER_RULEBOOK

    def has_user_rulebook(self) -> bool:
        return self.user_rulebook.is_dir() and any(self.user_rulebook.rglob("*.yaml"))

    @property
    def local_rulebook(self) -> Path:
        return self.dir / LOCAL_RULEBOOK

    def has_local_rulebook(self) -> bool:
        return self.local_rulebook.is_dir() and any(self.local_rulebook.rglob("*.yaml"))

    def to_dict(self) -> dict[str, Any]:
        return {"config_file": str(self.file), "config_file_exists": self.file_exists,
                "autotune": self.autotune.to_dict(), "scenario": self.scenario,
                "user_rulebook": str(self.user_rulebook) if self.has_user_rulebook() else None,
                "local_rulebook": str(self.local_rulebook) if self.has_local_rulebook() else None,
                "overrides": dict(self.overrides), "lemonade": self.lemonade,
                "lemonade_config": self.lemonade_config, "remote": self.remote.to_dict()}


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """config.yaml -> (values, line:col per key); UsageError naming file:line and the key when it is wrong."""
    from engine.rulebook import parse_yaml as parse

    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err.reason}); save it as UTF-8") from None
    if not text.strip():
        return {}, {}
    parsed = parse(text)
    if parsed.problems:
        _loc, line, col, _code, msg = parsed.problems[0]
        raise UsageError(f"{path}:{line}:{col}: {msg}")
    data = parsed.data
    if not isinstance(data, dict):
        raise UsageError(f"{path}:1:1: expected a mapping of settings (see `engine status` for the keys), "
                         f"got {type(data).__name__}")
    marks = {k: parsed.mark((k,), prefer_key=True) for k in data}
    for key, value in data.items():
        line, col = marks[key]
        if key not in _KEYS:
            raise UsageError(f"{path}:{line}:{col} {key}: unknown setting; known: {', '.join(_KEYS)}")
        want = _KEYS[key]
        if value is not None and not (isinstance(value, want) and not (want is not bool and isinstance(value, bool))):
            raise UsageError(f"{path}:{line}:{col} {key}: expected {want.__name__}, got {value!r}")
    return data, marks


def _switch(value: str, name: str = ENV_SWITCH) -> bool:
    low = value.strip().lower()
    if low in _OFF:
        return False
    if low in _ON:
        return True
    raise UsageError(f"{name}={value!r}: expected 0/off/false/no or 1/on/true/yes")


def _remote(data: Mapping[str, Any], marks: Mapping[str, tuple[int, int]], path: Path,
            env: Mapping[str, str]) -> Remote:
    """The `remote:` settings, checked key by key; `$LEMONADE_AUTOTUNE_REMOTE` decides on/off over the file."""
    raw = data.get("remote") or {}
    line, col = marks.get("remote", (1, 1))
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _REMOTE_KEYS:
            raise UsageError(f"{path}:{line}:{col} remote.{key}: unknown setting; known: {', '.join(_REMOTE_KEYS)}")
        types, _default = _REMOTE_KEYS[key]
        if value is None:
            continue
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise UsageError(f"{path}:{line}:{col} remote.{key}: expected {types[0].__name__}, got {value!r}")
        values[key] = value
    for key, low, high in (("interval_hours", 0.01, 24 * 365), ("timeout_s", 0.1, 120)):
        if key in values and not low <= float(values[key]) <= high:
            raise UsageError(f"{path}:{line}:{col} remote.{key}: {values[key]!r} is outside {low}..{high}")
        if key in values:
            values[key] = float(values[key])
    if values.get("trusted_root"):
        root = Path(values["trusted_root"]).expanduser()
        values["trusted_root"] = str(root if root.is_absolute() else (path.parent / root))
    if env.get(ENV_REMOTE, "").strip():
        on = _switch(env[ENV_REMOTE], ENV_REMOTE)
        why = f"{'on' if on else 'off'}: {ENV_REMOTE}={env[ENV_REMOTE].strip()}"
    elif "enabled" in values:
        on = bool(values["enabled"])
        why = f"{'on' if on else 'off'}: remote.enabled: {str(on).lower()} in {path}:{line}"
    else:
        on, why = True, Remote.why
    values.pop("enabled", None)
    return Remote(enabled=on, why=why, **values)


def load(*, no_autotune: bool = False, env: Mapping[str, str] | None = None) -> Settings:
    """The settings in force: `--no-autotune` > `$LEMONADE_AUTOTUNE` > `enabled:` in config.yaml > on."""
    env = os.environ if env is None else env
    where = config_dir(env)
    path = where / CONFIG_FILE
    data, marks = _read_file(path) if path.is_file() else ({}, {})
    if no_autotune:
        state = Autotune(False, "off: --no-autotune was given", "flag")
    elif env.get(ENV_SWITCH, "").strip():
        on = _switch(env[ENV_SWITCH])
        state = Autotune(on, f"{'on' if on else 'off'}: {ENV_SWITCH}={env[ENV_SWITCH].strip()}", "env")
    elif data.get("enabled") is not None:
        on = bool(data["enabled"])
        line, _ = marks["enabled"]
        state = Autotune(on, f"{'on' if on else 'off'}: enabled: {str(on).lower()} in {path}:{line}", "config")
    else:
        state = Autotune(True, "on (the default; LEMONADE_AUTOTUNE=0 or --no-autotune switch it off)", "default")
    overrides = dict(data.get("overrides") or {})
    if overrides:
        from engine.recommend import validate_overrides

        try:
            overrides = validate_overrides(overrides)
        except UsageError as err:
            line, col = marks["overrides"]
            raise UsageError(f"{path}:{line}:{col} overrides: {err}") from None
    scenario = data.get("scenario") or "chat"
    if data.get("scenario"):
        from engine import scenarios

        try:
            scenarios.check(scenario)
        except (UsageError, ValueError) as err:
            line, col = marks["scenario"]
            raise UsageError(f"{path}:{line}:{col} scenario: {err}") from None
    return Settings(dir=where, file=path, file_exists=path.is_file(), autotune=state, scenario=scenario,
                    lemonade=data.get("lemonade"), lemonade_config=data.get("lemonade_config"),
                    overrides=overrides, remote=_remote(data, marks, path, env))


# ---- the engine a command or the server uses ------------------------------------------------------

def defaults_root() -> Any:
    """The recipe-default layer of the bundled rulebook (Lemonade's behaviour today)."""
    from engine.rulebook import bundled_root

    return bundled_root().joinpath("defaults")


def rulebook_roots(settings: Settings, rulebook_dirs: tuple[str, ...] = (), *,
                   refresh: bool = True) -> tuple[Any, ...]:
    """What to load: recipe defaults when auto-tune is off; else `--rulebook` dirs, or the active remote
    rulebook (signed, linted, engine.profiles) when remote rulebooks are on and one was activated, or the
    bundled rulebook; the user rulebook on top. With `refresh`, a remote refresh that is due starts in the
    background (this start uses the last good rulebook; the next one sees what it activates)."""
    from engine.rulebook import BUNDLED, bundled_root

    if not settings.autotune.enabled:
        return (defaults_root(),)
    roots: list[Any] = [bundled_root() if r == BUNDLED else r for r in rulebook_dirs]
    if not roots:
        from engine.profiles import store

        active = store.active_root(settings)
        roots.append(active if active is not None else bundled_root())
        if refresh and settings.remote.enabled:
            from engine.profiles import refresher

            refresher.start_if_due(settings)
    if settings.has_local_rulebook():  # what `engine learn` saved, under the user's own rules
        roots.append(settings.local_rulebook)
    if settings.has_user_rulebook():
        roots.append(settings.user_rulebook)
    return tuple(roots)


def custom_book(settings: Settings) -> bool:
    """Whether the rulebook in force is other than the bundled one: auto-tune off, a user rulebook, or an active
    remote rulebook (a due remote refresh starts in the background, as in rulebook_roots)."""
    from engine.rulebook import bundled_root

    roots = rulebook_roots(settings)
    return len(roots) != 1 or roots[0] != bundled_root()


def check_user_layer(book: Rulebook, settings: Settings) -> None:
    """Every rule of the user rulebook must be `layer: user` (it is the highest layer), every rule of the local
    rulebook `layer: local`; RulebookError if not."""
    bad = []
    for folder, root, layer in ((USER_RULEBOOK, settings.user_rulebook, "user"),
                                (LOCAL_RULEBOOK, settings.local_rulebook, "local")):
        prefix = f"{folder}/"
        for rule in book.rules:
            if rule.source.startswith(prefix) and rule.layer != layer:
                label, _, line = rule.source.rpartition(":")
                shown = root / label[len(prefix):]
                bad.append(LocatedError(str(shown), int(line or 1), 1, "layer", f"{layer}_layer",
                                        f"rule {rule.id!r} is in the {layer} rulebook but says layer "
                                        f"{rule.layer!r}; rules there must say `layer: {layer}`"))
    if bad:
        raise RulebookError(bad)


def load_book(settings: Settings, rulebook_dirs: tuple[str, ...] = (), *, refresh: bool = True) -> Rulebook:
    """The rulebook for these settings (validated, user layer checked); `refresh` as in rulebook_roots."""
    from engine.rulebook import load_rulebook

    book = load_rulebook(*rulebook_roots(settings, rulebook_dirs, refresh=refresh))
    check_user_layer(book, settings)
    return book


def make_engine(settings: Settings, rulebook_dirs: tuple[str, ...] = (), evaluator: str | None = None) -> Engine:
    """An Engine over these settings' rulebook."""
    from engine.session import Engine

    return Engine(load_book(settings, rulebook_dirs), evaluator=evaluator)


def recommend_kwargs(settings: Settings, overrides: Mapping[str, Any] | None = None,
                     memory_fit: bool = True) -> dict[str, Any]:
    """`Engine.recommend` keywords: config overrides under command-line ones; off = no overrides, no memory
    fit (exactly Lemonade's defaults)."""
    if not settings.autotune.enabled:
        return {"overrides": {}, "memory_fit": False}
    return {"overrides": {**settings.overrides, **(overrides or {})}, "memory_fit": memory_fit}
