"""
Stream compression on the server's client streams (XEP-0138): offered after
TLS and SASL where a listener enables it (c2s.compression), the handshake
and restart, real compressed traffic with the project's own client, the
failures the XEP defines, and bounded inflation (a compression bomb).
"""

from __future__ import annotations

import zlib

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.client import Client, ClientOptions
from jabberd.xmlstream import NS_STREAMS
from tests.c2s.test_stream import StreamErrorMixin
from tests.client.support import Inbox
from tests.harness import LOOPBACK, RawClient, xml

NS_COMPRESS = "http://jabber.org/protocol/compress"
NS_COMPRESS_FEATURE = "http://jabber.org/features/compress"
ENDPOINT = f"tcp:0:interface={LOOPBACK}"
# A second spelling of the same kind of endpoint, so that one listener can
# have compression and the other not.
OTHER_ENDPOINT = f"tcp:0:interface={LOOPBACK}:backlog=49"
OFFER = f"<compression xmlns='{NS_COMPRESS_FEATURE}'><method>zlib</method></compression>"
REQUEST = f"<compress xmlns='{NS_COMPRESS}'><method>zlib</method></compress>"


def compressionOffer(features) -> str | None:
    offer = next(features.elements(NS_COMPRESS_FEATURE, "compression"), None)
    return xml(offer, NS_STREAMS) if offer is not None else None


def compressRaw(client: RawClient) -> None:
    """From now on the raw client deflates what it sends and inflates what it reads."""
    inflater = zlib.decompressobj()
    deflater = zlib.compressobj()
    plainReceived = client.dataReceived
    client.restart()
    client.dataReceived = lambda data: plainReceived(inflater.decompress(data))  # type: ignore[method-assign]

    def send(data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        client.transport.write(deflater.compress(raw) + deflater.flush(zlib.Z_SYNC_FLUSH))

    client.send = send  # type: ignore[method-assign]
    client.deflater = deflater  # type: ignore[attr-defined]


class CompressionTests(StreamErrorMixin, unittest.TestCase):
    """XEP-0138 on a listener that enables it."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(c2s={"listen": [ENDPOINT], "listen_tls": [OTHER_ENDPOINT], "compression": [ENDPOINT]})
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")

    @defer.inlineCallbacks
    def authenticated(self):
        """A raw client over STARTTLS and SASL: (client, features after SASL)."""
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        features = yield self.authPlain(client, "alice", "secret")
        return client, features

    @defer.inlineCallbacks
    def compressed(self):
        """A raw client that negotiated zlib and opened the compressed stream: (client, features)."""
        client, _ = yield self.authenticated()
        client.send(REQUEST)
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_STREAMS), f"<compressed xmlns='{NS_COMPRESS}'/>")
        compressRaw(client)
        features = yield self.openStream(client)
        return client, features

    @defer.inlineCallbacks
    def test_negotiation(self):
        """Offered after SASL beside bind; <compress/> → <compressed/>, a compressed restart, then bind and traffic."""
        client = yield self.connect()
        features = yield self.openStream(client)
        self.assertIsNone(compressionOffer(features))
        features = yield self.starttls(client)
        self.assertIsNone(compressionOffer(features))
        features = yield self.authPlain(client, "alice", "secret")
        self.assertEqual(compressionOffer(features), OFFER)
        self.assertEqual([c.name for c in features.elements()][:2], ["bind", "session"])
        client.send(REQUEST)
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_STREAMS), f"<compressed xmlns='{NS_COMPRESS}'/>")
        before = len(client.raw)
        compressRaw(client)
        features = yield self.openStream(client)
        # A new stream with a new id, offering bind and no second compression.
        self.assertEqual(len(client.headers), 4)
        self.assertNotEqual(client.headers[-1]["id"], client.headers[-2]["id"])
        self.assertIsNone(compressionOffer(features))
        self.assertIn("bind", [c.name for c in features.elements()])
        jid = yield self.bindResource(client, "z")
        self.assertEqual(jid, "alice@localhost/z")
        client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield client.next()
        self.assertEqual(xml(reply), "<iq from='localhost' id='p1' to='alice@localhost/z' type='result'/>")
        self.assertTrue(client.raw[before:].startswith(b"<?xml version='1.0'?><stream:stream "))

    @defer.inlineCallbacks
    def test_realClients(self):
        """The project's client library, compressed both ways: alice's message reaches bob."""
        port = self.server.port("c2s")

        @defer.inlineCallbacks
        def login(address):
            client = Client(address, "secret", ClientOptions(host=LOOPBACK, port=port, trust=self.certificatePath(), compression=True, timeout=10))
            yield defer.ensureDeferred(client.connect())
            self.addCleanup(client.close)
            return client

        alice = yield login("alice@localhost")
        bob = yield login("bob@localhost")
        self.assertEqual((alice.compressed, bob.compressed), (True, True))
        inbox = Inbox()
        bob.messages.addListener(inbox)
        alice.messages.send(bob.jid.full(), "squeezed", type="chat")
        received = yield inbox.next()
        self.assertEqual((received.sender.full(), received.body), (alice.jid.full(), "squeezed"))
        streams = [s for f in self.server._c2sFactories for s in f.streams]
        self.assertEqual(len(streams), 2)
        self.assertTrue(all(s._compressor is not None for s in streams))

    @defer.inlineCallbacks
    def test_notBeforeAuthentication(self):
        """Before SASL compression is not offered, and asking for it gets setup-failed; the stream goes on."""
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        client.send(REQUEST)
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_STREAMS), f"<failure xmlns='{NS_COMPRESS}'><setup-failed/></failure>")
        features = yield self.authPlain(client, "alice", "secret")
        self.assertEqual(compressionOffer(features), OFFER)

    @defer.inlineCallbacks
    def test_unsupportedMethod(self):
        """A method other than zlib gets unsupported-method, not a stream error; zlib then still works."""
        client, _ = yield self.authenticated()
        client.send(f"<compress xmlns='{NS_COMPRESS}'><method>lzw</method></compress>")
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_STREAMS), f"<failure xmlns='{NS_COMPRESS}'><unsupported-method/></failure>")
        client.send(REQUEST)
        answer = yield client.next()
        self.assertEqual(answer.name, "compressed")

    @defer.inlineCallbacks
    def test_onlyOnce(self):
        """Once compressed, the feature is gone and a second request gets setup-failed."""
        client, features = yield self.compressed()
        self.assertIsNone(compressionOffer(features))
        client.send(REQUEST)
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_STREAMS), f"<failure xmlns='{NS_COMPRESS}'><setup-failed/></failure>")

    @defer.inlineCallbacks
    def test_perListener(self):
        """The direct TLS listener, not named in c2s.compression, does not offer it."""
        client = yield self.connect("c2s_tls")
        yield self.openStream(client)
        features = yield self.authPlain(client, "alice", "secret")
        self.assertIsNone(compressionOffer(features))

    @defer.inlineCallbacks
    def test_processingFailed(self):
        """Bytes that are not zlib on a compressed stream: undefined-condition with <processing-failed/>."""
        client, _ = yield self.compressed()
        client.transport.write(b"this is not a zlib stream at all")
        error = yield self.assertStreamError(client, "undefined-condition")
        failure = next(error.elements(NS_COMPRESS, "failure"))
        self.assertEqual(xml(failure, NS_STREAMS), f"<failure xmlns='{NS_COMPRESS}'><processing-failed/></failure>")

    @defer.inlineCallbacks
    def bomb(self, payload: bytes):
        """Send C{payload} deflated on a compressed stream; expect policy-violation; the server serves on."""
        client, _ = yield self.compressed()
        deflater = client.deflater
        bomb = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(bomb), 100_000)
        client.transport.write(bomb)
        yield self.assertStreamError(client, "policy-violation")
        other, _ = yield self.login("bob@localhost")
        other.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield other.next()
        self.assertEqual(reply.getAttribute("type"), "result")

    def test_bombInAStanza(self):
        """50 MB of text in one body, deflated to ~50 KB: the stanza limit applies to the inflated bytes."""
        return self.bomb(b"<message to='bob@localhost'><body>" + b"a" * 50_000_000)

    def test_bombOfWhitespace(self):
        """50 MB of whitespace (valid keepalives) deflated: refused by the inflation bound of one read."""
        return self.bomb(b" " * 50_000_000)


class DisabledTests(StreamErrorMixin, unittest.TestCase):
    """Off by default (XEP-0138 §9: compression under TLS leaks)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_notOffered(self):
        """No <compression/> feature after SASL; a request anyway gets setup-failed and the stream goes on."""
        self.assertEqual(self.server.config.c2s.compression, ())
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        features = yield self.authPlain(client, "alice", "secret")
        self.assertIsNone(compressionOffer(features))
        client.send(REQUEST)
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_STREAMS), f"<failure xmlns='{NS_COMPRESS}'><setup-failed/></failure>")
        jid = yield self.bindResource(client, "r")
        self.assertEqual(jid, "alice@localhost/r")
