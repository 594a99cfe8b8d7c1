"""Hypothesis strategies shared by the whole test suite, one section per area."""

from __future__ import annotations

# ---- rule core part 2 (H6): hardware facts, model facts, rules for resolution properties ----------
from hypothesis import strategies as _st  # noqa: E402

from engine import ir as _ir  # noqa: E402
from facts.models import CPU as _CPU  # noqa: E402
from facts.models import GPU as _GPU  # noqa: E402
from facts.models import HardwareFacts as _HardwareFacts  # noqa: E402
from facts.models import Memory as _Memory  # noqa: E402
from facts.models import ModelFacts as _ModelFacts  # noqa: E402
from facts.models import OSInfo as _OSInfo  # noqa: E402

_GIB = 2**30
_LLAMA_BACKENDS = ("system", "metal", "cuda", "vulkan", "rocm", "cpu")
_GPU_CHOICES = (  # (vendor, name, arch, family, dedicated GiB, shared GiB, unified)
    ("amd", "Radeon 8060S", "gfx1151", "rdna3.5", 0.5, 124.0, True),
    ("amd", "Radeon RX 7900 XTX", "gfx1100", "rdna3", 24.0, 32.0, False),
    ("amd", "Radeon 780M", "gfx1103", "rdna3", None, None, True),
    ("nvidia", "NVIDIA GeForce RTX 4090", "sm_89", "ada", 24.0, None, False),
    ("nvidia", "NVIDIA GeForce RTX 3060", "sm_86", "ampere", 12.0, None, False),
    ("apple", "Apple M3 Max", None, None, None, 48.0, True),
    ("intel", "Intel Arc B580", None, None, 12.0, None, False),
)


@_st.composite
def hardware_facts(draw) -> _HardwareFacts:
    """Valid HardwareFacts: an OS, a CPU, RAM, zero to two GPUs, and (maybe) Lemonade's backend lists."""
    os_name = draw(_st.sampled_from(("linux", "windows", "macos", "unknown")))
    cores = draw(_st.integers(1, 64))
    cpu = _CPU(arch=draw(_st.sampled_from(("x86_64", "arm64", "unknown"))), physical_cores=cores,
               threads=cores * draw(_st.sampled_from((1, 2))),
               isa=tuple(sorted(draw(_st.sets(_st.sampled_from(("avx", "avx2", "avx512", "neon")))))))
    ram = draw(_st.sampled_from((8, 16, 32, 64, 128, 256))) * _GIB
    gpus = []
    for i, g in enumerate(draw(_st.lists(_st.sampled_from(_GPU_CHOICES), max_size=2))):
        vendor, name, arch, family, ded, shared, unified = g
        gpus.append(_GPU(vendor=vendor, name=name, arch=arch, family=family, index=i, unified=unified,
                         dedicated_bytes=None if ded is None else int(ded * _GIB),
                         shared_bytes=None if shared is None else int(shared * _GIB)))
    listed = draw(_st.lists(_st.sampled_from(_LLAMA_BACKENDS), unique=True, max_size=4))
    installed = [b for b in listed if draw(_st.booleans())]
    default = {"llamacpp": listed[0]} if listed and draw(_st.booleans()) else {}
    return _HardwareFacts(os=_OSInfo(name=os_name), cpu=cpu, memory=_Memory(total_bytes=ram),
                          gpus=tuple(gpus), backends=tuple(f"llamacpp:{b}" for b in listed),
                          installed_backends=tuple(f"llamacpp:{b}" for b in installed),
                          default_backends=default, source="hypothesis")


@_st.composite
def model_facts(draw) -> _ModelFacts:
    """Valid llama.cpp ModelFacts: size, quant, MoE or dense, maybe a trained context and a file size."""
    params = draw(_st.floats(0.1, 700, allow_nan=False))
    moe = draw(_st.booleans())
    quant = draw(_st.sampled_from(("Q4_K_M", "Q8_0", "BF16", "F16", "UD-Q4_K_XL", "MXFP4", "IQ2_XXS", None)))
    return _ModelFacts(name=f"m-{params:.1f}b", recipe="llamacpp", params_b=params, is_moe=moe,
                       active_params_b=params / 8 if moe else None, quant=quant,
                       file_bytes=draw(_st.one_of(_st.none(), _st.just(int(params * 0.6 * _GIB) + 1))),
                       trained_ctx=draw(_st.sampled_from((None, 4096, 32768, 131072))))


# small rule universe over a few context attributes (resolution properties)
RULE_ATTRS = {"os": ("linux", "windows", "macos"), "precision": ("quantized", "16bit"),
              "scenario": ("chat", "coding", "long-context")}
RULE_PARAMS = {"ubatch": (256, 512, 1024, "default"), "flash_attn": ("on", "off", "auto", "default"),
               "threads": (4, 8, "default"), "mmap": ("on", "off", "default")}


@_st.composite
def ir_rules(draw, prefix: str = "r", min_size: int = 0, max_size: int = 12) -> list[_ir.Rule]:
    """Random non-recipe-default rules with unique ids and unique (layer, priority) per parameter value."""
    n = draw(_st.integers(min_size, max_size))
    rules = []
    used: set[tuple[str, int]] = set()
    for i in range(n):
        layer = draw(_st.sampled_from(_ir.LAYERS[1:]))
        priority = draw(_st.integers(0, 999))
        if (layer, priority) in used:  # lint forbids same-layer same-priority conflicts
            continue
        used.add((layer, priority))
        when = tuple(_ir.Condition(a, "eq", draw(_st.sampled_from(v)))
                     for a, v in RULE_ATTRS.items() if draw(_st.booleans()))
        params = draw(_st.sets(_st.sampled_from(sorted(RULE_PARAMS)), min_size=1))
        sets = {p: draw(_st.sampled_from(RULE_PARAMS[p])) for p in sorted(params)}
        rules.append(_ir.Rule(f"{prefix}{i}", "generated", layer, priority, when, sets, f"gen.yaml:{i + 1}"))
    return rules


# ---- rule core part 1 (H3): random IR rulebooks, typed contexts, arbitrary YAML ----------------------
from engine._attributes import CONTEXT_ATTRIBUTES as _CONTEXT_ATTRIBUTES  # noqa: E402
from engine._attributes import KIND_OPS as _KIND_OPS  # noqa: E402

# Small value pools so that random rules and random contexts actually meet.
_POOLS = {
    "recipe": ("llamacpp", "vllm"),
    "family": ("rdna3", "rdna3.5", "ada", "weird \"q\" é"),
    "archetype": ("a-1", "a-2", "a-3", "cpu"),
    "backends": ("vulkan", "rocm", "cpu", "cuda"),
    "scenario": ("chat", "coding"),
    "params_b": (0.5, 7.0, 8.0, 32.0, 70.5, 1e-05, 2e20 / 1e10),
    "mem_bucket_gb": (8, 16, 24, 128),
    "unified": (True, False),
}
_KINDS = {attr: _CONTEXT_ATTRIBUTES[attr].kind for attr in _POOLS}
# Values at and past what durable-rules compares exactly (strings over 4,096 bytes, shared long prefixes, lone
# surrogates, numbers beyond +-2**53 or not finite): both evaluators must give the same answer or the same error.
_EDGE_STRINGS = ("x" * 4096, "x" * 4097, "x" * 4096 + "-other", "x" * 65_535, "x" * 65_535 + "-other",
                 "é" * 2048, "é" * 2049, "qwen3\ud800", "\udfff", "")
_EDGE = {"str": _EDGE_STRINGS, "set": _EDGE_STRINGS, "bool": (),
         "float": (2.0**53, 2.0**53 + 2, -0.0, 5e-324, 1e308, float("inf"), float("nan")),
         "int": (2**53, 2**53 + 1, -(2**53), 10**400)}


def _ops_for(kind: str) -> tuple[str, ...]:
    return tuple(op for op in _ir.OPS if op in _KIND_OPS[kind])


@_st.composite
def ir_conditions(draw, typed: bool = True, edge: bool = False) -> _ir.Condition:
    """One condition; `typed=False` also draws ops and values of the wrong type (compiler edge cases);
    `edge=True` also draws values at and past the evaluators' limits."""
    attr = draw(_st.sampled_from(sorted(_POOLS)))
    kind = _KINDS[attr]
    op = draw(_st.sampled_from(_ir.OPS if not typed else _ops_for(kind)))
    pool = _POOLS[attr] + (_EDGE[kind] if edge else ())
    if not typed and draw(_st.integers(0, 4)) == 0:
        pool = pool + ("x", 3, 2.5, True)
    if op in ("exists", "missing"):
        return _ir.Condition(attr, op)
    if op in ("in", "not_in"):
        return _ir.Condition(attr, op, tuple(draw(_st.lists(_st.sampled_from(pool), min_size=1, max_size=3,
                                                            unique=True))))
    value = draw(_st.sampled_from(pool))
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return _ir.Condition(attr, op, value)


@_st.composite
def ir_rulebooks(draw, min_rules: int = 1, max_rules: int = 25, typed: bool = True,
                 edge: bool = False) -> _ir.Rulebook:
    """Random rulebooks with frequent salience ties (two layers, priorities 0 or 10)."""
    n = draw(_st.integers(min_rules, max_rules))
    rules = []
    for i in range(n):
        when = tuple(draw(_st.lists(ir_conditions(typed=typed, edge=edge), max_size=4)))
        rules.append(_ir.Rule(id=f"r{i}", description="random", layer=draw(_st.sampled_from(("family", "archetype"))),
                              priority=draw(_st.sampled_from((0, 10))), when=when, set={"batch": 512},
                              source=f"gen.yaml:{i + 1}", index=i))
    return _ir.Rulebook(rules=tuple(rules), digest=f"{draw(_st.integers(0, 2**32)):064x}")


@_st.composite
def typed_contexts(draw, edge: bool = False) -> dict:
    """A flat typed context over the attributes of ir_rulebooks; every key optional. `edge=True` also draws
    values at and past the evaluators' limits (such a context may be refused: ContextError)."""
    ctx = {}
    for attr, pool in _POOLS.items():
        if not draw(_st.booleans()):
            continue
        if edge and _EDGE[_KINDS[attr]] and draw(_st.integers(0, 2)) == 0:
            edge_value = draw(_st.sampled_from(_EDGE[_KINDS[attr]]))
            ctx[attr] = frozenset((edge_value,)) if _KINDS[attr] == "set" else edge_value
            continue
        if _KINDS[attr] == "set":
            ctx[attr] = frozenset(draw(_st.lists(_st.sampled_from(pool), max_size=3)))
        elif _KINDS[attr] == "float":
            ctx[attr] = draw(_st.one_of(_st.sampled_from(pool), _st.floats(0.1, 200.0),
                                        _st.floats(-1e15, 1e15, allow_nan=False)))
        elif _KINDS[attr] == "int":
            ctx[attr] = draw(_st.one_of(_st.sampled_from(pool), _st.integers(1, 512)))
        else:
            ctx[attr] = draw(_st.sampled_from(pool))
    return ctx


_YAML_SCALARS = _st.one_of(_st.none(), _st.booleans(), _st.integers(-10**6, 10**6), _st.floats(allow_nan=True),
                           _st.text(max_size=12), _st.sampled_from(("on", "off", "auto", "default", "all",
                                                                      "llamacpp", "vulkan", "recipe-default")))
_YAML_TREES = _st.recursive(_YAML_SCALARS, lambda kids: _st.one_of(
    _st.lists(kids, max_size=4), _st.dictionaries(_st.sampled_from(
        ("rules", "id", "description", "layer", "priority", "when", "set", "evidence", "recipe", "params_b",
         "backend", "ctx_size", "ge", "in", "x")), kids, max_size=5)), max_leaves=20)


@_st.composite
def yaml_texts(draw) -> str:
    """Arbitrary YAML-ish text: dumped random trees, rule-shaped trees, or raw junk."""
    import yaml as _yaml

    kind = draw(_st.integers(0, 2))
    if kind == 0:
        return _yaml.safe_dump(draw(_YAML_TREES), allow_unicode=True)
    if kind == 1:
        rule = draw(_st.dictionaries(_st.sampled_from(("id", "description", "layer", "priority", "when", "set",
                                                        "evidence")), _YAML_TREES, max_size=7))
        return _yaml.safe_dump({"rules": [rule]}, allow_unicode=True)
    return draw(_st.text(alphabet=" \n\t:-[]{}&*!|>'\"%@`#,?abc01", max_size=60))


# ---- hardware facts and archetypes (H1): the whole valid input space of classify() --------------------
def _catalog_names() -> list[str]:
    from facts import catalog

    return [r.marketing_name for r in catalog.rows()]


_REAL_NAMES = (  # as tools print them, incl. generic names that match no catalog row
    "110501", "110000", "AMD Radeon(TM) Graphics", "AMD Radeon Graphics (RADV GFX1151)", "Orin (nvgpu)",
    "NVIDIA GeForce RTX 2060", "Apple M5 Max", "Intel(R) Iris(R) Xe Graphics", "Metal GPU", "",
)
_ARCHS = (None, "gfx1151", "gfx1100", "gfx1103", "gfx942", "gfx90a", "gfx1201", "gfx1036", "gfx9999", "sm_89", "sm_86",
          "sm_121", "sm_61", "sm_75", "apple-m3-max-40c", "intel-bmg-g21", "adreno-x1-85", "weird")
_FAMILIES = (None, "rdna3.5", "rdna3", "ada", "ampere", "apple-m3", "xe2", "adreno-x1", "mystery")
_CLASSES = (None, "discrete", "laptop-discrete", "apu-igpu", "display-igpu", "soc", "datacenter")


@_st.composite
def any_gpu(draw, *, max_gib: int = 600) -> _GPU:
    """Any valid GPU fact: catalog and real-world names, known and unknown ids, any memory, maybe nothing."""
    opt_bytes = _st.one_of(_st.none(), _st.integers(0, max_gib * _GIB))
    return _GPU(
        vendor=draw(_st.sampled_from(("amd", "nvidia", "apple", "intel", "qualcomm", "unknown"))),
        name=draw(_st.one_of(_st.sampled_from(_catalog_names()), _st.sampled_from(_REAL_NAMES),
                             _st.text(max_size=30))),
        arch=draw(_st.sampled_from(_ARCHS)),
        family=draw(_st.sampled_from(_FAMILIES)),
        device_class=draw(_st.sampled_from(_CLASSES)),
        dedicated_bytes=draw(opt_bytes),
        shared_bytes=draw(opt_bytes),
        free_bytes=draw(opt_bytes),
        bandwidth_gbs=draw(_st.one_of(_st.none(), _st.floats(0.5, 20000))),
        unified=draw(_st.sampled_from((None, True, False))),
        integrated=draw(_st.sampled_from((None, True, False))),
        compute_units=draw(_st.one_of(_st.none(), _st.integers(1, 400))),
        pci_id=draw(_st.sampled_from((None, "1002:1586", "1002:744c", "10de:2684", "8086:e20b", "abcd:0001"))),
    )


@_st.composite
def any_hardware_facts(draw, *, max_gpus: int = 4) -> _HardwareFacts:
    """Any valid HardwareFacts for classify(): any CPU, RAM known or not, zero to `max_gpus` GPUs."""
    cpu = _CPU(name=draw(_st.one_of(_st.none(), _st.sampled_from((
        "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", "AMD Ryzen 9 5950X 16-Core Processor", "Apple M3 Max",
        "AMD EPYC 9654 96-Core Processor", "Intel(R) Core(TM) Ultra 7 155H", "Snapdragon X Elite")), _st.text(max_size=20))),
        arch=draw(_st.sampled_from(("x86_64", "arm64", "unknown"))),
        isa=tuple(sorted(draw(_st.sets(_st.sampled_from(("avx", "avx2", "avx512", "neon", "sve")))))))
    total = draw(_st.one_of(_st.none(), _st.integers(1, 2048 * _GIB)))
    nominal = draw(_st.one_of(_st.none(), _st.sampled_from((8, 16, 24, 32, 36, 48, 64, 96, 128, 192, 512)),
                              _st.integers(1, 4096)))
    return _HardwareFacts(os=_OSInfo(name=draw(_st.sampled_from(("linux", "windows", "macos", "unknown")))),
                          cpu=cpu, memory=_Memory(total_bytes=total, nominal_gb=nominal),
                          gpus=tuple(draw(_st.lists(any_gpu(), max_size=max_gpus))), source="hypothesis")
