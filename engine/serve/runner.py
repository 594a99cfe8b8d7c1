"""Run `engine serve` under uvicorn: facts detected once at start, loopback only unless allowed, bounded."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from engine.errors import UsageError
from engine.serve.limits import is_loopback


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 13306
    allow_remote: bool = False
    max_body: int = 1 << 20
    rate: float = 2000.0  # requests per second per client (0 = unlimited)
    burst: float = 4000.0
    concurrency: int = 64  # open connections + tasks before uvicorn answers 503
    system_info: str | None = None
    lemonade: str | None = None  # take the hardware facts from this lemond's system-info
    no_autotune: bool = False
    evaluator: str | None = None
    log_level: str = "warning"


def startup_hardware(opts: Options) -> tuple[Any, str]:
    """The hardware facts every request without `system_info` uses, and where they came from."""
    if opts.system_info:
        from engine.inputs import hardware

        return hardware(opts.system_info), f"--system-info {opts.system_info}"
    if opts.lemonade:
        from engine.lemonade.client import LemondClient
        from facts.lemonade import from_system_info

        client = LemondClient(opts.lemonade)
        return from_system_info(client.system_info(), source=f"system-info:{client.url}"), f"lemond {client.url}"
    from facts.detect import detect

    return detect(), "detected on this machine at start"


def build(opts: Options) -> Any:
    from engine.serve.app import ServeState, create_app

    if not opts.allow_remote and not is_loopback(opts.host):
        raise UsageError(f"--host {opts.host}: engine serve listens on loopback only; pass --allow-remote to "
                         "listen there (anyone who can reach it can then ask for recommendations)")
    hw, source = startup_hardware(opts)
    limits = {"max_body": opts.max_body, "rate": opts.rate, "burst": opts.burst, "concurrency": opts.concurrency,
              "allow_remote": opts.allow_remote}
    state = ServeState(hardware=hw, hardware_source=source, no_autotune=opts.no_autotune, evaluator=opts.evaluator,
                       limits=limits)
    return create_app(state, allow_remote=opts.allow_remote, max_body=opts.max_body, rate=opts.rate,
                      burst=opts.burst), state


def serve(opts: Options) -> None:
    import uvicorn

    app, state = build(opts)
    config = uvicorn.Config(app, host=opts.host, port=opts.port, log_level=opts.log_level, access_log=False,
                            proxy_headers=False, server_header=False, limit_concurrency=opts.concurrency,
                            lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    from engine.profiles.refresher import Refresher

    # a newer remote rulebook (fetched by this thread when due, or by `engine profiles update|pin`) is swapped in
    # atomically; requests in flight finish on the old one
    refresher = Refresher(state.gen.settings, state.reload).start()
    print(f"engine serve: http://{opts.host}:{opts.port} (OpenAPI at /openapi.json); {state.gen.engine.rulebook.name}, "
          f"auto-tune {state.gen.settings.autotune.why}; hardware {state.hardware_source}", file=sys.stderr,
          flush=True)
    try:
        server.run()
    finally:
        refresher.stop()
