"""Every released Lemonade system-info schema (8.x Python, 9.0-9.2, 9.3, 9.4-10.2, 10.3-10.x, 11.x) reads to the
same kind of facts; see tests/fixtures/system-info/README.md for what each fixture is and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facts import classify, from_system_info

SI = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
GIB = 1 << 30

# fixture -> (schema era, os, archetype id, (gpu arch, integrated, dedicated GiB, shared GiB), npu (family, available))
SCHEMAS = {
    "old-schema-no-gpu-windows-issue374": ("8.x", "windows", "cpu-x86_64-32gb-bw0", None, (None, False)),
    "old-schema-strix-halo-linux-issue722": ("9.0-9.2", "linux", "amd-rdna3.5-gfx1151-unified-32gb-bw2",
                                             ("gfx1151", True, None, None), (None, False)),
    "old-schema-v9.3-rx9070xt-windows-assembled": ("9.3", "windows", "amd-rdna4-gfx1201-discrete-16gb-bw3",
                                               ("gfx1201", False, 15.9, None), (None, False)),
    "old-schema-v9.4-890m-xdna2-windows-assembled": ("9.4-10.2", "windows", "amd-rdna3.5-gfx1150-unified-32gb-bw1",
                                                 ("gfx1150", True, None, None), ("XDNA2", True)),
    "old-schema-v10-strix-halo-linux-pr2241": ("10.3-10.x", "linux", "amd-rdna3.5-gfx1151-unified-128gb-bw2",
                                           ("gfx1151", True, 0.5, 117.2), ("XDNA2", True)),
    "strix-halo-128gb-linux": ("11.x", "linux", "amd-rdna3.5-gfx1151-unified-128gb-bw2",
                               ("gfx1151", True, 0.5, 124.0), ("XDNA2", True)),
}


def load(name: str):
    return from_system_info((SI / f"{name}.json").read_text(), source=f"{name}.json")


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_schema(name):
    _era, os_name, archetype, gpu, npu = SCHEMAS[name]
    hw = load(name)
    assert hw.os.name == os_name
    assert classify(hw).id == archetype
    if gpu is None:
        assert hw.gpus == ()
    else:
        (g,) = hw.gpus
        arch, integrated, dedicated, shared = gpu
        assert (g.arch, bool(g.integrated)) == (arch, integrated)
        assert (None if g.dedicated_bytes is None else round(g.dedicated_bytes / GIB, 1)) == dedicated
        assert (None if g.shared_bytes is None else round(g.shared_bytes / GIB, 1)) == shared
    assert (hw.npu.family, hw.npu.available) == npu


def test_readme_names_every_fixture_and_era():
    readme = (SI / "README.md").read_text()
    for path in SI.glob("*.json"):
        assert f"`{path.name}`" in readme
    assert all(f"| {era} |" in readme for era, *_ in SCHEMAS.values())


def test_zero_sizes_of_9x_windows_igpus_are_unknown_not_zero():
    hw = load("old-schema-v9.4-890m-xdna2-windows-assembled")
    (g,) = hw.gpus  # the document says vram_gb 0.0 and virtual_mem_gb 0.0: Lemonade knew no size
    assert g.dedicated_bytes is None and g.shared_bytes is None
    assert {a.fact for a in hw.absent} >= {"gpus[0].dedicated_bytes", "gpus[0].shared_bytes"}


def test_93_recipes_supported_and_available_flags():
    hw = load("old-schema-v9.3-rx9070xt-windows-assembled")
    llama = [b for b in hw.backends if b.startswith("llamacpp:")]
    assert llama == ["llamacpp:vulkan", "llamacpp:rocm", "llamacpp:cpu"]  # 9.3's own preference, metal unsupported
    assert hw.installed_backends == ("llamacpp:vulkan",)
    assert "flm:default" not in hw.backends  # "supported": false


def test_94_states_and_the_npu_recipes():
    hw = load("old-schema-v9.4-890m-xdna2-windows-assembled")
    assert "flm:npu" in hw.installed_backends and "ryzenai-llm:npu" in hw.backends
    assert [b for b in hw.backends if b.startswith("llamacpp:")] == ["llamacpp:vulkan", "llamacpp:rocm", "llamacpp:cpu"]
    assert "sd-cpp:rocm" not in hw.backends  # unsupported on a Windows gfx1150


def test_windows_os_caption_and_processor_suffix():
    doc = json.loads((SI / "old-schema-v9.3-rx9070xt-windows-assembled.json").read_text())
    assert doc["OS Version"].startswith("Microsoft Windows")
    del doc["devices"]["cpu"]["name"]  # only the Processor string is left: its "(8 cores, …)" suffix goes
    hw = from_system_info(doc)
    assert hw.os.name == "windows" and hw.cpu.name == "AMD Ryzen 7 9800X3D 8-Core Processor"
