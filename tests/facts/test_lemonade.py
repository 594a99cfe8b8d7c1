"""from_system_info(): current and old schema, Lemonade's quirks, located errors, implausible values."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facts import FactsInputError, from_system_info
from facts.lemonade import kfd_to_gfx, nominal_gb, parse_size_gib

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
GIB = 1024**3


def load(name: str) -> dict:
    return json.loads((DOCS / name).read_text())


def test_strix_halo_linux_kfd_name_carveout_and_gtt():
    hw = from_system_info((DOCS / "strix-halo-128gb-linux.json").read_bytes(), source="strix.json")
    (g,) = hw.gpus
    assert g.name == "110501" and g.arch == "gfx1151"  # KFD gfx_target_version decoded
    assert g.marketing_name == "Radeon 8060S"  # picked by the CPU brand string among 8040S/8050S/8060S
    assert g.dedicated_bytes == int(0.5 * GIB) and g.shared_bytes == int(124.0 * GIB)
    assert g.unified is True and g.integrated is True and g.bandwidth_gbs == 256
    assert hw.memory.total_bytes == int(124.95 * GIB) and hw.memory.nominal_gb == 128
    assert hw.os.name == "linux" and hw.cpu.arch == "x86_64" and hw.cpu.physical_cores == 16 and hw.cpu.threads == 32
    assert hw.npu is not None and hw.npu.available and hw.npu.family == "XDNA2"
    assert hw.source == "system-info:strix.json"
    assert g.provenance["arch"] == "system-info:strix.json:devices.amd_gpu[0].name"
    assert g.provenance["bandwidth_gbs"].startswith("gpus.csv:Radeon 8060S")


def test_recipes_section_backends_installed_and_defaults():
    hw = from_system_info(load("strix-halo-128gb-linux.json"))
    # preference order from the support rows, not the alphabetical backends object
    assert [b for b in hw.backends if b.startswith("llamacpp:")] == ["llamacpp:vulkan", "llamacpp:rocm", "llamacpp:cpu"]
    assert "llamacpp:system" not in hw.backends and "llamacpp:cuda" not in hw.backends
    assert hw.installed_backends == ("llamacpp:vulkan", "llamacpp:rocm")
    assert hw.default_backends["llamacpp"] == "vulkan" and hw.default_backends["vllm"] == "rocm"
    assert "ryzenai-llm" not in hw.default_backends  # every backend unsupported: no default


def test_nvidia_compute_capability_and_unrounded_vram():
    hw = from_system_info(load("rtx-4090-desktop-linux.json"))
    (g,) = hw.gpus  # the placeholder nvidia entries of other documents are skipped
    assert (g.arch, g.index, g.uuid) == ("sm_89", 0, "GPU-3f9c1d2e-8a47-b5c6-0d1e-2f3a4b5c6d7e")
    assert g.dedicated_bytes == int(23.98828125 * GIB)
    assert hw.memory.nominal_gb == 64


def test_apple_working_set_is_shared_memory_and_ram_is_nominal():
    hw = from_system_info(load("apple-m3-max-64gb-macos.json"))
    (g,) = hw.gpus
    assert g.vendor == "apple" and g.unified is True
    assert g.shared_bytes == 48 * GIB and g.dedicated_bytes is None
    assert hw.memory.nominal_gb == 64 and hw.memory.total_bytes == 64 * GIB
    assert g.marketing_name == "Apple M3 Max (40-core GPU)"  # 64 GB was only sold with the 40-core GPU
    assert hw.os.name == "macos" and hw.cpu.arch == "arm64"


def test_windows_780m_without_memory_is_absent_with_a_reason():
    hw = from_system_info(load("radeon-780m-laptop-windows.json"))
    (g,) = hw.gpus
    assert g.marketing_name == "Radeon 780M" and g.arch == "gfx1103"  # Lemonade's family is ""
    assert g.dedicated_bytes is None and g.shared_bytes is None
    reasons = {a.fact: a.reason for a in hw.absent}
    assert "Windows" in reasons["gpus[0].dedicated_bytes"]
    assert hw.memory.nominal_gb == 32  # bucket comes from Physical Memory since the GPU is unified


def test_cpu_only():
    hw = from_system_info(load("cpu-only-linux.json"))
    assert hw.gpus == () and hw.memory.nominal_gb == 64
    assert hw.installed_backends == ("llamacpp:cpu",)


def test_old_schema_real_document_strix_halo():
    hw = from_system_info(load("old-schema-strix-halo-linux-issue722.json"))
    (g,) = hw.gpus  # amd_igpu object; unavailable amd_dgpu / nvidia_dgpu placeholders skipped
    assert g.integrated is True and g.arch == "gfx1151" and g.marketing_name == "Radeon 8060S"
    assert hw.npu is not None and hw.npu.name == "AMD NPU" and not hw.npu.available
    assert hw.memory.nominal_gb is None  # 9.70 GB cannot be a Strix Halo's RAM: not believed
    assert any("below every configuration" in w for w in hw.warnings)


def test_old_schema_real_document_windows_no_gpu_and_engines():
    hw = from_system_info(load("old-schema-no-gpu-windows-issue374.json"))
    assert hw.gpus == () and hw.os.name == "windows" and hw.memory.nominal_gb == 32
    assert hw.backends == ()  # inference_engines all unavailable
    doc = load("old-schema-no-gpu-windows-issue374.json")
    doc["devices"]["cpu"]["inference_engines"]["llamacpp-vulkan"] = {"available": True, "version": "b6097",
                                                                     "backend": "vulkan"}
    doc["devices"]["amd_dgpu"] = [{"name": "AMD Radeon RX 9070 XT", "available": True, "vram_gb": 15.9,
                                   "driver_version": "32.0.21025.1024"}]  # shape of lemonade PR #376's demo
    hw = from_system_info(doc)
    assert hw.backends == ("llamacpp:vulkan",) and hw.installed_backends == ("llamacpp:vulkan",)
    (g,) = hw.gpus
    assert g.integrated is False and g.marketing_name == "Radeon RX 9070 XT" and g.arch == "gfx1201"


def test_windows_wildcard_family_narrows_to_one_gfx_target():
    doc = load("radeon-780m-laptop-windows.json")
    doc["devices"]["amd_gpu"].append({"available": True, "family": "gfx110X", "integrated": False,
                                      "name": "AMD Radeon RX 7900 XTX", "vram_gb": 24.0})
    hw = from_system_info(doc)
    assert hw.gpus[1].arch == "gfx1100" and hw.gpus[1].marketing_name == "Radeon RX 7900 XTX"


@pytest.mark.parametrize(
    ("text", "gib"),
    [("124.95 GB", 124.95), ("64 GB", 64.0), ("512 MB", 0.5), ("1 TB", 1024.0), ("32,00 GB", 32.0)],
)
def test_physical_memory_strings(text, gib):
    assert parse_size_gib(text) == pytest.approx(gib)


def test_nominal_rounding_and_kfd_decoding():
    assert [nominal_gb(x) for x in (124.95, 62.71, 32.0, 30.5, 15.4, 94.0)] == [128, 64, 32, 32, 16, 96]
    assert [kfd_to_gfx(x) for x in ("110501", "110000", "110003", "90010", "90402", "100300")] == \
        ["gfx1151", "gfx1100", "gfx1103", "gfx90a", "gfx942", "gfx1030"]
    assert kfd_to_gfx("AMD Radeon 780M") is None


def test_linux_carveout_counts_toward_nominal_ram():
    doc = load("strix-halo-128gb-linux.json")
    doc["Physical Memory"] = "61.30 GB"  # 128 GB machine with a 64 GB BIOS carve-out
    doc["devices"]["amd_gpu"][0].update(vram_gb=64.0, virtual_mem_gb=30.6)
    assert from_system_info(doc).memory.nominal_gb == 128


def test_implausible_values_are_rejected_with_warnings():
    doc = load("rx-7900-xtx-desktop-linux.json")
    doc["devices"]["amd_gpu"][0]["vram_gb"] = 1.7e10
    hw = from_system_info(doc)
    assert hw.gpus[0].dedicated_bytes is None
    assert any("devices.amd_gpu[0].vram_gb" in w and "implausible" in w for w in hw.warnings)
    doc = load("apple-m3-max-64gb-macos.json")
    doc["devices"]["metal"]["vram_gb"] = 200.0  # a working set larger than the machine's RAM
    hw = from_system_info(doc)
    assert hw.gpus[0].shared_bytes is None
    assert any("exceeds Physical Memory" in w for w in hw.warnings)


def test_malformed_document_one_line_per_problem_with_json_paths():
    doc = load("rx-7900-xtx-desktop-linux.json")
    doc["devices"]["amd_gpu"][0]["vram_gb"] = "abc"
    doc["devices"]["cpu"]["threads"] = "many"
    doc["Physical Memory"] = "lots"
    doc["recipes"]["llamacpp"]["backends"]["rocm"]["state"] = 3
    with pytest.raises(FactsInputError) as err:
        from_system_info(doc, source="bad.json")
    problems = err.value.problems
    assert err.value.kind == "system-info" and err.value.source == "bad.json"
    assert 'devices.amd_gpu[0].vram_gb: expected a number, got "abc"' in problems
    assert 'devices.cpu.threads: expected an int, got "many"' in problems
    assert any(p.startswith("Physical Memory:") for p in problems)
    assert any(p.startswith("recipes.llamacpp.backends.rocm.state:") for p in problems)
    assert len(problems) == 4
    assert str(err.value).count("\n") == 4  # header + one line per problem


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ("Available devices:\n  Vulkan0: Radeon 8060S Graphics (RADV STRIX_HALO) (127488 MiB)\n", "--llama-devices"),
        (json.dumps({"hardware": {}, "models": [], "timestamp": "x"}), "another kind of document"),
        ("[1, 2]", "expected a JSON object"),
        ("{\"devices\": [] }", "devices: expected an object"),
    ],
)
def test_wrong_kind_of_document(doc, fragment):
    with pytest.raises(FactsInputError) as err:
        from_system_info(doc)
    assert fragment in str(err.value)


def test_input_is_not_mutated():
    doc = load("strix-halo-128gb-linux.json")
    before = copy.deepcopy(doc)
    from_system_info(doc)
    assert doc == before


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats(allow_nan=False)
                     | st.text(max_size=12),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                     max_leaves=12)
_KEYS = st.sampled_from(["vram_gb", "virtual_mem_gb", "name", "family", "available", "integrated",
                         "compute_capability", "index", "uuid", "state", "devices", "cores", "threads"])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_damage_to_a_real_document_gives_facts_or_a_located_input_error(data):
    doc = load(data.draw(st.sampled_from(sorted(p.name for p in DOCS.glob("*.json")))))
    # walk to a random object inside the document and overwrite one key with arbitrary JSON
    node = doc
    for _ in range(data.draw(st.integers(0, 4))):
        children = [v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list)) and v]
        if not children:
            break
        node = data.draw(st.sampled_from(children))
    if isinstance(node, dict):
        node[data.draw(st.one_of(_KEYS, st.sampled_from(sorted(node) or ["x"])))] = data.draw(_JSON)
    try:
        hw = from_system_info(json.dumps(doc))
    except FactsInputError as err:
        assert err.problems and all(isinstance(p, str) and "\n" not in p for p in err.problems)
    else:
        assert hw.source.startswith("system-info")
