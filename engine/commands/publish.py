"""`engine publish RULEBOOK_DIR --repo DIR --keys DIR`: add a rulebook version to a TUF repository of static files
(`--keygen DIR` makes the keys, `--timestamp` re-signs the timestamp, `--rotate ROLE` replaces a key)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "publish", help="publish a rulebook to a TUF repository (static files)",
        description="Add RULEBOOK_DIR as the next version of the TUF repository in --repo (created when missing, "
                    "which needs the root key), checked with engine lint and the flag allowlist like a client "
                    "checks it; re-signs targets, snapshot and timestamp with new versions and expiry. Serve the "
                    "directory with any static HTTP host. Keys: `engine publish --keygen DIR` (one Ed25519 key per "
                    "role; keep root.key offline). See docs/profiles.md.")
    p.add_argument("rulebook", nargs="?", metavar="RULEBOOK_DIR", help="the rulebook directory to publish")
    p.add_argument("--repo", metavar="DIR", help="the repository directory (metadata/ and targets/)")
    p.add_argument("--keys", metavar="DIR", help="the directory with targets.key, snapshot.key, timestamp.key")
    p.add_argument("--root-key", metavar="FILE", help="the (offline) root key: to create the repository or rotate "
                                                      "a key (default when creating: KEYS/root.key)")
    p.add_argument("--version", type=int, metavar="N", help="the rulebook version (default: the latest + 1)")
    p.add_argument("--keygen", metavar="DIR", help="write a new key per role (root, targets, snapshot, timestamp)")
    p.add_argument("--timestamp", action="store_true", help="only re-sign the timestamp (a cron job, online key)")
    p.add_argument("--rotate", metavar="ROLE", help="replace ROLE's key with --new-key (signed by --root-key)")
    p.add_argument("--new-key", metavar="FILE", help="the new key for --rotate")
    for role, days in (("timestamp", 7), ("snapshot", 30), ("targets", 90), ("root", 365)):
        p.add_argument(f"--{role}-days", type=float, default=float(days), metavar="DAYS",
                       help=f"days until the {role} metadata expires (default {days})")
    add_json_flag(p)
    p.set_defaults(func=run)


def _need(args: argparse.Namespace, *names: str) -> None:
    from engine.errors import UsageError

    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(args, n)]
    if missing:
        raise UsageError(f"engine publish: {' and '.join(missing)} required here (engine publish -h)")


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.errors import UsageError
    from engine.profiles import publisher

    expiry = publisher.Expiry({r: getattr(args, f"{r}_days") for r in publisher.ROLES})
    if args.keygen:
        paths = publisher.keygen(Path(args.keygen))
        out: dict[str, Any] = {"keys": [str(p) for p in paths]}
        text = ("wrote " + ", ".join(str(p) for p in paths) + "\nkeep root.key offline (it is needed only to create "
                "the repository and to rotate keys); targets.key signs rulebooks; snapshot.key and timestamp.key are "
                "the online keys")
    elif args.rotate:
        _need(args, "repo", "keys", "root_key", "new_key")
        out = publisher.rotate(Path(args.repo), Path(args.keys), args.rotate, Path(args.new_key), Path(args.root_key),
                               expiry=expiry)
        text = (f"rotated the {args.rotate} key (root version {out['metadata']['root']}); "
                f"now put {args.new_key} in {args.keys} as {args.rotate}.key")
    elif args.timestamp:
        _need(args, "repo", "keys")
        out = publisher.resign_timestamp(Path(args.repo), Path(args.keys), expiry=expiry)
        text = f"timestamp version {out['metadata']['timestamp']}, expires {out['expires']}"
    else:
        if not args.rulebook:
            raise UsageError("engine publish: give RULEBOOK_DIR (or --keygen / --timestamp / --rotate)")
        _need(args, "repo", "keys")
        out = publisher.publish(Path(args.rulebook), Path(args.repo), Path(args.keys), version=args.version,
                                root_key=Path(args.root_key) if args.root_key else None, expiry=expiry)
        text = (f"{'created ' + args.repo + '; ' if out['created'] else ''}published remote@{out['version']} "
                f"({out['rules']} rules, {out['bytes']} bytes, sha256 {out['sha256'][:12]}); metadata versions "
                + ", ".join(f"{k} {v}" for k, v in out["metadata"].items())
                + f"; timestamp expires {out['expires']['timestamp']}")
    if args.json:
        print_json("publish", out)
    else:
        print(text)
        if not args.keygen and not args.timestamp:
            print(f"clients trust {Path(args.repo) / 'metadata' / '1.root.json'}; serve {args.repo} as static files",
                  file=sys.stderr)
    return 0
