"""The YAML rulebook loader: schema, every error located as file:line:col field.path, digest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from engine import ir
from engine.rulebook import LocatedError, RulebookError, RulebookReadError, bundled_root, load_rulebook
from tests.strategies import yaml_texts

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "rulebooks"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _errors(*roots) -> list[LocatedError]:
    with pytest.raises(RulebookError) as err:
        load_rulebook(*roots)
    return err.value.errors


def test_good_rulebook_compiles_to_ir():
    book = load_rulebook(FIX / "good")
    assert [r.id for r in book.rules] == ["strix-halo-quantized-vulkan", "strix-halo-flash-attn",
                                          "default-backend-cpu", "default-vulkan-when-available", "default-params"]
    assert book.files == ("good/archetypes/strix-halo.yaml", "good/defaults.yaml")
    assert [r.index for r in book.rules] == [0, 1, 2, 3, 4]
    strix = book.rules[0]
    assert strix.source == "good/archetypes/strix-halo.yaml:2"
    assert strix.salience == 3020 and strix.layer == "archetype"
    assert strix.when == (
        ir.Condition("archetype", "eq", "amd-rdna3.5-gfx1151-unified-128gb-bw2"),
        ir.Condition("recipe", "eq", "llamacpp"),
        ir.Condition("precision", "eq", "quantized"),
        ir.Condition("params_b", "ge", 20.0),
        ir.Condition("params_b", "lt", 80.0),
        ir.Condition("family", "in", ("rdna3", "rdna3.5")),
        ir.Condition("backends", "contains", "rocm"),
        ir.Condition("scenario", "in", ("chat", "coding")),
    )
    assert isinstance(strix.when[3].value, float)  # float attributes are normalised
    assert dict(strix.set) == {"backend": "vulkan", "ubatch": 1024}
    ev = strix.evidence
    assert ev is not None and ev.n == 14 and ev.median_tps == 51.2 and ev.metric == "tg128"
    assert dict(ev.runner_up) == {"value": "rocm", "median_tps": 45.9, "n": 12}
    assert ev.dates == "2025-08-01"  # no YAML timestamps: dates stay strings
    assert book.rules[2].evidence == ir.Evidence(none=True)
    fa = book.rules[1]
    assert fa.set["flash_attn"] == "on"  # YAML 1.1 would have read `on` as true
    assert fa.set["extra_args"] == ("--no-op-offload", "--fit", "off")
    assert ir.Condition("fit_full_offload", "exists") in fa.when
    assert ir.Condition("quant", "not_in", ("F32",)) in fa.when


def test_every_error_is_reported_at_once_with_its_location():
    errors = _errors(FIX / "bad")
    lines = [str(e) for e in errors]
    base = "tests/fixtures/rulebooks/bad/"
    expected = [
        f"{base}list.yaml:1:1 expected a mapping with 'rules:' at the top, got list [document_type]",
        f"{base}schema.yaml:6:9 rules[1].id: String should match pattern '^[a-z0-9][a-z0-9._-]*$' "
        "[string_pattern_mismatch]",
        f"{base}schema.yaml:7:18 rules[1].description: String should have at least 1 character [string_too_short]",
        f"{base}schema.yaml:9:15 rules[1].priority: Input should be less than or equal to 999 [less_than_equal]",
        f"{base}schema.yaml:11:7 rules[1].when.recipee: unknown context attribute 'recipee'; did you mean recipe? "
        "[unknown_attribute]",
        f"{base}schema.yaml:12:22 rules[1].when.params_b.gt: params_b takes numbers, got string '20' [value_type]",
        f"{base}schema.yaml:13:12 rules[1].when.os.lt: 'lt' does not apply to os (str): ordering compares numbers "
        "only [operator_type]",
        f"{base}schema.yaml:16:17 rules[1].set.ctx_size: Input should be an integer 512..1048576 or one of 'auto', "
        "got 'big' [literal_error]",
        f"{base}schema.yaml:17:14 rules[1].set.batch: Input should be an integer 32..65536 or one of 'default', "
        "got '512' [int_type]",
        f"{base}schema.yaml:20:7 rules[1].set.mystery: unknown parameter 'mystery' (see engine.params.PARAMETERS) "
        "[unknown_parameter]",
        f"{base}schema.yaml:22:5 rules[1].extra: unknown field 'extra' [extra_forbidden]",
        f"{base}schema.yaml:26:37 rules[2].when.family: duplicate key 'family' (first at 26:26) [duplicate_key]",
        f"{base}schema.yaml:27:20 rules[2].set.backend: backend 'cuda' is not offered by recipe vllm "
        "(allowed: rocm) [backend_recipe]",
        f"{base}schema.yaml:28:9 rules[3].id: duplicate rule id 'fine-rule' (first defined at "
        f"{base}schema.yaml:2) [duplicate_id]",
        f"{base}schema.yaml:31:10 rules[3].set: a rule must set at least one parameter [empty_set]",
    ]
    for line in expected:
        assert line in lines
    codes = {e.code for e in errors}
    assert {"greater_than_equal", "param_type", "extra_args", "list_type", "unknown_operator", "literal_error",
            "yaml_syntax"} <= codes
    syntax = next(e for e in errors if e.code == "yaml_syntax")
    assert (syntax.path, syntax.line) == (f"{base}syntax.yaml", 4)
    assert "started at line 3" in syntax.message
    layer = next(e for e in errors if e.loc == "rules[1].layer")
    assert (layer.line, layer.col, layer.code) == (8, 12, "literal_error")
    assert len(errors) == 22


def test_error_objects_carry_their_data(tmp_path):
    _write(tmp_path, "m/qwen3.yaml", "rules:\n" + "  - id: a\n    description: d\n    layer: family\n"
           "    set: {batch: 64}\n" * 2 + "  - id: c\n    description: d\n    layer: family\n"
           "    set:\n      ctx_size: x\n")
    (err,) = [e for e in _errors(tmp_path / "m") if e.code != "duplicate_id"]
    assert (err.line, err.col, err.loc, err.code) == (14, 17, "rules[2].set.ctx_size", "literal_error")
    assert err.path.endswith("m/qwen3.yaml")
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path / "m")
    assert isinstance(info.value, ValueError)
    from engine.errors import EngineError

    assert isinstance(info.value, EngineError)
    assert "rulebook has 2 errors" in str(info.value)


def test_duplicate_ids_across_files_and_roots(tmp_path):
    rule = "rules:\n  - id: same\n    description: d\n    layer: family\n    set: {batch: 64}\n"
    _write(tmp_path, "one/a.yaml", rule)
    _write(tmp_path, "two/b.yaml", "# comment\n" + rule)
    (err,) = _errors(tmp_path / "one", tmp_path / "two")
    assert err.code == "duplicate_id" and err.line == 3 and err.path.endswith("two/b.yaml")
    assert "first defined at" in err.message and "one/a.yaml:2" in err.message


@pytest.mark.parametrize("text, code, line", [
    ("", "empty_document", 1),
    ("just a string\n", "document_type", 1),
    ("rules: 3\n", "list_type", 1),
    ("other: []\n", "list_type", 1),
    ("rules: []\n---\nrules: []\n", "yaml_syntax", 2),
    ("rules:\n  - id: a\n    id: b\n", "duplicate_key", 3),
    ("rules:\n  - [1, 2\n", "yaml_syntax", 3),
    ("rules:\n  - *nope\n", "yaml_syntax", 2),
    ("rules:\n  - {? [a]: 1}\n", "yaml_syntax", 2),
])
def test_malformed_documents_are_located_errors(tmp_path, text, code, line):
    _write(tmp_path, "r/x.yaml", text)
    errors = _errors(tmp_path / "r")
    assert code in {e.code for e in errors}
    assert next(e for e in errors if e.code == code).line == line


def test_a_bad_file_blocks_the_whole_rulebook(tmp_path):
    load_rulebook(FIX / "good")  # fine alone
    shutil.copytree(FIX / "good", tmp_path / "rb")
    _write(tmp_path, "rb/zz.yaml", "rules:\n  - id: x\n    description: d\n    layer: family\n    set: {batch: 1}\n")
    (err,) = _errors(tmp_path / "rb")
    assert err.code == "greater_than_equal"


def test_digest_names_the_content_not_the_location(tmp_path):
    a = load_rulebook(FIX / "good")
    shutil.copytree(FIX / "good", tmp_path / "good")
    b = load_rulebook(tmp_path / "good")
    assert a.digest == b.digest and len(a.digest) == 64
    assert a.name == f"rulebook@{a.digest[:12]}"
    path = tmp_path / "good" / "defaults.yaml"
    path.write_text(path.read_text() + "\n# a comment changes the bytes\n")
    assert load_rulebook(tmp_path / "good").digest != a.digest


def test_missing_root_is_a_read_error(tmp_path):
    with pytest.raises(RulebookReadError) as err:
        load_rulebook(tmp_path / "nope")
    assert err.value.errors[0].code == "not_found"
    assert err.value.exit_code == 2


def test_non_utf8_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x.yaml").write_bytes(b"rules: [\xff]\n")
    assert [e.code for e in _errors(tmp_path / "r")] == ["encoding"]


def test_recursive_alias_is_an_error_not_a_crash(tmp_path):
    _write(tmp_path, "r/x.yaml", "rules: &a\n  - *a\n")
    assert _errors(tmp_path / "r")


def test_a_billion_laughs_is_refused_at_its_aliases_without_expanding_them(tmp_path):
    """9 levels of 9 aliases each would be 387 million nodes; expanding them took 6 GiB and hung lint."""
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    _write(tmp_path, "r/x.yaml", bomb + "rules: []\n")
    errors = _errors(tmp_path / "r")
    assert errors and {e.code for e in errors} == {"yaml_alias"}
    assert "repeats the anchored node at line 1" in errors[0].message


def test_the_bundled_rulebook_loads_by_default():
    assert bundled_root().name == "rulebook" and bundled_root().is_dir()
    book = load_rulebook()
    assert book.rules and book.files and all(f.startswith("rulebook/") for f in book.files)
    assert load_rulebook(bundled_root()).digest == book.digest


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_texts())
def test_arbitrary_yaml_gives_a_rulebook_or_a_rulebook_error(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("rb")
    (root / "x.yaml").write_text(text, encoding="utf-8")
    try:
        book = load_rulebook(root)
    except RulebookError as err:
        assert err.errors and all(e.line >= 1 and e.col >= 1 and e.code for e in err.errors)
    else:
        assert isinstance(book, ir.Rulebook)


def test_yaml_scalars_are_read_strictly(tmp_path):
    """YAML 1.2 booleans only (on/yes stay strings), no sexagesimal numbers, exponent floats."""
    _write(tmp_path, "r/x.yaml", "rules:\n  - id: a\n    description: d\n    layer: family\n"
           "    when: {params_b: 1e3, family: 1:30, quant: yes, unified: true}\n"
           "    set: {flash_attn: off, mmap: on, kv_unified: default, batch: 0x40}\n")
    (rule,) = load_rulebook(tmp_path / "r").rules
    assert rule.when == (ir.Condition("params_b", "eq", 1000.0), ir.Condition("family", "eq", "1:30"),
                         ir.Condition("quant", "eq", "yes"), ir.Condition("unified", "eq", True))
    assert dict(rule.set) == {"flash_attn": "off", "mmap": "on", "kv_unified": "default", "batch": 64}


@pytest.mark.parametrize("when, code", [
    ("{params_b: .nan}", "value_type"),
    ("{mem_bucket_gb: 99999999999999999999}", "value_type"),
    ("{mem_bucket_gb: 1" + "0" * 400 + "}", "value_type"),  # too big for a float: no OverflowError
    ("{params_b: {lt: 1" + "0" * 400 + "}}", "value_type"),
    ("{mem_bucket_gb: 1" + "0" * 5000 + "}", "yaml_value"),  # past Python's int() limit: refused while parsing
    ("{family: \"qwen3\\ud800\"}", "yaml_syntax"),  # a lone surrogate: the YAML parser refuses the escape
    ("{family: " + "x" * 5000 + "}", "value_type"),  # over 4,096 bytes: durable-rules never matches it
    ("{backends: {lt: 3}}", "operator_type"),
    ("{recipe: {contains: llamacpp}}", "operator_type"),
    ("{os: freebsd}", "value_type"),
    ("{family: null}", "value_type"),
    ("{family: {exists: 1}}", "bool_type"),
    ("{family: {}}", "empty_condition"),
    ("{family: [a, [b]]}", "value_type"),
])
def test_condition_errors(tmp_path, when, code):
    _write(tmp_path, "r/x.yaml", f"rules:\n  - id: a\n    description: d\n    layer: family\n    when: {when}\n"
           "    set: {batch: 64}\n")
    (err,) = _errors(tmp_path / "r")
    assert (err.code, err.line) == (code, 5)


@pytest.mark.parametrize("n", ["1" + "0" * 12, "1" + "0" * 5000])
def test_evidence_counts_are_bounded_and_located(tmp_path, n):
    _write(tmp_path, "r/x.yaml", "rules:\n  - id: a\n    description: d\n    layer: family\n    when: {}\n"
           f"    set: {{batch: 64}}\n    evidence: {{n: {n}, metric: tg128}}\n")
    errors = _errors(tmp_path / "r")
    assert errors and all(e.line == 7 for e in errors)
    assert any("less than or equal to 1000000000" in e.message or "digits" in e.message for e in errors), errors


def test_exists_false_means_missing(tmp_path):
    _write(tmp_path, "r/x.yaml", "rules:\n  - id: a\n    description: d\n    layer: family\n"
           "    when: {family: {exists: false}, arch: {missing: false}}\n    set: {batch: 64}\n")
    (rule,) = load_rulebook(tmp_path / "r").rules
    assert rule.when == (ir.Condition("family", "missing"), ir.Condition("arch", "exists"))


def test_the_format_reference_documents_every_attribute_parameter_and_error_code():
    from engine._attributes import CONTEXT_ATTRIBUTES
    from engine.params import PARAMETERS
    from engine.recipes.llamacpp.flags import EXTRA_ARGS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rulebook.md").read_text(encoding="utf-8")
    for name in (*CONTEXT_ATTRIBUTES, *PARAMETERS, *ir.LAYERS, *ir.OPS):
        assert f"`{name}`" in doc, name
    for flag in EXTRA_ARGS:
        assert f"`{flag}" in doc or f"{flag}`" in doc, flag
    for code in ("unknown_attribute", "unknown_operator", "operator_type", "value_type", "duplicate_key",
                 "duplicate_id", "backend_recipe", "recipe_parameter", "empty_set", "yaml_syntax"):
        assert f"`{code}`" in doc, code


def test_only_yaml_files_outside_hidden_directories_are_read(tmp_path):
    shutil.copytree(FIX / "good", tmp_path / "rb")
    _write(tmp_path, "rb/.git/junk.yaml", "{{ not yaml")
    _write(tmp_path, "rb/notes.txt", "{{ not yaml")
    _write(tmp_path, "rb/.#editor-lock.yaml", "{{ not yaml")
    book = load_rulebook(tmp_path / "rb")
    assert book.files == ("rb/archetypes/strix-halo.yaml", "rb/defaults.yaml")
