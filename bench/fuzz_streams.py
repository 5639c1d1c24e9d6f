"""
The long fuzzing run (issue 11): the strategies of tests/hostile/fuzzing.py,
many more examples than CI gives them, against the stream parser and,
optionally, a running server's client port.

    python bench/fuzz_streams.py --examples 100000
    python bench/fuzz_streams.py --examples 5000 --server 127.0.0.1:5222

Parser mode fails on any exception other than StreamError, or an example
slower than --deadline.  Server mode sends each example on its own
connection, then checks the server still answers a fresh stream header
(loopback only; the server's log is where an unexpected error shows).
Prints examples per second and the peak RSS at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from jabberd.xmlstream import StreamError, StreamParser  # noqa: E402
from tests.hostile import fuzzing  # noqa: E402


def feedParser(chunks: list[bytes]) -> None:
    parser = StreamParser(lambda a: None, lambda e: None, lambda: None, 262144, 64)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except StreamError:
        pass


def sendToServer(host: str, port: int, chunks: list[bytes]) -> None:
    with socket.create_connection((host, port), timeout=2) as s:
        try:
            for chunk in chunks:
                s.sendall(chunk)
            s.settimeout(0.2)
            while s.recv(65536):
                pass
        except OSError:
            pass  # closed on us, or still open and waiting: both fine


def assertAlive(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(fuzzing.OPEN.encode())
        data = b""
        while b"features" not in data:
            more = s.recv(65536)
            if not more:
                raise SystemExit(f"server closed a clean stream: {data[:200]!r}")
            data += more


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=20000)
    ap.add_argument("--deadline", type=float, default=1000.0, help="milliseconds per example")
    ap.add_argument("--server", help="HOST:PORT of a running server's client port (loopback)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()

    target = None
    if args.server:
        host, _, port = args.server.rpartition(":")
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise SystemExit("loopback servers only")
        target = (host, int(port))
    count = 0

    @settings(max_examples=args.examples, deadline=args.deadline if target is None else None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(fuzzing.streams(), fuzzing.chunkSizes)
    def run(data: bytes, sizes: list[int]) -> None:
        nonlocal count
        count += 1
        chunks = fuzzing.chunked(data, sizes)
        if target is None:
            feedParser(chunks)
        else:
            sendToServer(*target, chunks)
            if count % 100 == 0:
                assertAlive(*target)

    if args.seed is not None:
        from hypothesis import seed

        run = seed(args.seed)(run)
    start = time.monotonic()
    run()
    if target is not None:
        assertAlive(*target)
    took = time.monotonic() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{count} examples in {took:.1f} s ({count / took:.0f}/s), peak RSS {rss // 1024} MiB, no failure")


if __name__ == "__main__":
    main()
