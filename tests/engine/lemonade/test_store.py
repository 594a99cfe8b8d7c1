"""recipe_options.json store: lemond's format, atomic replace, the lock across processes, kill -9 mid-write,
the backup and the byte-identical restore, and the refusal when a lemond starts meanwhile."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.lemonade.paths import LemonadeHome
from engine.lemonade.store import LemondRunning, OptionsStore, atomic_write, dump, sha256

ORIGINAL = b'{\n    "user.keep":   {"ctx_size": 2048, "note": "caf\xc3\xa9"}\n}\n'  # not lemond's format: kept as is


@pytest.fixture
def home(tmp_path: Path) -> LemonadeHome:
    (tmp_path / "config").mkdir()
    return LemonadeHome(tmp_path / "config")


def test_dump_is_lemonds_format():
    assert dump({"b": {"y": 1, "x": "é"}, "a": {}}) == '{\n  "a": {},\n  "b": {\n    "x": "é",\n    "y": 1\n  }\n}'.encode()


def test_atomic_write_keeps_the_mode_and_leaves_no_temp_file(home: LemonadeHome):
    path = home.recipe_options
    path.write_bytes(b"{}")
    path.chmod(0o640)
    atomic_write(path, b'{"a": {}}')
    assert path.read_bytes() == b'{"a": {}}' and (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in home.config_dir.iterdir()] == ["recipe_options.json"]


def test_commit_backs_up_records_first_and_restores_byte_for_byte(home: LemonadeHome):
    home.recipe_options.write_bytes(ORIGINAL)
    store = OptionsStore(home)
    with store.transaction() as txn:
        txn.data["extra.m"] = {"ctx_size": 4096}
        txn.record["models"]["extra.m"] = {"owned": {"ctx_size": 4096}}
        assert txn.commit() is True
    written = home.recipe_options.read_bytes()
    assert json.loads(written) == {"user.keep": {"ctx_size": 2048, "note": "café"}, "extra.m": {"ctx_size": 4096}}
    record = store.record()
    assert record["file"]["sha256"] == sha256(written)
    backup = home.state_dir / "backups" / record["file"]["original"]
    assert backup.read_bytes() == ORIGINAL
    with store.transaction() as txn:  # nothing changed: nothing written
        assert txn.commit() is False
    with store.transaction() as txn:
        assert txn.restore_original() is True
    assert home.recipe_options.read_bytes() == ORIGINAL and store.record()["models"] == {}


def test_restore_is_refused_once_someone_else_wrote_the_file(home: LemonadeHome):
    store = OptionsStore(home)  # no file at first: undo removes it again
    with store.transaction() as txn:
        txn.data["extra.m"] = {"ctx_size": 1}
        txn.record["models"]["extra.m"] = {"owned": {"ctx_size": 1}}
        txn.commit()
    assert store.record()["file"]["original"] is None
    with store.transaction() as txn:
        assert txn.restore_original() is True
    assert not home.recipe_options.exists()
    with store.transaction() as txn:
        txn.data["extra.m"] = {"ctx_size": 1}
        txn.record["models"]["extra.m"] = {"owned": {"ctx_size": 1}}
        txn.commit()
    home.recipe_options.write_bytes(dump({"extra.m": {"ctx_size": 1}, "user.new": {}}))  # lemond saved meanwhile
    with store.transaction() as txn:
        assert txn.restore_original() is False


def test_a_lemond_that_starts_meanwhile_stops_the_write(home: LemonadeHome):
    home.recipe_options.write_bytes(ORIGINAL)
    store = OptionsStore(home)
    with pytest.raises(LemondRunning, match="lemond pid 42 serves it: nothing was written"), store.transaction() as txn:
        txn.data["extra.m"] = {"ctx_size": 4096}
        txn.commit(check=lambda: "lemond pid 42 serves it")
    assert home.recipe_options.read_bytes() == ORIGINAL
    assert not (home.state_dir / "owned.json").exists() and not (home.state_dir / "backups").exists()


def test_a_malformed_file_is_refused_with_its_location(home: LemonadeHome):
    home.recipe_options.write_text('{"a": {"ctx_size": 1},\n  oops}')
    with pytest.raises(UserError, match=r"recipe_options.json:2:3: not valid JSON"), OptionsStore(home).transaction():
        pass
    home.recipe_options.write_text("[1, 2]")
    with pytest.raises(UserError, match="expected a JSON object"), OptionsStore(home).transaction():
        pass


def test_no_config_dir_no_lock_file_created(tmp_path: Path):
    with pytest.raises(UserError, match="no such Lemonade config dir"), OptionsStore(
            LemonadeHome(tmp_path / "absent")).transaction():
        pass
    assert not (tmp_path / "absent").exists()


# --- two processes, one file ---------------------------------------------------------------------------
def _writer(config_dir: str, tag: str, rounds: int) -> None:
    store = OptionsStore(LemonadeHome(Path(config_dir)))
    for i in range(rounds):
        with store.transaction() as txn:
            txn.data[f"user.{tag}-{i}"] = {"ctx_size": i + 1}
            time.sleep(0.003)  # widen the read-modify-write window: without the lock updates get lost
            txn.commit()


def test_two_processes_lose_no_update(home: LemonadeHome):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(home.config_dir), tag, 20)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads(home.recipe_options.read_bytes())
    assert sorted(data) == sorted(f"user.{t}-{i}" for t in "ab" for i in range(20))


# --- kill -9 in the middle of writes -------------------------------------------------------------------
OLD, NEW = dump({"user.a": {"llamacpp_args": "-t 1 " * 400000}}), dump({"user.b": {"llamacpp_args": "-t 2 " * 300000}})


def _rewrite_forever(path: str) -> None:
    n = 0
    while True:  # nothing but writes: a kill lands in the middle of one almost every time
        atomic_write(Path(path), NEW if n % 2 else OLD)
        n += 1


def test_kill_9_during_atomic_writes_leaves_the_old_or_the_new_bytes(home: LemonadeHome):
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(7)
    for _ in range(8):
        p = ctx.Process(target=_rewrite_forever, args=(str(home.recipe_options),))
        p.start()
        time.sleep(rng.uniform(0.05, 0.3))
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        assert home.recipe_options.read_bytes() in (OLD, NEW)


BIG = {f"user.model-{i:02d}": {"ctx_size": 4096, "llamacpp_args": "-ngl 999 " * 25000} for i in range(24)}


def _churn(config_dir: str) -> None:
    store = OptionsStore(LemonadeHome(Path(config_dir)))
    n = 0
    while True:
        with store.transaction() as txn:
            txn.data.clear()
            txn.data.update(BIG if n % 2 else {"user.small": {"ctx_size": n}})
            txn.record["models"] = {"user.small": {"owned": {"n": n}}}
            txn.commit()
        n += 1


def test_kill_9_during_transactions_leaves_a_valid_file_and_record(home: LemonadeHome):
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(11)
    for _ in range(4):
        p = ctx.Process(target=_churn, args=(str(home.config_dir),))
        p.start()
        time.sleep(rng.uniform(0.1, 0.4))
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        data = json.loads(home.recipe_options.read_bytes())  # valid JSON every time
        assert data == BIG or set(data) == {"user.small"}
        assert OptionsStore(home).record()["version"] == 1  # the record is whole too
    with OptionsStore(home).transaction() as txn:  # a killed writer's temp file is cleaned up by the next one
        txn.commit()
    assert not list(home.config_dir.glob(".recipe_options.json.*.tmp"))
