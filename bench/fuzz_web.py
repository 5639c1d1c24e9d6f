"""
The long fuzzing run for the web and component entry points (issue 11):
the strategies of tests/hostile/fuzzing.py, many more examples than CI
gives them (tests/hostile/test_web.py, test_component_faults.py), against a
running server over loopback.

    python bench/fuzz_web.py --http 127.0.0.1:5280 --examples 5000 --pid PID
    python bench/fuzz_web.py --component 127.0.0.1:5347 --domain muc.localhost

HTTP mode rotates through BOSH bodies POSTed to /http-bind, malformed HTTP
requests, and forged RFC 6455 frames after a real WebSocket handshake;
component mode sends generated component streams.  Each example goes on
its own connection; every 100 examples the server must still answer
(host-meta, or a component stream header).  With --pid, the server's RSS
is printed before, after, and after a quiet period in which BOSH sessions
time out: memory must come back near where it started (the server's log is
where an unexpected error shows).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.hostile import fuzzing  # noqa: E402

def exchange(address: tuple[str, int], data: bytes, first: bytes = b"") -> bytes:
    """Send C{first} (and read its answer), then C{data}; read until closed or quiet; return what came back."""
    answer = b""
    with socket.create_connection(address, timeout=2) as s:
        try:
            if first:
                s.sendall(first)
                while b"\r\n\r\n" not in answer:
                    more = s.recv(65536)
                    if not more:
                        return answer
                    answer += more
            s.sendall(data)
            s.settimeout(0.2)
            while more := s.recv(65536):
                answer += more
        except OSError:
            pass  # closed on us, or still open and waiting: both fine
    return answer


def post(body: bytes) -> bytes:
    return (b"POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def rss(pid: int | None) -> str:
    if pid is None:
        return "?"
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return line.split(":", 1)[1].strip()
    return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--http", help="HOST:PORT of the server's plain HTTP listener (loopback)")
    ap.add_argument("--component", help="HOST:PORT of the server's component listener (loopback)")
    ap.add_argument("--domain", default="muc.localhost", help="a configured component domain")
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--pid", type=int, help="the server's process id, to print its RSS")
    ap.add_argument("--quiet", type=float, default=5.0, help="seconds to wait before the last RSS reading")
    args = ap.parse_args()

    if bool(args.http) == bool(args.component):
        raise SystemExit("give --http or --component")
    host, _, port = (args.http or args.component).rpartition(":")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("loopback servers only")
    address = (host, int(port))

    if args.http:
        strategy = st.one_of(
            fuzzing.boshBodies().map(lambda b: (post(b), b"")),
            fuzzing.httpRequests().map(lambda r: (r, b"")),
            fuzzing.wsFrames().map(lambda f: (f, fuzzing.WS_HANDSHAKE)),
        )

        def alive() -> None:
            answer = exchange(address, b"GET /.well-known/host-meta HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            if not answer.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"host-meta not served: {answer[:200]!r}")
    else:
        strategy = fuzzing.componentStreams(args.domain).map(lambda d: (d, b""))

        def alive() -> None:
            answer = exchange(address, fuzzing.COMPONENT_OPEN.format(domain=args.domain).encode())
            if b"<stream:stream" not in answer:
                raise SystemExit(f"component port not answering: {answer[:200]!r}")

    count = 0
    print(f"server RSS before: {rss(args.pid)}")

    @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example: tuple[bytes, bytes]) -> None:
        nonlocal count
        count += 1
        data, first = example
        exchange(address, data, first)
        if count % 100 == 0:
            alive()

    start = time.monotonic()
    run()
    alive()
    took = time.monotonic() - start
    print(f"{count} examples in {took:.1f} s ({count / took:.0f}/s), no failure; server RSS after: {rss(args.pid)}")
    if args.pid is not None:
        time.sleep(args.quiet)
        print(f"server RSS after {args.quiet:.0f} s quiet: {rss(args.pid)}")


if __name__ == "__main__":
    main()
