"""`engine memory`: llama.cpp memory estimate (weights, KV, SWA KV, recurrent state, compute) for one model."""

from __future__ import annotations

import argparse
from typing import Any

from engine.commands._common import add_json_flag

# facts.memory.CACHE_TYPES, spelt out: building the CLI parser imports no pydantic (a test keeps them equal)
CACHE_CHOICES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "memory", help="estimate llama.cpp memory for a model (KV, SWA, recurrent state, compute, weights)",
        description="Estimate the memory llama-server needs for MODEL (a .gguf file, a model-facts .json or a "
                    "Lemonade registry name; registry names are size-based and marked estimated). Flags and "
                    "defaults are llama-server's.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-c", "--ctx-size", type=int, default=0, help="context size (default 0 = the trained context)")
    p.add_argument("-b", "--batch-size", type=int, default=2048, help="logical batch size (default 2048)")
    p.add_argument("-ub", "--ubatch-size", type=int, default=512, help="physical batch size (default 512)")
    p.add_argument("-ctk", "--cache-type-k", choices=CACHE_CHOICES, default="f16", help="K cache type (default f16)")
    p.add_argument("-ctv", "--cache-type-v", choices=CACHE_CHOICES, default="f16", help="V cache type (default f16)")
    p.add_argument("-fa", "--flash-attn", choices=("on", "off", "auto"), default="auto",
                   help="flash attention (default auto = on where the backend supports it)")
    p.add_argument("-np", "--parallel", type=int, default=-1,
                   help="server slots (default -1 = auto: 4 slots with a unified KV cache)")
    uni = p.add_mutually_exclusive_group()
    uni.add_argument("-kvu", "--kv-unified", dest="kv_unified", action="store_true", default=None,
                     help="one KV buffer shared by all slots (default: on when --parallel is auto)")
    uni.add_argument("-no-kvu", "--no-kv-unified", dest="kv_unified", action="store_false")
    p.add_argument("--swa-full", action="store_true", help="full-size SWA cache")
    p.add_argument("--system-info", metavar="FILE|-", help="Lemonade system-info: also show where the estimate goes "
                   "on this machine's GPUs (one line per device, against its own budget)")
    p.add_argument("--llama-devices", metavar="FILE|-", help="llama-server --list-devices output (device names)")
    p.add_argument("--backend", choices=("vulkan", "rocm", "cuda", "metal", "cpu"),
                   help="the llama.cpp backend for the placement (default: the machine's first GPU backend)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, trained_ctx: int | None) -> Any:
    from engine.errors import UsageError
    from facts.memory import Config

    if args.parallel == 0 or args.parallel < -1:
        raise UsageError(f"--parallel: must be -1 (auto) or >= 1, got {args.parallel}")
    for flag, v in (("--ctx-size", args.ctx_size), ("--batch-size", args.batch_size),
                    ("--ubatch-size", args.ubatch_size)):
        if v < (0 if flag == "--ctx-size" else 1):
            raise UsageError(f"{flag}: must be positive, got {v}")
    auto_np = args.parallel == -1
    unified = auto_np if args.kv_unified is None else args.kv_unified
    ctx = args.ctx_size or trained_ctx or 4096
    return Config(ctx_size=ctx, batch=args.batch_size, ubatch=args.ubatch_size, cache_type_k=args.cache_type_k,
                  cache_type_v=args.cache_type_v, flash_attn=args.flash_attn != "off",
                  parallel=4 if auto_np else args.parallel, kv_unified=unified, swa_full=args.swa_full)


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.errors import UsageError
    from facts.errors import FactsInputError
    from facts.memory import estimate
    from facts.registry import resolve_model_spec

    model = resolve_model_spec(args.model)
    cfg = _config(args, model.trained_ctx)
    try:
        est = estimate(model, cfg)
    except FactsInputError as err:
        raise UsageError("; ".join(err.problems)) from err
    payload = {
        "model": model.name or args.model,
        "architecture": model.architecture,
        "estimated": est.estimated,
        "config": {"ctx_size": cfg.ctx_size, "batch": cfg.batch, "ubatch": cfg.ubatch,
                   "cache_type_k": cfg.cache_type_k, "cache_type_v": cfg.cache_type_v,
                   "flash_attn": "on" if cfg.flash_attn else "off", "parallel": cfg.parallel,
                   "kv_unified": cfg.kv_unified, "swa_full": cfg.swa_full},
        "n_ctx": est.n_ctx, "kv_cells": est.kv_cells, "swa_cells": est.swa_cells, "n_stream": est.n_stream,
        "weights_bytes": est.weights_bytes, "kv_bytes": est.kv_bytes, "swa_kv_bytes": est.swa_kv_bytes,
        "recurrent_bytes": est.recurrent_bytes, "compute_bytes": est.compute_bytes,
        "mmproj_bytes": est.mmproj_bytes, "draft_bytes": est.draft_bytes, "total_bytes": est.total_bytes,
        "notes": list(est.notes),
    }
    fit = _placement(args, model, cfg)
    if fit is not None:
        payload["placement"] = {"backend": fit.params.get("backend"), "fits": fit.fits, "placed_by": fit.placed_by,
                                "mode": fit.plan.mode if fit.plan else "cpu",
                                "reason": fit.plan.reason if fit.plan else "",
                                "described": fit.placement.describe() if fit.placement else None,
                                "devices": fit.devices(), "cpu_bytes": fit.estimate.cpu_bytes if fit.estimate else None,
                                "flags": {k: list(fit.params[k]) if isinstance(fit.params[k], tuple) else fit.params[k]
                                          for k in ("device", "split_mode", "tensor_split") if k in fit.changed}}
    if args.json:
        print_json("memory", payload)
        return 0
    mib = 1 << 20
    rows = [("weights", est.weights_bytes, ""),
            ("KV cache", est.kv_bytes, f"{est.kv_cells} cells × {est.n_stream} stream(s)"),
            ("SWA KV cache", est.swa_kv_bytes, f"{est.swa_cells} cells × {est.n_stream} stream(s)"
             if est.swa_cells else ""),
            ("recurrent state", est.recurrent_bytes, ""),
            ("compute buffer", est.compute_bytes, f"ubatch {min(cfg.ubatch, cfg.batch, est.n_ctx)}"),
            ("projector", est.mmproj_bytes, ""), ("draft model", est.draft_bytes, ""),
            ("total", est.total_bytes, "")]
    title = f"{payload['model']} ({model.architecture or 'architecture unknown'})"
    print(title + ("  [estimated from size/name]" if est.estimated else ""))
    print(f"ctx {est.n_ctx}, ubatch {cfg.ubatch}, K {cfg.cache_type_k}, V {cfg.cache_type_v}, "
          f"flash-attn {'on' if cfg.flash_attn else 'off'}, parallel {cfg.parallel}"
          f"{' unified' if cfg.kv_unified else ''}")
    width = max(len(r[0]) for r in rows)
    for name, n, detail in rows:
        if n == 0 and name not in ("KV cache", "total"):
            continue
        if name == "total":
            print("-" * (width + 28))
        print(f"{name:<{width}}  {n / mib:>12.2f} MiB  {n:>14d} B  {detail}".rstrip())
    for note in est.notes:
        print(f"note: {note}")
    if fit is not None:
        _print_placement(payload["placement"])
    return 0


def _placement(args: argparse.Namespace, model: Any, cfg: Any) -> Any:
    """facts.fit.guard on this machine with the flags given (the context as set): per-device placement."""
    if not (args.system_info or args.llama_devices):
        return None
    from engine.context import recipe_backends
    from engine.inputs import hardware
    from facts.memory import guard

    hw = hardware(args.system_info, args.llama_devices)
    avail = recipe_backends(hw, "llamacpp")
    seen = {n.rstrip("0123456789") for g in hw.gpus for n in g.llama_devices}  # a device report names backends
    prefix = {"metal": "MTL", "cuda": "CUDA", "vulkan": "Vulkan", "rocm": "ROCm"}
    backend = args.backend or next((b for b in prefix if b in avail or prefix[b] in seen), "cpu")
    params = {"backend": backend, "ctx_size": cfg.ctx_size, "batch": cfg.batch, "ubatch": cfg.ubatch,
              "cache_type_k": cfg.cache_type_k, "cache_type_v": cfg.cache_type_v,
              "flash_attn": "on" if cfg.flash_attn else "off", "parallel": cfg.parallel,
              "kv_unified": "on" if cfg.kv_unified else "off"}
    return guard(hw, model, params, user=frozenset(params) - {"backend"})


def _print_placement(p: dict[str, Any]) -> None:
    gib = 1 << 30
    print(f"placement on this machine ({p['backend']}): {p['described'] or 'unknown'}"
          f"{'' if p['fits'] else '  DOES NOT FIT'}")
    for d in p["devices"]:
        name = d["name"] or f"GPU {d['index']}"
        print(f"  {name:<8} {d['label']:<24} {d['bytes'] / gib:>7.2f} GiB of {d['budget_bytes'] / gib:.2f} GiB "
              f"({d['share']:.0%} of the layers){'' if d['fits'] else '  over budget'}")
    if p["cpu_bytes"]:
        print(f"  {'CPU':<8} {'system RAM':<24} {p['cpu_bytes'] / gib:>7.2f} GiB")
    if p["reason"]:
        print(f"  device choice: {p['reason']}")
    for k, v in p["flags"].items():
        print(f"  {k} = {','.join(v) if isinstance(v, list) else v}")
