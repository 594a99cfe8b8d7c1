"""The store without a network: a damaged state file or a version changed on disk is never used (the bundled
rulebook is, and status says why); install refuses a bad rulebook without leaving anything; gc keeps KEEP."""

from __future__ import annotations

import pytest

from engine import config
from engine.profiles import activate, remote_status, store
from engine.profiles.bundle import pack
from tests.engine.profiles.tufrepo import rulebook


@pytest.fixture
def st(tmp_path, monkeypatch):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE", raising=False)
    return store.Store()


def install(s: store.Store, tmp_path, n: int, extra: str | None = None) -> None:
    s.install(pack(rulebook(tmp_path / f"rb{n}", n, extra), n), sha256="0" * 64, mirror={"url": "x"},
              now="2026-12-01T00:00:00+00:00")


def test_damage_is_never_used(st, tmp_path):
    install(st, tmp_path, 1)
    st.activate(1, pinned=False)
    settings = config.load()
    assert store.active_root(settings) == st.version_dir(1)
    yaml = st.version_dir(1) / "families" / "marker.yaml"
    yaml.write_text(yaml.read_text().replace("parallel: 1", "parallel: 7"))  # changed after activation
    assert store.active_root(settings) is None
    rs = remote_status.remote(settings)
    assert rs["state"] == "fallback-to-bundled" and "digest mismatch" in rs["why"]
    st.state_file.write_text("{not json")
    rs = remote_status.remote(settings)
    assert rs["state"] == "fallback-to-bundled" and "damaged" in rs["why"]
    assert config.rulebook_roots(settings, refresh=False)[0].name == "rulebook"


def test_a_refused_install_leaves_nothing(st, tmp_path):
    bad = "rules:\n  - {id: x, description: d, layer: local, priority: 1, when: {recipe: llamacpp}, set: {ctx_size: 4096}}\n"
    with pytest.raises(activate.ActivationError, match="layer 'local' is this machine's"):
        install(st, tmp_path, 1, extra=bad)
    assert st.installed() == [] and not list(st.versions.glob(".tmp-*"))
    with pytest.raises(activate.ActivationError) as err:
        install(st, tmp_path, 2, extra=bad.replace("local", "family").replace("4096", "1"))
    assert "remote@2/families/extra.yaml:2:" in str(err.value) and ".tmp-" not in str(err.value)  # where, as published


def test_gc_keeps_the_last_versions_and_the_active_one(st, tmp_path):
    for n in range(1, store.KEEP + 3):
        install(st, tmp_path, n)
        st.activate(n, pinned=False)
    assert st.installed() == list(range(3, store.KEEP + 3))
    st.activate(4, pinned=True)  # a rollback target stays
    assert 4 in st.installed() and st.state().active == 4
