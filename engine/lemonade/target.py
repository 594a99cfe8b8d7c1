"""Which Lemonade a command talks to: its config dir, whether a lemond serves it (then only its API is used),
and the hardware facts as that Lemonade sees them (its system-info: which backends are installed)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError
from engine.lemonade import discovery, paths
from engine.lemonade.client import LemondClient
from engine.lemonade.store import OptionsStore, atomic_write

if TYPE_CHECKING:
    from engine.config import Settings
    from facts.models import HardwareFacts

SYSTEM_INFO = "system-info.json"  # the last system-info a running lemond gave us (for when it is stopped)
ENV_STATE_DIR = "LEMONADE_AUTOTUNE_STATE_DIR"


def state_dir() -> Path:
    """lemonade-autotune's own state (records for a lemond known only by URL): `$LEMONADE_AUTOTUNE_STATE_DIR`,
    else the platform's user state dir."""
    import os

    if os.environ.get(ENV_STATE_DIR, "").strip():
        return Path(os.environ[ENV_STATE_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("lemonade-autotune", appauthor=False))


@dataclass(frozen=True)
class Target:
    """A Lemonade: its config dir (None when only a URL is known), the lemond serving it (None: stopped)."""

    home: paths.LemonadeHome | None
    found: discovery.Found | None
    url: str

    @property
    def running(self) -> bool:
        return self.found is not None and self.found.url is not None

    @property
    def mode(self) -> str:
        return "api" if self.running else "file"

    def client(self) -> LemondClient:
        assert self.found is not None and self.found.url is not None
        return LemondClient(self.found.url)

    def store(self) -> OptionsStore:
        """The lock and ownership record for this Lemonade (for a URL without a known config dir: a folder in
        our own state dir, named after the URL)."""
        if self.home is not None and self.home.config_dir.is_dir():
            return OptionsStore(self.home)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        folder = state_dir() / f"lemond-{key}"
        folder.mkdir(parents=True, exist_ok=True)
        return OptionsStore(paths.LemonadeHome(folder, f"lemonade-autotune's records for {self.url}"))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "url": self.found.url if self.running else self.url,
                "running": self.running, "how": self.found.how if self.found else "no lemond answers",
                "version": (self.found.health or {}).get("version") if self.found else None,
                "config_dir": str(self.home.config_dir) if self.home else None,
                "config_dir_why": self.home.why if self.home else None}


def locate(settings: Settings, url: str | None = None, config_dir: str | None = None) -> Target:
    """`--lemonade URL` / `--lemonade-config DIR` (else our config, else Lemonade's defaults) -> Target."""
    asked = url  # on the command line: a lemond must answer there
    url = url or settings.lemonade
    home: paths.LemonadeHome | None
    if config_dir or settings.lemonade_config or not url:
        home = paths.home(config_dir, settings.lemonade_config)
    else:
        found_dir = discovery.config_dir_of(url)
        home = paths.LemonadeHome(found_dir, f"the config dir of the lemond on {url}") if found_dir else None
        if home is None:  # the platform's default dir, when its config.json names this URL
            with contextlib.suppress(UsageError):
                default = paths.home(None, None)
                if LemondClient(default.url()).url == LemondClient(url).url:
                    home = default
    found = discovery.find(home, url)
    if found is None and (asked or home is None):  # asked for a running lemond: never fall back to a file
        raise UsageError(f"no lemond answers at {url}; start it, or pass --lemonade-config DIR (without "
                         "--lemonade) to write its options file while it is stopped")
    return Target(home, found, url or (home.url() if home else ""))


def running_reason(home: paths.LemonadeHome) -> str | None:
    """Why the file of `home` must not be written now (a lemond serves it), or None."""
    found = discovery.find(home, None)
    return found.how if found is not None else None


def hardware(target: Target, system_info: str | None = None) -> tuple[HardwareFacts, str]:
    """(facts, where from): `--system-info FILE`, else the running lemond's system-info (saved for later), else
    the one saved the last time a lemond for this dir ran. Without any, nothing can say which backends are
    installed: UsageError."""
    from facts.lemonade import from_system_info

    if system_info:
        from engine.inputs import hardware as read_hardware

        return read_hardware(system_info), f"--system-info {system_info}"
    if target.running:
        doc = target.client().system_info()
        if target.home is not None and target.home.config_dir.is_dir():
            with contextlib.suppress(OSError):
                target.home.state_dir.mkdir(exist_ok=True)
                atomic_write(target.home.state_dir / SYSTEM_INFO, json.dumps(doc, indent=1).encode())
        return (from_system_info(doc, source=f"system-info:{target.found.url}/v1/system-info"),
                "lemond's GET /v1/system-info")
    if target.home is not None:
        saved = paths.read_json_file(target.home.state_dir / SYSTEM_INFO, "the saved lemond system-info")
        if isinstance(saved, dict):
            where = target.home.state_dir / SYSTEM_INFO
            return from_system_info(saved, source=f"system-info:{where}"), f"saved system-info {where}"
    raise UsageError("lemond is not running and lemonade-autotune has not seen its system-info yet, so it cannot "
                     "tell which backends this Lemonade has installed; start lemond once (then apply goes through "
                     "its API and remembers the system-info), or pass --system-info FILE "
                     "(curl http://127.0.0.1:13305/v1/system-info > system-info.json)")
