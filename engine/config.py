"""The user's lemonade-autotune settings: the on/off switch, defaults for apply / serve, the user rulebook.

Where: `$LEMONADE_AUTOTUNE_CONFIG_DIR`, else the platform's user config directory (platformdirs:
`~/.config/lemonade-autotune` on Linux). In it, `config.yaml` (every key optional) and `user-rulebook/`, the
highest rule layer (its rules must say `layer: user`). Auto-tune is on by default; `LEMONADE_AUTOTUNE=0`, a
command's `--no-autotune` or `enabled: false` switch it off, and then every answer is Lemonade's own default.
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
CONFIG_FILE = "config.yaml"
USER_RULEBOOK = "user-rulebook"
_OFF = {"0", "off", "false", "no"}
_ON = {"1", "on", "true", "yes"}
_KEYS = {"enabled": bool, "scenario": str, "lemonade": str, "lemonade_config": str, "overrides": dict}
EXAMPLE = """\
# lemonade-autotune settings (every key is optional)
enabled: true                 # false = Lemonade's own defaults everywhere (LEMONADE_AUTOTUNE=0 does the same)
scenario: chat                # chat, coding, long-context or a Lemonade bench scenario
# lemonade: http://127.0.0.1:13305    # where lemond listens (default: its config.json, else port 13305)
# lemonade_config: /var/lib/lemonade  # Lemonade's config dir (default: the platform's, see docs/integration.md)
# overrides: {ctx_size: 16384}        # like --set, for every model
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

    @property
    def user_rulebook(self) -> Path:
        return self.dir / USER_RULEBOOK

    def has_user_rulebook(self) -> bool:
        return self.user_rulebook.is_dir() and any(self.user_rulebook.rglob("*.yaml"))

    def to_dict(self) -> dict[str, Any]:
        return {"config_file": str(self.file), "config_file_exists": self.file_exists,
                "autotune": self.autotune.to_dict(), "scenario": self.scenario,
                "user_rulebook": str(self.user_rulebook) if self.has_user_rulebook() else None,
                "overrides": dict(self.overrides), "lemonade": self.lemonade,
                "lemonade_config": self.lemonade_config}


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


def _switch(value: str) -> bool:
    low = value.strip().lower()
    if low in _OFF:
        return False
    if low in _ON:
        return True
    raise UsageError(f"{ENV_SWITCH}={value!r}: expected 0/off/false/no or 1/on/true/yes")


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
                    overrides=overrides)


# ---- the engine a command or the server uses ------------------------------------------------------

def defaults_root() -> Any:
    """The recipe-default layer of the bundled rulebook (Lemonade's behaviour today)."""
    from engine.rulebook import bundled_root

    return bundled_root().joinpath("defaults")


def rulebook_roots(settings: Settings, rulebook_dirs: tuple[str, ...] = ()) -> tuple[Any, ...]:
    """What to load: recipe defaults when auto-tune is off; else the bundled rulebook (or `--rulebook` dirs)
    with the user rulebook on top."""
    from engine.rulebook import BUNDLED, bundled_root

    if not settings.autotune.enabled:
        return (defaults_root(),)
    roots: list[Any] = [bundled_root() if r == BUNDLED else r for r in rulebook_dirs] or [bundled_root()]
    if settings.has_user_rulebook():
        roots.append(settings.user_rulebook)
    return tuple(roots)


def check_user_layer(book: Rulebook, settings: Settings) -> None:
    """Every rule of the user rulebook must be `layer: user` (it is the highest layer); RulebookError if not."""
    prefix = f"{USER_RULEBOOK}/"
    bad = []
    for rule in book.rules:
        if rule.source.startswith(prefix) and rule.layer != "user":
            label, _, line = rule.source.rpartition(":")
            shown = settings.user_rulebook / label[len(prefix):]
            bad.append(LocatedError(str(shown), int(line or 1), 1, "layer", "user_layer",
                                    f"rule {rule.id!r} is in the user rulebook but says layer "
                                    f"{rule.layer!r}; rules there must say `layer: user`"))
    if bad:
        raise RulebookError(bad)


def load_book(settings: Settings, rulebook_dirs: tuple[str, ...] = ()) -> Rulebook:
    """The rulebook for these settings (validated, user layer checked)."""
    from engine.rulebook import load_rulebook

    book = load_rulebook(*rulebook_roots(settings, rulebook_dirs))
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
