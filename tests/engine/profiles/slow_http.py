"""A static HTTP server (a real process) that sends TUF target files slowly and says on stdout when one starts:
`python slow_http.py DIR` prints `PORT <n>`, then `TARGET <path>` as each target download begins."""

from __future__ import annotations

import functools
import http.server
import sys
import time


class Slow(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, source, outputfile):  # noqa: ANN001 - the base class's signature
        if not self.path.startswith("/targets/"):
            return super().copyfile(source, outputfile)
        print(f"TARGET {self.path}", flush=True)
        while chunk := source.read(4096):
            outputfile.write(chunk)
            outputfile.flush()
            time.sleep(0.05)  # ~80 KiB/s: a 40 KiB bundle takes about half a second
        return None

    def log_message(self, format, *args):  # noqa: A002, ANN001
        pass


def main() -> None:
    handler = functools.partial(Slow, directory=sys.argv[1])
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as srv:
        print(f"PORT {srv.server_address[1]}", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
