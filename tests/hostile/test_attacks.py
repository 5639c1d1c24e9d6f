"""
One test per known attack on the client port (issue 11), each against a
real server over loopback: the attacker gets the stream error the defence
promises, and another user logs in and is served right after.

Covered elsewhere and listed in docs/security.md: spoofed 'from'
(tests.c2s.test_negotiation), the compression bomb
(tests.c2s.test_compression), SIGTERM (tests.test_twistd).
"""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.hostile.base import OPEN, HostileMixin

HEADER = OPEN + " to='localhost' version='1.0'>"

BILLION_LAUGHS = (
    "<?xml version='1.0'?>"
    "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{('&lol' + (str(i - 1) if i > 1 else '') + ';') * 10}'>" for i in range(1, 10))
    + "]>"
)


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


class XMLAttackTests(HostileMixin, unittest.TestCase):
    """Hostile XML: refused with a stream error, never expanded nor built."""

    def setUp(self):
        return self.startServer()

    @defer.inlineCallbacks
    def test_billionLaughs(self):
        """A DTD declaring nested entities (billion laughs) is restricted-xml; nothing is expanded."""
        client = yield self.connect()
        client.send(BILLION_LAUGHS + HEADER[len("<?xml version='1.0'?>"):] + "<message>&lol9;</message>")
        yield self.assertStreamError(client, "restricted-xml")
        self.assertLess(len(client.raw), 2000)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_entityInStanza(self):
        """An undeclared entity reference inside the stream is restricted-xml."""
        yield self.sendAndExpectError(HEADER + "<message>&lol9;</message>", "restricted-xml")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_externalEntity(self):
        """An external entity (XXE: file:///etc/passwd) is never fetched: restricted-xml."""
        client = yield self.connect()
        client.send(
            "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
            + HEADER[len("<?xml version='1.0'?>"):]
            + "<message>&xxe;</message>"
        )
        yield self.assertStreamError(client, "restricted-xml")
        self.assertNotIn(b"root:", client.raw)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_deepNesting(self):
        """10,000 nested elements: policy-violation at c2s.max_depth, before they are built."""
        yield self.sendAndExpectError(HEADER + "<message>" + "<a>" * 10000, "policy-violation")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_hugeAttribute(self):
        """One attribute of 1 MB: policy-violation (c2s.stanza_size_limit), refused as it grows."""
        client = yield self.connect()
        client.send(HEADER + "<message to='")
        for _ in range(16):
            if client.lost:
                break
            client.send("x" * 65536)
            yield sleep(0)
        yield self.assertStreamError(client, "policy-violation")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_hugeText(self):
        """1 MB of text in one stanza: policy-violation."""
        yield self.sendAndExpectError(HEADER + "<message><body>" + "y" * 2**20, "policy-violation")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_manyAttributes(self):
        """A start tag with 50,000 attributes: policy-violation (it counts towards the stanza size)."""
        attrs = "".join(f" a{i}='1'" for i in range(50000))
        yield self.sendAndExpectError(HEADER + f"<message{attrs}/>", "policy-violation")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_invalidUTF8(self):
        """Bytes that are not UTF-8 inside a stanza: not-well-formed."""
        yield self.sendAndExpectError(HEADER.encode() + b"<message><body>\xff\xfe\xc0\x80</body></message>", "not-well-formed")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_overlongUTF8(self):
        """An overlong encoding of '<' (C0 BC) is refused, not read as markup."""
        yield self.sendAndExpectError(HEADER.encode() + b"\xc0\xbcmessage/>", "not-well-formed")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_utf16(self):
        """A UTF-16 stream is unsupported-encoding (RFC 6120 §11.6)."""
        yield self.sendAndExpectError(HEADER.encode("utf-16"), "unsupported-encoding")
        yield self.assertServed()


class TimeoutAttackTests(HostileMixin, unittest.TestCase):
    """Streams that never finish: closed by c2s.auth_timeout before and c2s.idle_timeout after authentication."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(c2s={"auth_timeout": 0.6, "idle_timeout": 0.6})
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_unterminatedHeader(self):
        """A stream header that never ends is closed at auth_timeout."""
        client = yield self.connect()
        client.send(OPEN)
        start = reactor.seconds()
        yield self.assertStreamError(client, "connection-timeout")
        self.assertLess(reactor.seconds() - start, 3.0)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_slowLorisBeforeAuth(self):
        """One byte every 0.1 s before authentication does not keep a stream open past auth_timeout."""
        client = yield self.connect()
        data = (HEADER + "<message><body>" + "z" * 100).encode()
        start = reactor.seconds()
        for i in range(len(data)):
            if client.lost:
                break
            client.send(data[i : i + 1])
            yield sleep(0.1)
        self.assertTrue(client.lost)
        self.assertLess(reactor.seconds() - start, 3.0)
        yield self.assertStreamError(client, "connection-timeout")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_slowLorisAfterAuth(self):
        """A bound client that starts a stanza and stops sending is closed at idle_timeout."""
        client, _ = yield self.login("alice@localhost")
        client.send("<message to='bob@localhost'><body>never fini")
        start = reactor.seconds()
        yield self.assertStreamError(client, "connection-timeout")
        self.assertLess(reactor.seconds() - start, 3.0)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_silentConnection(self):
        """A TCP connection that never sends a byte is closed at auth_timeout."""
        client = yield self.connect()
        yield self.assertStreamError(client, "connection-timeout")
        yield self.assertServed()
