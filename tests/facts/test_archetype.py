"""classify(): the six system-info examples, ids and back-off, multi-GPU, unknown hardware, properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facts import CPU, GPU, HardwareFacts, Memory, classify, from_llama_devices, from_system_info
from facts.archetype import bucket_gb, bw_tier, family_from_arch
from tests.strategies import any_gpu, any_hardware_facts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GIB = 1024**3
ID = re.compile(r"^[a-z0-9_.]+(?:-[a-z0-9_.]+)*$")


@pytest.mark.parametrize(
    ("doc", "want", "confidence"),
    [
        ("strix-halo-128gb-linux.json", "amd-rdna3.5-gfx1151-unified-128gb-bw2", "high"),
        ("rx-7900-xtx-desktop-linux.json", "amd-rdna3-gfx1100-discrete-24gb-bw4", "high"),
        ("rtx-4090-desktop-linux.json", "nvidia-ada-sm_89-discrete-24gb-bw4", "high"),
        ("apple-m3-max-64gb-macos.json", "apple-m3-max-40c-unified-64gb-bw3", "high"),
        ("radeon-780m-laptop-windows.json", "amd-rdna3-gfx1103-unified-32gb-bw1", "high"),
        # DDR4 desktop, ISA unknown from system-info: conservative bandwidth estimate
        ("cpu-only-linux.json", "cpu-x86_64-64gb-bw0", "low"),
        # real old-schema document whose Physical Memory excludes a large carve-out
        ("old-schema-strix-halo-linux-issue722.json", "amd-rdna3.5-gfx1151-unified-32gb-bw2", "medium"),
    ],
)
def test_system_info_examples(doc, want, confidence):
    a = classify(from_system_info((FIXTURES / "system-info" / doc).read_text(), source=doc))
    assert a.id == want
    assert a.confidence == confidence
    assert a.backoff[0] == want


def test_backoff_chain_strix_halo():
    a = classify(from_system_info((FIXTURES / "system-info" / "strix-halo-128gb-linux.json").read_text()))
    assert a.backoff == ("amd-rdna3.5-gfx1151-unified-128gb-bw2", "amd-rdna3.5-unified-128gb-bw2",
                         "amd-unified-128gb-bw2", "unified-128gb-bw2")
    assert (a.vendor, a.family, a.arch, a.memclass, a.bucket_gb, a.bw_tier, a.count) == \
        ("amd", "rdna3.5", "gfx1151", "unified", 128, 2, 1)
    assert a.primary_gpus == (0,)


def test_apple_backoff_keeps_family_without_duplicating_it():
    a = classify(from_system_info((FIXTURES / "system-info" / "apple-m3-max-64gb-macos.json").read_text()))
    assert a.backoff == ("apple-m3-max-40c-unified-64gb-bw3", "apple-m3-unified-64gb-bw3",
                         "apple-unified-64gb-bw3", "unified-64gb-bw3")


def test_cpu_only_uses_isa_when_known():
    hw = HardwareFacts(cpu=CPU(name="AMD Ryzen 9 7950X 16-Core Processor", arch="x86_64",
                               isa=("avx", "avx2", "avx512")), memory=Memory(total_bytes=62 * GIB, nominal_gb=64))
    a = classify(hw)
    assert a.id == "cpu-x86_64-avx512-64gb-bw1"  # AM5: dual-channel DDR5-4800 = 76.8 GB/s
    assert a.backoff == ("cpu-x86_64-avx512-64gb-bw1", "cpu-x86_64-64gb-bw1", "cpu-64gb-bw1")
    assert a.isa == "x86_64-avx512" and a.memclass == "cpu" and a.confidence == "medium"
    assert any("estimate" in r for r in a.reasons)


def test_two_identical_gpus_get_xn_and_secondary_igpu_is_ignored():
    gpu = GPU(vendor="nvidia", name="NVIDIA GeForce RTX 3090", arch="sm_86", dedicated_bytes=24 * GIB)
    igpu = GPU(vendor="amd", name="AMD Radeon 780M Graphics")
    hw = HardwareFacts(cpu=CPU(name="AMD Ryzen 7 8700G"), memory=Memory(nominal_gb=64),
                       gpus=(igpu, gpu, gpu.model_copy(update={"index": 1})))
    a = classify(hw)
    assert a.id == "nvidia-ampere-sm_86-discrete-24gb-bw4-x2"
    assert a.count == 2 and a.primary_gpus == (1, 2)
    assert a.backoff[:4] == ("nvidia-ampere-sm_86-discrete-24gb-bw4-x2", "nvidia-ampere-discrete-24gb-bw4-x2",
                             "nvidia-discrete-24gb-bw4-x2", "discrete-24gb-bw4-x2")
    assert a.backoff[-1] == "discrete-24gb-bw4"
    assert any("780M" in r and "ignored" in r for r in a.reasons)


def test_display_only_igpu_alone_means_cpu_only():
    hw = HardwareFacts(cpu=CPU(name="AMD Ryzen 9 7950X", arch="x86_64"), memory=Memory(nominal_gb=32),
                       gpus=(GPU(vendor="amd", name="Granite Ridge [Radeon Graphics]"),))
    a = classify(hw)
    assert a.memclass == "cpu" and a.id.startswith("cpu-x86_64-32gb")
    assert any("display-only" in r for r in a.reasons)


def test_larger_group_wins_and_mixed_cards_stay_out_of_the_id():
    big = GPU(vendor="nvidia", name="NVIDIA RTX PRO 6000 Blackwell Workstation Edition", dedicated_bytes=96 * GIB)
    small = GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4060", dedicated_bytes=8 * GIB)
    a = classify(HardwareFacts(gpus=(small, big)))
    # a mixed machine is named after its primary group: the other cards never enter the id (it stays bounded)
    assert a.id == "nvidia-blackwell-sm_120-discrete-96gb-bw5" and a.primary_gpus == (1,) and a.count == 1
    assert any("secondary" in r and "4060" in r and "sm_89" in r and "8 GB bucket" in r for r in a.reasons)
    # a third, different card changes nothing in the id
    third = GPU(vendor="nvidia", name="NVIDIA GeForce RTX 3060", dedicated_bytes=12 * GIB)
    assert classify(HardwareFacts(gpus=(small, big, third))).id == a.id


def test_live_free_memory_never_changes_the_id():
    hw = from_system_info((FIXTURES / "system-info" / "rtx-4090-desktop-linux.json").read_text())
    busy = hw.model_copy(update={"gpus": (hw.gpus[0].model_copy(update={"free_bytes": 1 * GIB}),),
                                 "memory": hw.memory.model_copy(update={"available_bytes": 2 * GIB})})
    assert classify(busy).id == classify(hw).id


def test_nominal_vram_from_the_table_keeps_cuda_and_smi_reports_together():
    # CUDA reports 7805 MiB for an 8 GB laptop card (real output), nvidia-smi ~8188 MiB: same archetype
    cuda = classify(from_llama_devices((FIXTURES / "llama-devices" / "cuda-4070-laptop-new-init.txt").read_text()))
    smi = classify(HardwareFacts(gpus=(GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4070 Laptop GPU",
                                           dedicated_bytes=8188 * 1024**2),)))
    assert cuda.id == smi.id == "nvidia-ada-sm_89-discrete-8gb-bw2"


def test_unknown_nvidia_card_family_from_series_low_confidence():
    a = classify(from_llama_devices((FIXTURES / "llama-devices" / "vulkan-rtx2060-freebsd.txt").read_text()))
    assert a.id == "nvidia-turing-sm_75-discrete-6gb-bw2"  # T4 is the only Turing row: its tier, rounded down
    assert a.confidence == "low"
    assert any("unknown hardware" in r for r in a.reasons)


def test_unknown_apple_chip_inherits_the_lower_of_the_last_two_generations():
    hw = HardwareFacts(memory=Memory(nominal_gb=128), gpus=(GPU(vendor="apple", name="Apple M5 Max"),))
    a = classify(hw)
    # Max rows: M3 Max 300/400, M4 Max 410/546 -> min 300 GB/s -> bw2
    assert a.id == "apple-m5-max-unified-128gb-bw2" and a.confidence == "low"
    assert a.family == "apple-m5"


def test_unknown_gfx_target_family_from_the_id():
    hw = HardwareFacts(gpus=(GPU(vendor="amd", name="AMD Radeon Graphics", arch="gfx1153", dedicated_bytes=16 * GIB,
                                 unified=False),))
    a = classify(hw)  # no gpus.csv row has gfx1153: family from the gfx prefix, tier from the family's rows
    assert a.family == "rdna3.5" and a.id == "amd-rdna3.5-gfx1153-discrete-16gb-bw1"
    assert a.confidence == "low"
    known = classify(hw.model_copy(update={"gpus": (hw.gpus[0].model_copy(update={"arch": "gfx1200"}),)}))
    assert known.id == "amd-rdna4-gfx1200-discrete-16gb-bw2" and known.confidence == "high"  # RX 9060 XT 16 GB


def test_entirely_unknown_gpu():
    a = classify(HardwareFacts(gpus=(GPU(vendor="intel", name="Intel(R) Iris(R) Xe Graphics", unified=True),),
                               memory=Memory(nominal_gb=16)))
    assert a.id == "intel-unknown-unified-16gb-bw1" and a.confidence == "low"


def test_buckets_and_tiers():
    assert [bucket_gb(x) for x in (3.9, 4, 7.8, 10, 20, 23.98, 80, 94, 141, 700)] == \
        [4, 4, 8, 8, 16, 24, 64, 96, 128, 512]
    assert bucket_gb(2) == 0
    assert [bw_tier(x) for x in (51.2, 60, 120, 169.9, 170, 256, 340, 960, 1008, 1300, 2039, 2500, 3350)] == \
        [0, 1, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 6]
    assert (family_from_arch("gfx1151"), family_from_arch("gfx90a"), family_from_arch("sm_121"),
            family_from_arch("sm_89"), family_from_arch("sm_87")) == ("rdna3.5", "cdna2", "blackwell", "ada", "ampere")


@settings(max_examples=300, deadline=None)
@given(any_hardware_facts())
def test_classify_never_raises_is_deterministic_and_well_formed(hw):
    a = classify(hw)
    assert classify(hw) == a
    assert a.id == a.backoff[0] and len(set(a.backoff)) == len(a.backoff)
    assert all(ID.match(i) and i == i.lower() for i in a.backoff)
    assert a.backoff[-1].startswith(("unified-", "discrete-", "cpu-"))
    assert f"{a.bucket_gb}gb-bw{a.bw_tier}" in a.id
    assert a.bucket_gb in (0, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)
    assert all(0 <= i < len(hw.gpus) for i in a.primary_gpus)


@settings(max_examples=200, deadline=None)
@given(any_gpu(), st.integers(1, 600), st.integers(1, 600))
def test_discrete_bucket_is_monotone_in_vram(gpu, a_gib, b_gib):
    lo, hi = sorted((a_gib, b_gib))
    gpu = gpu.model_copy(update={"unified": False, "integrated": False, "device_class": "discrete",
                                 "vendor": "nvidia" if gpu.vendor == "apple" else gpu.vendor})
    small = classify(HardwareFacts(gpus=(gpu.model_copy(update={"dedicated_bytes": lo * GIB}),)))
    large = classify(HardwareFacts(gpus=(gpu.model_copy(update={"dedicated_bytes": hi * GIB}),)))
    assert small.bucket_gb <= large.bucket_gb


@settings(max_examples=200, deadline=None)
@given(any_hardware_facts(max_gpus=1), st.integers(1, 1024), st.integers(1, 1024))
def test_unified_and_cpu_bucket_is_monotone_in_nominal_ram(hw, a_gb, b_gb):
    lo, hi = sorted((a_gb, b_gb))
    gpus = tuple(g.model_copy(update={"unified": True, "device_class": "apu-igpu"}) for g in hw.gpus)
    small = classify(hw.model_copy(update={"gpus": gpus, "memory": Memory(nominal_gb=lo)}))
    large = classify(hw.model_copy(update={"gpus": gpus, "memory": Memory(nominal_gb=hi)}))
    assert small.memclass == large.memclass
    assert small.bucket_gb <= large.bucket_gb


def test_unknown_card_of_a_known_family_takes_the_median_tier_of_its_peers():
    hw = HardwareFacts(gpus=(GPU(vendor="nvidia", name="NVIDIA Engineering Sample", family="ada",
                                 dedicated_bytes=16 * GIB),))
    a = classify(hw)
    # Ada 16 GB rows: 4060 Ti (bw2), 4090 Laptop (bw3), 4070 Ti SUPER (bw3), 4080 (bw4), 4080 SUPER (bw4)
    assert a.id == "nvidia-ada-discrete-16gb-bw3" and a.confidence == "low"
    assert any("median of 5" in r for r in a.reasons)
    # with the compute capability known, gpus.csv resolves it to those 5 rows and takes the slowest (README rule)
    b = classify(hw.model_copy(update={"gpus": (hw.gpus[0].model_copy(update={"arch": "sm_89"}),)}))
    assert b.id == "nvidia-ada-sm_89-discrete-16gb-bw2" and b.confidence == "medium"
