"""`engine serve`: the recommendation API for lemond (POST /v1/recommend at load time), on loopback."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve recommendations over HTTP for lemond (loopback only)",
        description="Serve POST /v1/recommend, GET /v1/archetype, /v1/status, /v1/health, POST /v1/reload and "
                    "the OpenAPI document (/openapi.json). Hardware facts are read once at start.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=13306, help="port (default 13306; lemond's is 13305)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host and remote clients")
    p.add_argument("--max-body", type=int, default=1 << 20, metavar="BYTES", help="request body cap (1 MiB)")
    p.add_argument("--rate", type=float, default=2000.0, metavar="N",
                   help="requests per second per client (default 2000; 0 = unlimited)")
    p.add_argument("--burst", type=float, default=4000.0, metavar="N", help="rate-limit burst (default 4000)")
    facts = p.add_mutually_exclusive_group()
    facts.add_argument("--system-info", metavar="FILE", help="hardware facts from a Lemonade system-info file")
    facts.add_argument("--lemonade", metavar="URL", help="hardware facts from this lemond's GET /v1/system-info")
    p.add_argument("--engine", choices=("durable", "python"), default=None, help="rule evaluator")
    p.add_argument("--no-autotune", action="store_true", help="answer with Lemonade's defaults (auto-tune off)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import UsageError
    from engine.serve.runner import Options, serve

    if not 0 <= args.port < 65536:
        raise UsageError(f"--port {args.port}: expected 0..65535")
    if args.max_body < 1 or args.rate < 0 or args.burst < 1:
        raise UsageError("--max-body and --burst must be positive, --rate not negative")
    serve(Options(host=args.host, port=args.port, allow_remote=args.allow_remote, max_body=args.max_body,
                  rate=args.rate, burst=args.burst, system_info=args.system_info, lemonade=args.lemonade,
                  no_autotune=args.no_autotune, evaluator=args.engine, log_level=args.log_level))
    return 0
