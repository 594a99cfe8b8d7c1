"""Where Lemonade keeps its files: its config dir per platform (with the packaged service's /var/lib/lemonade),
config.json, user_models.json, and the URL a lemond over that dir listens on.

The rules are lemond's own `get_config_dir` (src/cpp/server/utils/platform/path_{linux,macos,windows}.cpp at
lemonade-sdk/lemonade e385039): Linux `$STATE_DIRECTORY` > `$XDG_CONFIG_HOME/lemonade` > `~/.config/lemonade`;
macOS `$XDG_CONFIG_HOME/lemonade` > `~/.config/lemonade` (root: `/Library/Application Support/lemonade/.config`);
Windows `%USERPROFILE%\\.config\\lemonade`. The packaged systemd unit (data/lemond.service.in) runs with
`StateDirectory=lemonade`, i.e. `/var/lib/lemonade`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UsageError
from facts.documents import JSONProblem, parse_json

PACKAGED_SERVICE_DIR = Path("/var/lib/lemonade")
DEFAULT_PORT = 13305  # resources/defaults.json "port"
STATE_SUBDIR = "lemonade-autotune"  # our own files inside Lemonade's config dir (lemond never reads them)
MAX_JSON = 64 << 20


def default_config_dir(env: Mapping[str, str] | None = None, platform: str | None = None,
                       euid: int | None = None) -> Path | None:
    """The config dir a lemond started without one uses on this platform (None when it cannot tell)."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    get = lambda k: env.get(k, "").strip()  # noqa: E731
    if platform.startswith("win"):
        return Path(get("USERPROFILE")) / ".config" / "lemonade" if get("USERPROFILE") else None
    if platform == "darwin":
        if get("XDG_CONFIG_HOME"):
            return Path(get("XDG_CONFIG_HOME")) / "lemonade"
        root = (os.geteuid() if euid is None and hasattr(os, "geteuid") else euid) == 0
        if not root and get("HOME"):
            return Path(get("HOME")) / ".config" / "lemonade"
        return Path("/Library/Application Support/lemonade/.config")
    for key, tail in (("STATE_DIRECTORY", ()), ("XDG_CONFIG_HOME", ("lemonade",)), ("HOME", (".config", "lemonade"))):
        if get(key):
            return Path(get(key), *tail)
    return None


def _holds_lemonade(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "recipe_options.json").is_file()


def find_config_dir(explicit: str | None = None, configured: str | None = None,
                    env: Mapping[str, str] | None = None, platform: str | None = None) -> tuple[Path, str]:
    """(Lemonade config dir, why): `--lemonade-config` > `lemonade_config` in our config > the user's default
    dir when it holds Lemonade files > the packaged service's /var/lib/lemonade when it does > the default."""
    if explicit:
        return Path(explicit).expanduser(), "--lemonade-config"
    if configured:
        return Path(configured).expanduser(), "lemonade_config in the lemonade-autotune config"
    user = default_config_dir(env, platform)
    if user is not None and _holds_lemonade(user):
        return user, "the platform's Lemonade config dir"
    if (platform or sys.platform).startswith("linux") and _holds_lemonade(PACKAGED_SERVICE_DIR):
        return PACKAGED_SERVICE_DIR, "the packaged lemond service's dir (systemd StateDirectory)"
    if user is None:
        raise UsageError("cannot tell where Lemonade keeps its config (HOME / USERPROFILE is not set); "
                         "pass --lemonade-config DIR")
    return user, "the platform's Lemonade config dir (nothing there yet)"


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file Lemonade wrote, parsed; None when it does not exist; UsageError (path:line:col) when it is
    not valid JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) > MAX_JSON:
        raise UsageError(f"{path}: {len(raw)} bytes is too large for {what}")
    try:
        return parse_json(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: {what} is not UTF-8 ({err.reason})") from None
    except JSONProblem as err:
        raise UsageError(f"{err.location(str(path))}: {what} is not valid JSON ({err.message.removeprefix('invalid JSON: ')}); fix or "
                         "remove it (lemond itself reads a malformed file as empty)") from None


@dataclass(frozen=True)
class LemonadeHome:
    """One Lemonade config dir and what is in it."""

    config_dir: Path
    why: str = "given"

    @property
    def recipe_options(self) -> Path:
        return self.config_dir / "recipe_options.json"

    @property
    def state_dir(self) -> Path:
        """lemonade-autotune's own files for this Lemonade: lock, ownership record, backups, system-info."""
        return self.config_dir / STATE_SUBDIR

    def config_json(self) -> dict[str, Any]:
        data = read_json_file(self.config_dir / "config.json", "Lemonade's config.json")
        return data if isinstance(data, dict) else {}

    def user_models(self) -> dict[str, Any]:
        data = read_json_file(self.config_dir / "user_models.json", "Lemonade's user_models.json")
        return data if isinstance(data, dict) else {}

    def extra_models_dir(self) -> Path | None:
        value = self.config_json().get("extra_models_dir")
        return Path(value).expanduser() if isinstance(value, str) and value.strip() else None

    def url(self) -> str:
        """Where a lemond over this dir listens: config.json host/port (a wildcard host means loopback)."""
        cfg = self.config_json()
        port = cfg.get("port")
        port = port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else DEFAULT_PORT
        host = cfg.get("host") if isinstance(cfg.get("host"), str) else ""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def to_dict(self) -> dict[str, Any]:
        return {"config_dir": str(self.config_dir), "why": self.why,
                "recipe_options": str(self.recipe_options), "state_dir": str(self.state_dir)}


def home(explicit: str | None = None, configured: str | None = None,
         env: Mapping[str, str] | None = None) -> LemonadeHome:
    path, why = find_config_dir(explicit, configured, env)
    return LemonadeHome(path, why)
