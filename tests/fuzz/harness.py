"""The fuzz targets: each mutates a real fixture and runs it through the path the CLI takes.

Every input path the tool reads has a target: Lemonade system-info documents, llama.cpp device reports, model-facts
JSON, GGUF headers, rulebooks and benchmark files for curate, and Lemonade bench JSON (monitor / learn). A run
ends as

- `ok` — the input was accepted and the answer rendered;
- `rejected` — a project error (FactsError, EngineError: exit 2 with where and what) or OSError;
- a crash — anything else (what the CLI turns into exit 3 and a traceback): `run` re-raises it.

The mutations are deterministic per seed (random.Random(seed)), so `bench/fuzz.py` can count crashes over many seeds
and a test can replay one; hypothesis drives the seeds in tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import copy
import json
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"

# values a careless script or an attacker puts where a value belongs (raw JSON text)
HOSTILE_JSON = ('"\\ud800"', '"\\udfff x"', '"\\u0000"', '"' + "x" * 70_000 + '"', '9' * 5000, '-' + '9' * 400,
                "1e999", "-1e999", "1e308", "NaN", "Infinity", "-0.0", "5e-324", "null", "true", "[]", "{}",
                "[30.5]", '{"a": 1}', '"24GB"', '"abc"', "0", "-1", "4294967297", "18446744073709551616",
                '"' + "é" * 3000 + '"', '"\\u202e\\u0301"')
HOSTILE_TEXT = ("9" * 5000, "1e999", "inf", "nan", "-1", "0", "\ud800", "\x00", "é" * 300, "x" * 70_000,
                "18446744073709551616", "99999999999999999999", "١٢٣", "²", "", " ")


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, here + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, here + (i,))
    return out


_MARK = "\x00FUZZ\x00"


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def mutate_json(doc: Any, rng: random.Random) -> str:
    """One to three structural mutations of a parsed JSON document, as JSON text: delete a key, retype or replace a
    value with a hostile one (huge or infinite numbers, lone surrogates, huge strings, wrong types), nest it
    thousands of levels deep, or truncate the text."""
    doc = copy.deepcopy(doc)
    raw: dict[str, str] = {}
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        path = rng.choice(paths)
        op = rng.random()
        if op < 0.15 and path:
            parent = doc
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and parent:
                parent.pop(path[-1])
        elif op < 0.75:
            key = f"{_MARK}{len(raw)}"
            raw[key] = rng.choice(HOSTILE_JSON)
            doc = _set(doc, path, key)
        elif op < 0.85:
            key = f"{_MARK}{len(raw)}"
            depth = rng.choice((64, 1000, 100_000))
            raw[key] = "[" * depth + "1" + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
            doc = _set(doc, path, key)
        else:
            key = f"{_MARK}{len(raw)}"
            raw[key] = json.dumps(rng.choice(("", " ", "x" * 10_000, None, 1 << 60, -(1 << 62), 3.5, [], {})))
            doc = _set(doc, path, key)
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    for key, value in raw.items():
        text = text.replace(json.dumps(key), value)
    if rng.random() < 0.1:
        text = text[: rng.randrange(len(text) + 1)]
    return text


def mutate_text(text: str, rng: random.Random) -> str:
    """Line and token mutations of a text log: numbers replaced by hostile ones, lines deleted, duplicated or
    repeated many times, unicode and NUL bytes inserted, truncation."""
    import re

    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        if not lines:
            lines = [""]
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.5:
            nums = list(re.finditer(r"\d+(?:\.\d+)?", lines[i]))
            if nums:
                m = rng.choice(nums)
                lines[i] = lines[i][: m.start()] + rng.choice(HOSTILE_TEXT) + lines[i][m.end():]
            else:
                lines[i] += rng.choice(HOSTILE_TEXT)
        elif op < 0.6:
            del lines[i]
        elif op < 0.7:
            lines[i:i] = [lines[i]] * min(rng.choice((2, 50, 2000)), 4_000_000 // (len(lines[i]) + 1) + 1)
        elif op < 0.85:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + rng.choice(HOSTILE_TEXT) + lines[i][cut:]
        else:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return "\n".join(lines)


def mutate_bytes(data: bytes, rng: random.Random, head: int = 4096) -> bytes:
    """Byte flips, 8-byte length fields set to huge values, and truncation within the first `head` bytes."""
    buf = bytearray(data)
    limit = min(head, len(buf))
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        at = rng.randrange(max(limit - 8, 1))
        if op < 0.5:
            buf[at] ^= 1 << rng.randrange(8)
        elif op < 0.8:
            buf[at:at + 8] = rng.choice((1 << 62, 1 << 31, (1 << 64) - 1, 0, 7)).to_bytes(8, "little")
        else:
            buf[at:at + 4] = rng.choice((6, 8, 10, 12, 255)).to_bytes(4, "little")  # a value-type field
    if rng.random() < 0.1:
        del buf[rng.randrange(len(buf) + 1):]
    return bytes(buf)


# ---- targets -----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _engine() -> Any:
    from engine.session import Engine

    return Engine(evaluator="python")


@lru_cache(maxsize=1)
def _default_model() -> Any:
    from facts.registry import resolve_model_spec

    return resolve_model_spec("Qwen3-8B-GGUF")


@lru_cache(maxsize=1)
def _default_hardware() -> Any:
    from facts.lemonade import from_system_info

    return from_system_info((FIX / "system-info" / "rtx-4090-desktop-linux.json").read_text(encoding="utf-8"))


def _answer(hw: Any, model: Any) -> None:
    """Recommend and render as the CLI does (JSON envelope and explain text)."""
    from engine.envelope import envelope
    from engine.render import recommendation_dict

    rec = _engine().recommend(hw, model, force=True)
    json.dumps(envelope("recommendation", recommendation_dict(rec)), default=str)
    hw.model_dump_json()
    model.model_dump_json()


def _in_file(tmp: Path, name: str, data: str | bytes) -> Path:
    path = tmp / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(data)
    return path


@cache
def _json_fixture(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _pick(rng: random.Random, folder: str, pattern: str) -> Path:
    return rng.choice(sorted((FIX / folder).glob(pattern)))


def system_info(rng: random.Random, tmp: Path) -> None:
    from engine.inputs import hardware

    doc = _json_fixture(_pick(rng, "system-info", "*.json"))
    path = _in_file(tmp, "system-info.json", mutate_json(doc, rng))
    _answer(hardware(system_info=str(path)), _default_model())


def llama_devices(rng: random.Random, tmp: Path) -> None:
    from engine.inputs import hardware

    text = _pick(rng, "llama-devices", "*.txt").read_text(encoding="utf-8")
    path = _in_file(tmp, "devices.txt", mutate_text(text, rng))
    _answer(hardware(llama_devices=str(path)), _default_model())


MODEL_FACTS = {"architecture": "qwen3moe", "params_b": 30.5, "active_params_b": 3.3, "quant": "Q4_K_M",
               "size_gib": 17.3, "block_count": 48, "embedding_length": 2048, "head_count": 32,
               "head_count_kv": [4], "key_length": 128, "value_length": 128, "expert_count": 128,
               "expert_used_count": 8, "trained_ctx": 262144, "vocab_size": 151936, "is_moe": True,
               "labels": ["reasoning"]}


def model_facts(rng: random.Random, tmp: Path) -> None:
    from engine.inputs import model

    path = _in_file(tmp, "model.json", mutate_json(MODEL_FACTS, rng))
    _answer(_default_hardware(), model(str(path)))


def gguf(rng: random.Random, tmp: Path) -> None:
    """The header reader itself (a refusal here is what `engine.inputs.model` turns into size-based facts)."""
    from facts.gguf import read_model_facts

    data = _pick(rng, "gguf", "*.gguf").read_bytes()
    path = _in_file(tmp, "model.gguf", mutate_bytes(data, rng))
    _answer(_default_hardware(), read_model_facts(path))


def rulebook(rng: random.Random, tmp: Path) -> None:
    from engine.evaluators import make_evaluator
    from engine.lint import lint
    from engine.rulebook import load_rulebook

    good = FIX / "rulebooks" / "good"
    root = tmp / "rulebook"
    for src in good.rglob("*.yaml"):
        dst = root / src.relative_to(good)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    victim = rng.choice(sorted(root.rglob("*.yaml")))
    text = victim.read_text(encoding="utf-8")
    if rng.random() < 0.15:
        n = rng.choice((5, 9))
        bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
            f"*a{i - 1}]\n" for i in range(1, n))
        text = bomb + text
    else:
        text = mutate_text(text, rng)
    _in_file(tmp, str(victim.relative_to(tmp)), text)
    book = load_rulebook(root, cache=False)
    make_evaluator(book, "python")
    lint(root)


def curate(rng: random.Random, tmp: Path) -> None:
    from engine.commands.curate import read_rows
    from engine.curate.curate import curate_rows

    src = rng.choice([FIX / "bench" / n for n in ("llama-bench-rtx4080.csv", "llama-bench-rtx4080.json",
                                                   "llama-bench-rtx4080.jsonl", "rx7900xt-vulkan.md",
                                                   "community-sample.csv")])
    text = src.read_text(encoding="utf-8")
    if src.suffix == ".json":
        mutated = mutate_json(json.loads(text), rng)
    elif src.name == "community-sample.csv":  # the header and a few rows: curate on 2,000 rows is seconds
        lines = text.splitlines()
        mutated = mutate_text("\n".join(lines[:1] + rng.sample(lines[1:], 8)), rng)
    else:
        mutated = mutate_text(text, rng)
    path = _in_file(tmp, src.name, mutated)
    rows, protos, _ = read_rows([str(path)])
    curate_rows(rows, protos)


def lemonade_bench(rng: random.Random, tmp: Path) -> None:
    from engine.adaptive import learn, measure

    doc = _json_fixture(_pick(rng, "bench/lemonade", "*.json"))
    path = _in_file(tmp, "bench.json", mutate_json(doc, rng))
    ms = measure.read_bench(path)
    for m in ms:
        json.dumps(m.to_dict(), default=str)
        learn.config_params(m)


TARGETS: dict[str, Callable[[random.Random, Path], None]] = {
    "system-info": system_info, "llama-devices": llama_devices, "model-facts": model_facts, "gguf": gguf,
    "rulebook": rulebook, "curate": curate, "lemonade-bench": lemonade_bench}


@dataclass
class Outcome:
    status: str  # ok | rejected
    message: str = ""


def run(target: str, seed: int) -> Outcome:
    """Run one example; a crash (not a project error) propagates."""
    from engine.errors import EngineError
    from facts.errors import FactsError

    rng = random.Random(f"{target}:{seed}")
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        try:
            TARGETS[target](rng, Path(tmp))
        except (FactsError, EngineError, OSError) as err:
            if getattr(err, "exit_code", 2) == 3:
                raise
            return Outcome("rejected", str(err)[:300])
    return Outcome("ok")
