"""Session-wide test settings."""

from __future__ import annotations

import pytest
from hypothesis import settings

# No per-example deadline anywhere: a slow or loaded CI machine must not turn a property into a flake.
settings.register_profile("project", deadline=None)
settings.load_profile("project")


@pytest.fixture(autouse=True, scope="session")
def _empty_hub_cache(tmp_path_factory):
    """Registry names resolve to a downloaded GGUF when one is in the Hugging Face cache; point the cache at
    an empty directory so a developer's own downloads never change what the tests see (CLI subprocesses
    inherit the variable)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-hub-cache")))
    # the compiled-rulebook cache of this test session, never the developer's own (engine.rulebook.cache)
    mp.setenv("LEMONADE_AUTOTUNE_CACHE_DIR", str(tmp_path_factory.mktemp("rulebook-cache")))
    # lemonade-autotune's own settings and state (engine.config, engine.lemonade.target): never the developer's
    mp.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path_factory.mktemp("autotune-config")))
    mp.setenv("LEMONADE_AUTOTUNE_STATE_DIR", str(tmp_path_factory.mktemp("autotune-state")))
    # the remote-rulebook store (engine.profiles.store): never the developer's activated remote rulebook
    mp.setenv("LEMONADE_AUTOTUNE_PROFILES_DIR", str(tmp_path_factory.mktemp("autotune-profiles")))
    mp.delenv("LEMONADE_AUTOTUNE", raising=False)
    yield
    mp.undo()
