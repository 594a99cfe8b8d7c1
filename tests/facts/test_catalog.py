"""The GPU catalog: the table loads, every real device name resolves to its rows, enrich fills gaps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from facts import GPU, catalog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GIB = 1024**3


def _samples() -> list[dict[str, str]]:
    with open(FIXTURES / "name_samples.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_table_loads_every_row_once():
    rows = catalog.rows()
    assert len(rows) == 125
    names = [r.marketing_name for r in rows]
    assert len(set(names)) == len(names)  # the marketing name is the row key
    assert all(r.vendor in {"amd", "nvidia", "apple", "intel", "qualcomm"} for r in rows)
    assert catalog.rows() is rows  # parsed once



def test_all_name_samples_resolve_to_exactly_their_rows():
    samples = _samples()
    assert len(samples) == 126
    wrong = []
    for s in samples:
        want = {x for x in s["expected_marketing_names"].split(";") if x}
        got = {r.marketing_name for r in catalog.match_name(s["reported_name"])}
        if got != want:
            wrong.append(f"{s['reported_name']!r}: want {sorted(want)}, got {sorted(got)}")
    assert not wrong, "\n".join(wrong)


def test_normalize_strips_trademarks_and_spaces():
    assert catalog.normalize("AMD Radeon(TM)  8060S Graphics") == "AMD Radeon 8060S Graphics"
    assert catalog.normalize("Intel(R) Arc(tm) B580 ™ Graphics ") == "Intel Arc B580 Graphics"


@pytest.mark.parametrize(
    ("name", "kwargs", "want"),
    [
        ("NVIDIA GeForce RTX 3060", {"vram_gb": 11.99}, "GeForce RTX 3060 12GB"),
        ("NVIDIA GeForce RTX 3060", {"vram_gb": 7.8}, "GeForce RTX 3060 8GB"),
        ("Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]", {"vram_gb": 19.98}, "Radeon RX 7900 XT"),
        ("AMD Radeon Graphics (RADV GFX1151)", {"compute_units": 32}, "Radeon 8050S"),
        ("AMD Radeon Graphics (RADV GFX1151)", {"cpu_brand": "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"},
         "Radeon 8060S"),
        ("Phoenix1", {"cpu_brand": "AMD Ryzen 7 7840U w/ Radeon 780M Graphics"}, "Radeon 780M"),
        ("Orin (nvgpu)", {"device_tree_model": "NVIDIA Jetson AGX Orin Developer Kit"}, "Jetson AGX Orin"),
        ("Apple M3 Max", {"compute_units": 30}, "Apple M3 Max (30-core GPU)"),
        ("Apple M3 Max", {"vram_gb": 64}, "Apple M3 Max (40-core GPU)"),  # 64 GB was sold only as 40-core
    ],
)
def test_match_name_disambiguates_with_extra_facts(name, kwargs, want):
    assert [r.marketing_name for r in catalog.match_name(name, **kwargs)] == [want]


def test_enrich_by_pci_id_fills_table_facts_and_provenance():
    gpu = GPU(vendor="amd", name="AMD Radeon(TM) Graphics", pci_id="1002:1586", compute_units=40)
    out = catalog.enrich(gpu)
    assert out.marketing_name == "Radeon 8060S"
    assert (out.arch, out.family, out.device_class) == ("gfx1151", "rdna3.5", "apu-igpu")
    assert out.bandwidth_gbs == 256 and out.unified is True and out.integrated is True
    assert out.provenance["marketing_name"].startswith("gpus.csv:Radeon 8060S (matched by pci_id 1002:1586")
    assert gpu.marketing_name is None  # a copy, the input is untouched


def test_enrich_by_arch_and_vram_picks_the_variant():
    out = catalog.enrich(GPU(vendor="amd", name="110000", arch="gfx1100", dedicated_bytes=24 * GIB))
    assert out.marketing_name == "Radeon RX 7900 XTX"
    assert out.bandwidth_gbs == 960
    assert "arch gfx1100" in out.provenance["bandwidth_gbs"]


def test_enrich_name_narrows_arch_pool():
    out = catalog.enrich(GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4090", arch="sm_89",
                             dedicated_bytes=int(23.98828125 * GIB)))
    assert out.marketing_name == "GeForce RTX 4090" and out.bandwidth_gbs == 1008


def test_enrich_never_overwrites_detected_values():
    gpu = GPU(vendor="amd", name="AMD Radeon 780M Graphics", bandwidth_gbs=89.6, unified=True,
              family="custom")
    out = catalog.enrich(gpu)
    assert out.bandwidth_gbs == 89.6 and out.family == "custom"
    assert out.arch == "gfx1103" and out.marketing_name == "Radeon 780M"
    assert "bandwidth_gbs" not in out.provenance


def test_enrich_ambiguous_takes_lowest_bandwidth_and_says_so():
    out = catalog.enrich(GPU(vendor="apple", name="Apple M3 Max"))
    assert out.marketing_name == "Apple M3 Max (30-core GPU)"
    assert out.bandwidth_gbs == 300
    assert "ambiguous with Apple M3 Max (40-core GPU)" in out.provenance["marketing_name"]


def test_enrich_vendor_gate_and_unknown_device():
    # an Intel device whose name mentions an NVIDIA model must not take NVIDIA's row
    assert catalog.enrich(GPU(vendor="intel", name="RTX 4090 lookalike")).marketing_name is None
    unknown = GPU(vendor="amd", name="AMD Custom GPU 0405 (radeonsi, vangogh, LLVM 15.0.7, DRM 3.49)")
    assert catalog.enrich(unknown) == unknown


def test_wildcard_arch_from_lemonade_windows_family():
    cands, how = catalog.resolve(vendor="amd", arch="gfx110X", name="AMD Radeon RX 7900 XTX")
    assert [r.marketing_name for r in cands] == ["Radeon RX 7900 XTX"]
    assert "arch gfx110X" in how
