"""
Micro-benchmark: jabberd's StreamParser throughput and stanza serialisation.

    python bench/micro_parser.py [--seconds 2] [--chunk 4096]

A template for other micro-benchmarks: build the input once, time a tight
loop with time.perf_counter over a fixed wall-clock budget, report the rate
in the unit a reader cares about (stanzas/s, MB/s, µs each), and print the
best of a few repeats (the least disturbed by whatever else runs).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from jabberd.xmlstream import StreamParser, serialize

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
MESSAGE = (
    b"<message to='juliet@localhost/balcony' id='m%d' type='chat' xml:lang='en'>"
    b"<body>Wherefore art thou, Romeo? Deny thy father and refuse thy name.</body>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
)
PRESENCE = b"<presence><show>away</show><status>at lunch</status><priority>5</priority></presence>"


def best_rate(run: Callable[[], int], seconds: float, repeats: int = 3) -> float:
    """The best of C{repeats} rates (items/s), each run for about C{seconds}."""
    best = 0.0
    for _ in range(repeats):
        items, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / repeats:
            items += run()
        best = max(best, items / elapsed)
    return best


def parse_benchmark(stanzas: int, chunk: int, seconds: float) -> tuple[float, float]:
    """(stanzas/s, MB/s) for feeding a stream of mixed stanzas in C{chunk}-byte reads."""
    body = b"".join((MESSAGE % i) if i % 4 else PRESENCE for i in range(stanzas))
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    count = 0

    def onElement(element: object) -> None:
        nonlocal count
        count += 1

    def run() -> int:
        nonlocal count
        count = 0
        parser = StreamParser(lambda attrs: None, onElement, lambda: None)
        parser.feed(HEADER)
        for c in chunks:
            parser.feed(c)
        assert count == stanzas, count
        return stanzas

    rate = best_rate(run, seconds)
    return rate, rate * len(body) / stanzas / 1e6


def serialise_benchmark(seconds: float) -> float:
    """Microseconds to serialise one parsed chat message."""
    elements: list = []
    parser = StreamParser(lambda attrs: None, elements.append, lambda: None)
    parser.feed(HEADER + MESSAGE % 1)
    message = elements[0]

    def run() -> int:
        for _ in range(1000):
            serialize(message)
        return 1000

    return 1e6 / best_rate(run, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per feed() call (a TCP read)")
    args = parser.parse_args()
    rate, mbps = parse_benchmark(2000, args.chunk, args.seconds)
    print(f"StreamParser: {rate:,.0f} stanzas/s, {mbps:.1f} MB/s ({args.chunk}-byte chunks, 3/4 messages, 1/4 presence)")
    print(f"serialize(message): {serialise_benchmark(args.seconds):.1f} µs per stanza")


if __name__ == "__main__":
    main()
