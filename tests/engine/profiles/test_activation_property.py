"""No rulebook accepted from the network can make recommend emit a flag outside the allowlist or a flag Lemonade
reserves: random signed-looking bundles go through the path a verified download takes (unpack -> store.install:
lint + allowlist -> activate), and every accepted one is run through recommend on several machines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import ir
from engine.errors import InternalError, UserError
from engine.profiles.activate import ActivationError
from engine.profiles.bundle import Bundle, unpack
from engine.profiles.store import Store
from engine.recipes.llamacpp import flags as llama_flags
from engine.rulebook import load_rulebook
from engine.session import Engine
from tests.engine.profiles.tufrepo import DEFAULTS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "system-info"
MACHINES = ("rtx-4090-desktop-linux.json", "cpu-only-linux.json", "apple-m3-max-64gb-macos.json",
            "radeon-780m-laptop-windows.json")
ALLOWED = ({s.flag for s in llama_flags.SPECS if s.flag} | {"--load-mode", "-kvu", "--no-kv-unified"}
           | set(llama_flags.EXTRA_ARGS))
RESERVED = sorted(llama_flags.RESERVED_FLAGS)

_values = st.sampled_from(["0", "1", "8", "on", "off", "none", "layer", "0.5,0.5", "-1", "x", "/etc/passwd"])
_flag_like = st.one_of(
    st.sampled_from(sorted(llama_flags.EXTRA_ARGS)),  # allowlisted
    st.sampled_from(RESERVED),  # reserved by Lemonade
    st.sampled_from(RESERVED).map(lambda f: f + "=1"),  # reserved, `=` spelling
    st.from_regex(r"--[a-z][a-z-]{0,14}", fullmatch=True),  # anything else that looks like a flag
    st.from_regex(r"-[a-zA-Z]{1,3}", fullmatch=True),
)
_junk = st.lists(st.one_of(_flag_like, _values), max_size=8)  # mostly refused


@st.composite
def _valid_args(draw) -> list[str]:
    """Allowlisted flags with values of the right kind (accepted, so the property reaches recommend)."""
    out: list[str] = []
    for flag in draw(st.lists(st.sampled_from(sorted(llama_flags.EXTRA_ARGS)), max_size=4, unique=True)):
        kind, _backends = llama_flags.EXTRA_ARGS[flag]
        out.append(flag)
        if isinstance(kind, tuple):
            out.append(draw(st.sampled_from(kind)))
        elif kind == "int":
            out.append(str(draw(st.integers(0, 64))))
        elif kind == "csv":
            out.append(draw(st.sampled_from(["1,1", "3,1", "0.5,0.5"])))
    return out


_other_any = st.fixed_dictionaries({}, optional={
    "n_gpu_layers": st.one_of(st.integers(-5, 1200), st.sampled_from(["all", "auto", "default", "lots"])),
    "ubatch": st.one_of(st.integers(0, 70000), st.just("default")),
    "flash_attn": st.sampled_from(["on", "off", "auto", "default", "--port"]),
    "parallel": st.integers(0, 80),
    "cache_type_k": st.sampled_from(["f16", "q8_0", "q4_0", "bogus"]),
})
_other_valid = st.fixed_dictionaries({}, optional={
    "n_gpu_layers": st.one_of(st.integers(0, 999), st.sampled_from(["all", "auto", "default"])),
    "ubatch": st.one_of(st.integers(16, 4096), st.just("default")),
    "flash_attn": st.sampled_from(["on", "off", "auto", "default"]),
    "parallel": st.integers(1, 64),
    "cache_type_k": st.sampled_from(["f16", "q8_0", "q4_0"]),
})


@st.composite
def rule_docs(draw) -> dict:
    """Half the time values a careful publisher would sign (so recommend runs on them), else anything."""
    valid = draw(st.booleans())
    rules = []
    for i in range(draw(st.integers(1, 4))):
        sets = dict(draw(_other_valid if valid else _other_any))
        if draw(st.integers(0, 3)) or not sets:
            sets["extra_args"] = draw(_valid_args() if valid else st.one_of(_valid_args(), _junk))
        when = {"recipe": "llamacpp"}
        if draw(st.booleans()):
            when["backend"] = draw(st.sampled_from(["cuda", "vulkan", "cpu", "metal", "rocm"]))
        layers = ir.LAYERS[1:4] if valid else ir.LAYERS[1:]
        rules.append({"id": f"net-{i}", "description": "from the network", "priority": 100 * i + draw(st.integers(0, 99)),
                      "layer": draw(st.sampled_from(layers)), "when": when, "set": sets, "evidence": "none"})
    return {"rules": rules}


def _bundle(doc: dict, version: int) -> bytes:
    files = {f"defaults/{p.name}": p.read_text(encoding="utf-8") for p in sorted(DEFAULTS.glob("*.yaml"))}
    files["net/rules.yaml"] = yaml.safe_dump(doc, sort_keys=False)
    return Bundle(version, files).to_bytes()


def _cases():
    from facts import from_system_info
    from facts.models import ModelFacts

    machines = [from_system_info(json.loads((FIXTURES / m).read_text())) for m in MACHINES]
    models = [ModelFacts(name="dense-8b", params_b=8.0, quant="Q4_K_M", file_bytes=5 * 2**30),
              ModelFacts(name="moe-30b", params_b=30.5, active_params_b=3.3, is_moe=True, quant="Q4_K_M",
                         file_bytes=17 * 2**30)]
    return [(hw, m) for hw in machines for m in models]


CASES = _cases()


def emitted_flags(args: str) -> list[str]:
    return [t for t in args.split() if t.startswith("-") and not t.lstrip("-").replace(".", "").isdigit()]


def accept_and_recommend(raw: bytes, version: int, store: Store) -> list[str] | None:
    """The path of a verified download: unpack, install (lint + allowlist), then recommend everywhere."""
    try:
        bundle = unpack(raw, "rulebook.json")
        store.install(bundle, sha256="0" * 64, mirror={}, now="2026-12-01T00:00:00+00:00")
    except ActivationError:
        return None
    book = load_rulebook(store.version_dir(version))
    out: list[str] = []
    eng = Engine(book, evaluator="python")
    try:
        for hw, model in CASES:
            for scenario in ("chat", "coding"):
                try:
                    rec = eng.recommend(hw, model, scenario=scenario)
                except InternalError:
                    raise
                except UserError:  # e.g. does not fit: nothing is emitted
                    continue
                out.extend(emitted_flags(rec.recipe_options().get("llamacpp_args", "")))
    finally:
        eng.close()
    return out


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=rule_docs())
def test_no_accepted_rulebook_emits_a_flag_outside_the_allowlist(doc, tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store"))
    emitted = accept_and_recommend(_bundle(doc, 1), 1, store)
    event("refused" if emitted is None else "accepted")
    if emitted is None:
        assert store.installed() == []  # refused: nothing of it was left in the store
        return
    event("emitted extra arguments" if set(emitted) & set(llama_flags.EXTRA_ARGS) else "no extra arguments")
    assert all(r["layer"] not in ("user", "local") for r in doc["rules"])
    bad = [f for f in emitted if f.split("=", 1)[0] not in ALLOWED or f.split("=", 1)[0] in llama_flags.RESERVED_FLAGS]
    assert not bad, bad


def test_the_property_sees_both_outcomes(tmp_path):
    """Not vacuous: an allowlisted extra argument is accepted and emitted; reserved and unknown flags refused."""
    good = {"rules": [{"id": "net-ok", "description": "d", "layer": "family", "priority": 5,
                       "when": {"recipe": "llamacpp"}, "set": {"extra_args": ["--no-warmup"]}, "evidence": "none"}]}
    assert "--no-warmup" in accept_and_recommend(_bundle(good, 1), 1, Store(tmp_path / "a"))
    for tokens in (["--port", "9"], ["--port=9"], ["--definitely-not-a-flag"], ["-m", "x.gguf"]):
        bad = {"rules": [{**good["rules"][0], "set": {"extra_args": tokens}}]}
        assert accept_and_recommend(_bundle(bad, 1), 1, Store(tmp_path / "b")) is None, tokens
    outranks = {"rules": [{**good["rules"][0], "layer": "user"}]}
    assert accept_and_recommend(_bundle(outranks, 1), 1, Store(tmp_path / "c")) is None


@pytest.mark.parametrize("raw", [b"not json", b'{"format": "x"}', json.dumps({
    "format": "lemonade-autotune/rulebook-bundle", "format_version": 1, "version": 1,
    "files": {"../escape.yaml": "rules: []"}}).encode(), json.dumps({
    "format": "lemonade-autotune/rulebook-bundle", "format_version": 1, "version": 1,
    "files": {"defaults/.hidden.yaml": "rules: []"}}).encode()], ids=["junk", "format", "traversal", "hidden"])
def test_malformed_bundles_are_refused_before_anything_is_written(raw, tmp_path):
    from engine.profiles.bundle import BundleError

    with pytest.raises(BundleError):
        unpack(raw, "rulebook.json")
    assert not any(tmp_path.iterdir())
