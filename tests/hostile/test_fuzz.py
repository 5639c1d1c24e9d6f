"""
A short, bounded fuzzing pass (the long one is bench/fuzz_streams.py):
generated and mutated streams into L{StreamParser} directly and into the
client port of a running server over loopback.

What must hold: the parser raises nothing but L{StreamError}, in bounded
time, and never delivers a stanza above its limits; the server logs no
unexpected error (trial fails a test on any logged error), closes or keeps
each hostile stream, leaks no session, and serves another user afterwards.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.trial import unittest

from jabberd.xmlstream import StreamError, StreamParser
from tests.hostile import fuzzing
from tests.hostile.base import HostileMixin
from tests.hostile.test_leaks import LeakMixin

#: CI budget: few examples, a deadline each, no example database on disk.
CI = settings(
    max_examples=150,
    deadline=2000,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MAX_STANZA = 10000
MAX_DEPTH = 16


def parse(chunks: list[bytes]) -> list:
    """Feed C{chunks}; return the events; only StreamError may come out."""
    events: list = []
    parser = StreamParser(
        lambda attrs: events.append(("start", attrs)),
        lambda element: events.append(("element", element)),
        lambda: events.append(("end",)),
        MAX_STANZA,
        MAX_DEPTH,
    )
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except StreamError as e:
        events.append(("error", e.condition))
    return events


def depth(element) -> int:
    children = [c for c in element.children if not isinstance(c, str)]
    return 1 + max((depth(c) for c in children), default=0)


def collect(strategy: st.SearchStrategy, count: int) -> list:
    """Draw C{count} examples (deterministically) to replay over a socket."""
    drawn: list = []

    @settings(max_examples=count, database=None, derandomize=True, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(example):
        drawn.append(example)

    draw()
    return drawn


class ParserFuzzTests(unittest.TestCase):
    """StreamParser alone: the cheapest place for many examples."""

    @CI
    @given(fuzzing.streams(), fuzzing.chunkSizes)
    def test_onlyStreamErrors(self, data, sizes):
        """Whatever the bytes and however they are cut: events or a StreamError, within limits."""
        start = time.monotonic()
        events = parse(fuzzing.chunked(data, sizes))
        self.assertLess(time.monotonic() - start, 1.0)
        for event in events:
            if event[0] == "element":
                self.assertLessEqual(len(event[1].toXml().encode("utf-8")), MAX_STANZA * 2)
                self.assertLessEqual(depth(event[1]), MAX_DEPTH - 1)

    @CI
    @given(fuzzing.mutated(), st.integers(1, 64))
    def test_chunkingDoesNotMatter(self, data, size):
        """One read or many: the same stanzas and the same verdict."""
        whole = parse([data])
        pieces = parse(fuzzing.chunked(data, [size]))

        def summary(events):
            return [(e[0], e[1].toXml() if e[0] == "element" else e[1:]) for e in events if e[0] != "start"]

        # A stream error may be found at a different point only if it is the
        # same error; everything delivered before it is identical.  Text
        # outside a stanza is bad-format when expat flushes it, or the
        # not-well-formed byte after it if expat sees that first, which
        # depends on where a read ends (bench/fuzz_atheris.py found it).
        a, b = summary(whole), summary(pieces)
        if a and b and a[-1][0] == "error" and b[-1][0] == "error":
            same = {("bad-format",): ("not-well-formed",)}
            self.assertEqual(same.get(a[-1][1], a[-1][1]), same.get(b[-1][1], b[-1][1]))
            n = min(len(a), len(b)) - 1
            self.assertEqual(a[:n], b[:n])
        else:
            self.assertEqual(a, b)


class ServerFuzzTests(LeakMixin, HostileMixin, unittest.TestCase):
    """
    Generated streams into a running server's client port.  After each
    burst the registries and the live server objects are back to their
    baseline (L{LeakMixin}): memory stays bounded, not just the dicts.
    """

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")
        self.base = self.baseline()

    @staticmethod
    @defer.inlineCallbacks
    def replay(examples: list, connect) -> defer.Deferred:
        """Send each example on its own connection, 10 at a time; then drop them all (also used for s2s)."""

        @defer.inlineCallbacks
        def one(example):
            data, sizes = example
            client = yield connect()
            for chunk in fuzzing.chunked(data, sizes):
                if client.lost:
                    break
                client.send(chunk)
            # Closed by the server, or still open (waiting for more): both fine.
            yield client.waitFor(lambda: client.lost, 0.3).addErrback(lambda f: None)
            yield client.disconnect()

        for i in range(0, len(examples), 10):
            yield defer.gatherResults([one(e) for e in examples[i : i + 10]])

    @defer.inlineCallbacks
    def test_beforeAuthentication(self):
        """60 generated streams on fresh connections: no error logged, no leak, others served."""
        examples = collect(st.tuples(fuzzing.streams(), fuzzing.chunkSizes), 60)
        yield self.replay(examples, self.connect)
        yield self.assertBackToBaseline(self.base)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_afterAuthentication(self):
        """20 mutated stanza sequences from a bound client: no error logged, no leak, others served."""
        examples = collect(st.tuples(fuzzing.mutated(header=False), fuzzing.chunkSizes), 20)

        @defer.inlineCallbacks
        def bound():
            client, _ = yield self.login("alice@localhost")
            return client

        yield self.replay(examples, bound)
        yield self.assertBackToBaseline(self.base)
        yield self.assertServed()
