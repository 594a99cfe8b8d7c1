"""Speed of remote rulebooks over loopback: publish, a full update (verify + download + lint + activate) of the
shipped rulebook, and a refresh that finds nothing new (the TUF "304": only the timestamp is fetched), medians.

    python bench/profiles_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import ROOT, median_seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profiles-speed-"))
    os.environ.update(LEMONADE_AUTOTUNE_PROFILES_DIR=str(tmp / "profiles"), LEMONADE_AUTOTUNE_CONFIG_DIR=str(tmp / "c"),
                      LEMONADE_AUTOTUNE_CACHE_DIR=str(tmp / "cache"))
    from engine import config
    from engine.profiles import client, publisher
    from engine.profiles.store import Store

    keys, repo = tmp / "keys", tmp / "repo"
    publisher.keygen(keys)
    publish_s = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        info = publisher.publish(ROOT / "rulebook", repo, keys)
        publish_s.append(time.perf_counter() - t)
    srv = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "-d", str(repo)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = int(srv.stdout.readline().decode().split(" port ")[1].split()[0])
        url, root = f"http://127.0.0.1:{port}/", str(repo / "metadata" / "1.root.json")
        settings = config.load()
        full = []
        for i in range(args.repeat):  # a fresh store and a cold compiled cache: the first update of an install
            store = Store(tmp / f"fresh{i}")
            os.environ["LEMONADE_AUTOTUNE_CACHE_DIR"] = str(tmp / f"cache{i}")
            t = time.perf_counter()
            out = client.update(settings, url=url, trusted_root=root, store=store)
            full.append(time.perf_counter() - t)
            assert out.outcome == "updated", out
        same = median_seconds(lambda: client.update(settings, url=url, trusted_root=root, store=store), args.repeat * 4)
    finally:
        srv.terminate()
        srv.wait(5)
    print(f"shipped rulebook: {info['rules']} rules, bundle {info['bytes'] / 1024:.0f} KiB")
    print(f"publish (lint + sign + write), median of {args.repeat}: {statistics.median(publish_s) * 1000:.0f} ms")
    print(f"first update (verify + download + lint + activate), median of {args.repeat}: "
          f"{statistics.median(full) * 1000:.0f} ms")
    print(f"refresh with no change (timestamp only), median of {args.repeat * 4}: {same * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
