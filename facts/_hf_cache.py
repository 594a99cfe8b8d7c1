"""Find a registry model's already-downloaded GGUF in the Hugging Face cache Lemonade downloads into."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


def hub_cache(env: Mapping[str, str] | None = None) -> Path:
    """The hub cache directory, resolved as huggingface_hub does: HF_HUB_CACHE, HF_HOME/hub,
    XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def downloaded_gguf(checkpoint: str, env: Mapping[str, str] | None = None, *, component: bool = False
                    ) -> Path | None:
    """The single-file GGUF of `owner/repo:VARIANT` in the hub cache, or None.

    VARIANT is a quant tag (any GGUF whose name contains it, projector files excluded) or a file name.
    Split models (`-00001-of-00003.gguf`) are skipped: their first part's tensor infos cover only that part.
    `component=True` looks for a projector or draft file: VARIANT is its exact file name.
    """
    repo, _, variant = checkpoint.partition(":")
    if "/" not in repo or not variant:
        return None
    snapshots = hub_cache(env) / ("models--" + repo.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    want = variant.lower()
    hits = []
    for path in sorted(snapshots.glob("*/**/*.gguf")):
        name = path.name.lower()
        if ("mmproj" in name and not component) or _SPLIT.search(name) or not path.is_file():
            continue
        if name == want or (not component and not want.endswith(".gguf") and want in name):
            hits.append(path)
    return hits[0] if hits else None
