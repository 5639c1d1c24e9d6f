"""
The pieces of federation on their own: XEP-0185 dialback keys, dialback
elements on the wire, the jabber:server namespace both ways, peer
certificates against a trust store.
"""

from __future__ import annotations

import tempfile

from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.s2s import certs
from jabberd.s2s.dialback import Keys, dbElement, dbError, errorCondition
from jabberd.s2s.federation import NegativeCache
from jabberd.s2s.stream import normalize, toBytes
from jabberd.xmlstream import NS_CLIENT, StreamParser, streamErrorElement
from tests.s2s.support import TestCA, selfSigned

_OPEN = b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams'>"


def parseServer(text: str) -> domish.Element:
    """Parse one element as it arrives on an s2s stream."""
    found: list[domish.Element] = []
    parser = StreamParser(lambda a: None, found.append, lambda: None, 10**6, 100)
    parser.feed(_OPEN + text.encode())
    return found[0]


class KeyTests(unittest.SynchronousTestCase):
    """XEP-0185 keys, checked against XEP-0220's own examples."""

    def test_examples(self):
        """The keys of XEP-0220 examples 1 and 5 come out exactly."""
        self.assertEqual(
            Keys("s3cr3tf0rd14lb4ck").make("montague.example", "capulet.example", "D60000229F"),
            "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3",
        )
        self.assertEqual(
            Keys("d14lb4ck43v3r").make("capulet.example", "montague.example", "417GAF25"),
            "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d",
        )

    def test_check(self):
        """A key checks only for the exact receiving server, originating server and stream id; whitespace around it is fine."""
        keys = Keys()
        key = keys.make("b.example", "a.example", "s1")
        self.assertTrue(keys.check(f"\n  {key}\n", "b.example", "a.example", "s1"))
        self.assertFalse(keys.check(key, "b.example", "a.example", "s2"))
        self.assertFalse(keys.check(key, "a.example", "b.example", "s1"))
        self.assertFalse(keys.check(key, "b.example", "a.example", "s1") and Keys().check(key, "b.example", "a.example", "s1"))

    def test_randomSecret(self):
        """Without a configured secret, every start makes different keys."""
        self.assertNotEqual(Keys().make("b", "a", "1"), Keys().make("b", "a", "1"))


class WireTests(unittest.SynchronousTestCase):
    """What goes on the wire, byte for byte."""

    def test_dbResult(self):
        """A dialback request uses the db: prefix declared in the stream header."""
        self.assertEqual(
            toBytes(dbElement("result", "a.example", "b.example", key="k3y")),
            b"<db:result from='a.example' to='b.example'>k3y</db:result>",
        )

    def test_dbError(self):
        """A dialback error carries a stanza error in the stream's default namespace (XEP-0220 §2.4)."""
        element = dbError("verify", "a.example", "b.example", "item-not-found", "s1")
        self.assertEqual(
            toBytes(element),
            b"<db:verify from='a.example' to='b.example' type='error' id='s1'><error type='cancel'>"
            b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:verify>",
        )
        self.assertEqual(errorCondition(parseServer(toBytes(element).decode())), "item-not-found")

    def test_stanzaOut(self):
        """A jabber:client stanza is written without xmlns (jabber:server on this stream); nested jabber:client keeps its declaration."""
        message = domish.Element((NS_CLIENT, "message"))
        message["to"] = "bob@b.example"
        message.addElement("body", content="hi")
        forwarded = message.addElement(("urn:xmpp:forward:0", "forwarded"))
        inner = forwarded.addElement((NS_CLIENT, "message"))
        inner.addElement("body", content="inner")
        self.assertEqual(
            toBytes(message),
            b"<message to='bob@b.example'><body>hi</body><forwarded xmlns='urn:xmpp:forward:0'>"
            b"<message xmlns='jabber:client'><body>inner</body></message></forwarded></message>",
        )

    def test_stanzaIn(self):
        """A received stanza and its default-namespace children become jabber:client; other namespaces stay."""
        stanza = parseServer("<message from='a@a.example' to='b@b.example'><body>x</body><x xmlns='urn:x'><y/></x></message>")
        normalize(stanza)
        self.assertEqual((stanza.uri, stanza.body.uri, stanza.x.uri, stanza.x.y.uri), (NS_CLIENT, NS_CLIENT, "urn:x", "urn:x"))
        self.assertEqual(
            stanza.toXml(defaultUri=NS_CLIENT),
            "<message from='a@a.example' to='b@b.example'><body>x</body><x xmlns='urn:x'><y/></x></message>",
        )

    def test_streamError(self):
        """Stream errors use the stream: prefix."""
        self.assertEqual(
            toBytes(streamErrorElement("host-unknown")),
            b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        )


class CertificateTests(unittest.SynchronousTestCase):
    """Peer certificates: chain, name and extended key usage."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.ca = TestCA(self.dir)
        self.trust = certs.TrustStore(self.ca.path)

    def load(self, path):
        from cryptography import x509

        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def test_caIssued(self):
        """A CA-issued certificate authenticates its domain (and subdomains) for any use, and no other domain."""
        peer = certs.PeerCertificate(self.trust, self.load(self.ca.issue("a.example")[0]), [])
        self.assertTrue(peer.trusted)
        self.assertEqual(
            [peer.authenticates(d, p) for d, p in [("a.example", certs.CLIENT), ("a.example", certs.SERVER), ("muc.a.example", certs.ANY), ("b.example", certs.ANY)]],
            [True, True, True, False],
        )

    def test_serverOnly(self):
        """Without clientAuth in its EKU, a certificate does not serve as a TLS client certificate (SASL EXTERNAL)."""
        peer = certs.PeerCertificate(self.trust, self.load(self.ca.issue("a.example", clientAuth=False)[0]), [])
        self.assertEqual([peer.authenticates("a.example", p) for p in (certs.CLIENT, certs.SERVER, certs.ANY)], [False, True, True])

    def test_selfSigned(self):
        """A self-signed certificate authenticates nothing, whatever it names."""
        peer = certs.PeerCertificate(self.trust, self.load(selfSigned(self.dir, "a.example")[0]), [])
        self.assertEqual((peer.trusted, peer.authenticates("a.example")), (False, False))

    def test_none(self):
        """No certificate: nothing authenticated."""
        peer = certs.PeerCertificate(self.trust, None, [])
        self.assertEqual((peer.trusted, peer.authenticates("a.example")), (False, False))

    def test_systemStore(self):
        """The default trust store (OpenSSL's paths) does not trust the test CA."""
        peer = certs.PeerCertificate(certs.TrustStore(), self.load(self.ca.issue("a.example")[0]), [])
        self.assertFalse(peer.trusted)


class NegativeCacheTests(unittest.SynchronousTestCase):
    """The memory of unreachable domains: timed, bounded, forgettable."""

    def test_expires(self):
        """A domain is remembered with its condition for the duration, then forgotten."""
        clock = Clock()
        cache = NegativeCache(60.0, clock)
        cache.add("b.example", "remote-server-not-found")
        clock.advance(59.9)
        self.assertEqual(cache.get("b.example"), "remote-server-not-found")
        clock.advance(0.1)
        self.assertIsNone(cache.get("b.example"))
        self.assertEqual(len(cache), 0)

    def test_off(self):
        """A duration of 0 remembers nothing."""
        cache = NegativeCache(0.0, Clock())
        cache.add("b.example", "remote-server-timeout")
        self.assertIsNone(cache.get("b.example"))

    def test_bounded(self):
        """A user sending to a million made-up domains cannot grow it beyond its size; expired entries go too."""
        clock = Clock()
        cache = NegativeCache(60.0, clock, entries=100)
        for n in range(1000):
            cache.add(f"d{n}.example", "remote-server-not-found")
        self.assertEqual(len(cache), 100)
        self.assertIsNone(cache.get("d0.example"))
        self.assertEqual(cache.get("d999.example"), "remote-server-not-found")
        clock.advance(61)
        cache.add("new.example", "remote-server-timeout")
        self.assertEqual(len(cache), 1)

    def test_forget(self):
        """A domain whose server authenticated to us is forgotten at once."""
        cache = NegativeCache(60.0, Clock())
        cache.add("b.example", "remote-server-timeout")
        cache.forget("b.example")
        self.assertIsNone(cache.get("b.example"))
