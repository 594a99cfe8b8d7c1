"""The compiled-rulebook cache: hits skip compiling, and a corrupt, tampered, stale or unwritable cache is
rebuilt or bypassed without ever changing an answer."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import engine.rulebook as rulebook_pkg
from engine.evaluators import durable_available, make_evaluator
from engine.recommend import resolve
from engine.rulebook import bundled_root, cache, load_rulebook
from facts.lemonade import from_system_info
from facts.models import ModelFacts

SYSINFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
HW = [from_system_info(p.read_text(), source=p.name) for p in sorted(SYSINFO.glob("*.json"))]
MODEL = ModelFacts(name="m", params_b=30.5, active_params_b=3.3, is_moe=True, quant="Q4_K_M", file_bytes=18 << 30)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    where = tmp_path / "cache"
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CACHE_DIR", str(where))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_CACHE", raising=False)
    return where


def _no_compile(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("compiled although the cache holds this rulebook")

    monkeypatch.setattr(rulebook_pkg, "_compile", boom)


def _answers(book, evaluator="python"):
    ev = make_evaluator(book, engine=evaluator)
    try:
        return [resolve(hw, MODEL, s, book, ev, {}, True, True).values() for hw in HW for s in ("chat", "coding")]
    finally:
        ev.close()


def test_encoding_round_trips_the_bundled_rulebook():
    book = load_rulebook(cache=False)
    assert cache.decode(json.loads(json.dumps(cache.encode(book)))) == book


def test_a_second_load_is_a_hit_and_gives_the_same_rulebook(cache_dir, monkeypatch):
    first = load_rulebook()
    (entry,) = cache_dir.glob("*[0-9a-f].json")
    _no_compile(monkeypatch)
    assert load_rulebook() == first and entry.exists()


def _entry(path):
    """(header, payload) of a cache entry: a header line, then the payload's JSON."""
    head, _, body = path.read_bytes().partition(b"\n")
    return json.loads(head), json.loads(body)


def _write_entry(path, header, payload, *, checksum=True):
    body = json.dumps(payload, separators=(",", ":")).encode()
    if checksum:  # a matching checksum: only the decoder's own checks can refuse it
        header = {**header, "checksum": hashlib.sha256(body).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper", "wrong-key", "bad-type"])
def test_a_damaged_entry_is_rebuilt_and_answers_do_not_change(cache_dir, damage):
    fresh = load_rulebook(cache=False)
    load_rulebook()
    (entry,) = cache_dir.glob("*[0-9a-f].json")
    header, payload = _entry(entry)
    if damage == "truncate":
        entry.write_text(entry.read_text()[: len(entry.read_text()) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\xff\x00not json")
    else:
        if damage == "tamper":  # a changed value, checksum left as it was
            payload["rules"][-1]["set"] = [["backend", "cpu"]]
        elif damage == "wrong-key":
            header["key"] = "0" * 64
        else:  # a type the decoder refuses, with a matching checksum
            payload["rules"][0]["priority"] = "high"
        _write_entry(entry, header, payload, checksum=damage == "bad-type")
    again = load_rulebook()
    assert again == fresh
    assert _answers(again) == _answers(fresh)
    assert _entry(entry)[1] == cache.encode(fresh)  # rewritten whole


def test_a_changed_rule_file_is_a_new_entry(cache_dir, tmp_path):
    root = tmp_path / "rulebook"
    shutil.copytree(bundled_root() / "defaults", root)
    a = load_rulebook(root)
    path = root / "common.yaml"
    path.write_text(path.read_text().replace("ctx_size: auto", "ctx_size: 8192"))
    b = load_rulebook(root)
    assert a.digest != b.digest and len(list(cache_dir.glob("*[0-9a-f].json"))) == 2
    assert any(r.set.get("ctx_size") == 8192 for r in b.rules)


def test_new_code_never_reads_an_old_entry(cache_dir, monkeypatch):
    load_rulebook()
    cache._code_fingerprint.cache_clear()
    monkeypatch.setattr(cache, "_CODE", (*cache._CODE, "trace.py"))  # as if the loader's code had changed
    try:
        assert cache.get(load_rulebook(cache=False).digest) is None
    finally:
        cache._code_fingerprint.cache_clear()


def test_off_and_unwritable_caches_only_cost_time(tmp_path, monkeypatch):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CACHE", "off")
    assert load_rulebook() == load_rulebook(cache=False) and cache.put(load_rulebook()) is None
    monkeypatch.delenv("LEMONADE_AUTOTUNE_CACHE")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CACHE_DIR", str(blocker / "cache"))
    assert load_rulebook() == load_rulebook(cache=False)


@pytest.mark.skipif(not durable_available(), reason="durable-rules does not import here (Python >= 3.13)")
def test_the_durable_plan_comes_from_the_cache_and_a_damaged_one_is_replanned(cache_dir, monkeypatch):
    from engine.evaluators import durable

    book = load_rulebook()
    want = _answers(book, "durable")
    (plan_file,) = cache_dir.glob("*.durable.json")

    def no_plan(*args, **kwargs):
        raise AssertionError("planned although the cache holds the plan")

    monkeypatch.setattr(durable, "plan", no_plan)
    assert _answers(book, "durable") == want
    monkeypatch.undo()
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CACHE_DIR", str(cache_dir))
    header, payload = _entry(plan_file)
    payload["keys"] = {"members": 5}
    _write_entry(plan_file, header, payload)
    assert _answers(book, "durable") == want == _answers(book, "python")


def test_clear_removes_every_entry(cache_dir):
    load_rulebook()
    assert cache.entries() and cache.clear() >= 1 and cache.entries() == []
