"""`engine profiles status|update|pin VERSION|rollback`: the signed remote rulebook in use, fetching, pinning."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag


def _mirror_flags(p: Any) -> None:
    p.add_argument("--url", metavar="URL", help="the mirror (a TUF repository: metadata/ and targets/ below it); "
                                                "default: remote.url in config.yaml")
    p.add_argument("--trusted-root", metavar="ROOT.json", help="the root.json to trust for it; default: "
                                                               "remote.trusted_root, else the one shipped")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("profiles", help="the signed remote rulebook: status, update, pin, rollback",
                              description="Remote rulebooks are fetched from a TUF mirror, verified (signatures, "
                                          "versions, expiry, hashes), linted and checked against the flag "
                                          "allowlist before they replace the bundled rulebook. See "
                                          "docs/profiles.md.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("status", help="which rulebook is active, where from, and the remote's state")
    add_json_flag(s)
    u = sub.add_parser("update", help="check the mirror now and activate its latest rulebook")
    _mirror_flags(u)
    u.add_argument("--background", action="store_true", help=argparse.SUPPRESS)  # a start's detached refresh
    add_json_flag(u)
    pn = sub.add_parser("pin", help="activate VERSION and keep it (`latest` follows the mirror again)")
    pn.add_argument("version", metavar="VERSION", help="N, remote@N, bundled, or latest")
    _mirror_flags(pn)
    add_json_flag(pn)
    r = sub.add_parser("rollback", help="activate the newest stored version below the active one, pinned")
    add_json_flag(r)
    p.set_defaults(func=run)


def _status_text(d: dict[str, Any]) -> str:
    lines = [f"rulebook: {d['origin']}", f"remote: {d['state']}: {d['why']}"]
    if d.get("mirror"):
        latest = f"; latest remote@{d['remote_version']}" if d.get("remote_version") else ""
        lines.append(f"mirror: {d['mirror']}{latest}; next check {d.get('next_attempt') or 'at the next start'}")
    if d.get("installed"):
        lines.append("stored versions: " + ", ".join(f"remote@{v}" for v in d["installed"])
                     + ("  (pinned)" if d.get("pinned") else ""))
    return "\n".join(lines) + "\n"


def status_payload(settings: Any) -> dict[str, Any]:
    from engine.profiles import remote_status

    return {"origin": remote_status.origin(settings), **remote_status.remote(settings)}


def run(args: argparse.Namespace) -> int:
    from engine import config
    from engine.commands._common import print_json
    from engine.profiles import client, manage

    settings = config.load()
    if args.action == "status":
        d = status_payload(settings)
        if args.json:
            print_json("profiles-status", d)
        else:
            sys.stdout.write(_status_text(d))
        return 0
    if args.action == "update" and args.background:  # a start's refresh: quiet, gives way to a running one
        import contextlib

        from engine.errors import UserError

        with contextlib.suppress(UserError):
            client.update(settings, lock_timeout=0)
        return 0
    if not settings.remote.enabled and args.action in ("update", "pin"):
        from engine.errors import UsageError

        raise UsageError(f"remote rulebooks are {settings.remote.why}; nothing is fetched")
    if args.action == "update":
        out = client.update(settings, url=args.url, trusted_root=args.trusted_root)
    elif args.action == "rollback":
        out = manage.rollback()
    elif args.version.strip().lower() == "latest":
        manage.unpin()
        out = client.update(settings, url=args.url, trusted_root=args.trusted_root)
    else:
        out = manage.pin(settings, manage.parse_version(args.version), url=args.url, trusted_root=args.trusted_root)
    d = {**out.to_dict(), "status": status_payload(settings)}
    if args.json:
        print_json("profiles-" + args.action, d)
    else:
        print(f"{out.outcome}: {out.message} ({out.seconds * 1000:.0f} ms)")
        sys.stdout.write(_status_text(d["status"]))
    return 0 if out.ok else 1
