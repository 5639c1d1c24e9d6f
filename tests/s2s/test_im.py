"""
IM between two jabberd servers across federation (RFC 6121 over s2s):
messages, the subscription handshake and presence, vCard, disco, ping;
with dialback (self-signed certificates) and with SASL EXTERNAL (a test CA).
"""

from __future__ import annotations

import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from tests.s2s.support import Node, TestCA, nextMatching, xml

NS_ROSTER = "jabber:iq:roster"


@defer.inlineCallbacks
def online(node, address):
    """A client that fetched its roster and sent initial presence (its own presence came back)."""
    client = yield node.login(address)
    client.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
    yield nextMatching(client, lambda e: e.name == "iq")
    client.send("<presence/>")
    yield nextMatching(client, lambda e: e.name == "presence")
    return client


class IMMixin:
    """The same conversations whatever authenticates the servers; C{method} is how."""

    method = "?"

    def assertAuthenticatedBy(self, method):
        """Both directions were authenticated with C{method}."""
        out = self.a.fed.routes["b.example"].stream
        self.assertEqual(out.pairs, {("a.example", "b.example"): method})
        inbound = [s for s in self.b.fed.streams if getattr(s, "kind", None) == "s2s-in" and s.pairs]
        self.assertEqual([s.pairs for s in inbound], [{("a.example", "b.example"): method}])

    @defer.inlineCallbacks
    def test_messages(self):
        """Chat both ways, exactly as sent, stamped with the senders' full JIDs."""
        alice = yield self.a.login("alice@a.example")
        bob = yield self.b.login("bob@b.example")
        alice.send("<message to='bob@b.example/r' type='chat' id='m1'><body>hello bob</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(
            xml(got),
            "<message from='alice@a.example/r' id='m1' to='bob@b.example/r' type='chat'><body>hello bob</body></message>",
        )
        bob.send("<message to='alice@a.example/r' type='chat' id='m2'><body>hi alice</body><x xmlns='urn:example'><y/></x></message>")
        got = yield nextMatching(alice, lambda e: e.name == "message")
        self.assertEqual(
            xml(got),
            "<message from='bob@b.example/r' id='m2' to='alice@a.example/r' type='chat'><body>hi alice</body>"
            "<x xmlns='urn:example'><y/></x></message>",
        )
        self.assertAuthenticatedBy(self.method)

    @defer.inlineCallbacks
    def test_subscriptionAndPresence(self):
        """alice subscribes to bob, bob approves: rosters are pushed, bob's presence reaches alice."""
        alice = yield online(self.a, "alice@a.example")
        bob = yield online(self.b, "bob@b.example")
        alice.send("<presence to='bob@b.example' type='subscribe' id='s1'/>")
        push = yield nextMatching(alice, lambda e: e.name == "iq")
        self.assertEqual(
            xml(push),
            f"<iq id='{push['id']}' to='alice@a.example/r' type='set'><query xmlns='{NS_ROSTER}'>"
            "<item ask='subscribe' jid='bob@b.example' subscription='none'/></query></iq>",
        )
        request = yield nextMatching(bob, lambda e: e.name == "presence")
        self.assertEqual(xml(request), "<presence from='alice@a.example' id='s1' to='bob@b.example' type='subscribe'/>")
        bob.send("<presence to='alice@a.example' type='subscribed' id='s2'/>")
        push = yield nextMatching(bob, lambda e: e.name == "iq")
        self.assertEqual(
            xml(push),
            f"<iq id='{push['id']}' to='bob@b.example/r' type='set'><query xmlns='{NS_ROSTER}'>"
            "<item jid='alice@a.example' subscription='from'/></query></iq>",
        )
        approval = yield nextMatching(alice, lambda e: e.name == "presence")
        self.assertEqual(xml(approval), "<presence from='bob@b.example' id='s2' to='alice@a.example' type='subscribed'/>")
        push = yield nextMatching(alice, lambda e: e.name == "iq")
        self.assertEqual(
            xml(push),
            f"<iq id='{push['id']}' to='alice@a.example/r' type='set'><query xmlns='{NS_ROSTER}'>"
            "<item jid='bob@b.example' subscription='to'/></query></iq>",
        )
        presence = yield nextMatching(alice, lambda e: e.name == "presence")
        self.assertEqual(xml(presence), "<presence from='bob@b.example/r' to='alice@a.example'/>")
        bob.send("<presence><show>dnd</show></presence>")
        presence = yield nextMatching(alice, lambda e: e.name == "presence")
        self.assertEqual(xml(presence), "<presence from='bob@b.example/r' to='alice@a.example'><show>dnd</show></presence>")
        bob.send("<presence type='unavailable'/>")
        presence = yield nextMatching(alice, lambda e: e.name == "presence")
        self.assertEqual(xml(presence), "<presence from='bob@b.example/r' to='alice@a.example' type='unavailable'/>")

    @defer.inlineCallbacks
    def test_vcard(self):
        """alice reads bob's vCard on the other server."""
        bob = yield self.b.login("bob@b.example")
        bob.send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard></iq>")
        yield nextMatching(bob, lambda e: e.getAttribute("id") == "v1")
        alice = yield self.a.login("alice@a.example")
        alice.send("<iq type='get' id='v2' to='bob@b.example'><vCard xmlns='vcard-temp'/></iq>")
        reply = yield nextMatching(alice, lambda e: e.name == "iq")
        self.assertEqual(
            xml(reply),
            "<iq from='bob@b.example' id='v2' to='alice@a.example/r' type='result'>"
            "<vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard></iq>",
        )

    @defer.inlineCallbacks
    def test_discoAndPing(self):
        """alice asks b.example for disco#info and pings it; bob pings alice's server."""
        alice = yield self.a.login("alice@a.example")
        alice.send("<iq type='get' id='d1' to='b.example'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        reply = yield nextMatching(alice, lambda e: e.name == "iq")
        self.assertEqual((reply["type"], reply["from"], reply["to"]), ("result", "b.example", "alice@a.example/r"))
        features = {f["var"] for f in reply.query.elements() if f.name == "feature"}
        self.assertIn("urn:xmpp:ping", features)
        self.assertIn("vcard-temp", features)
        alice.send("<iq type='get' id='p1' to='b.example'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield nextMatching(alice, lambda e: e.name == "iq")
        self.assertEqual(xml(reply), "<iq from='b.example' id='p1' to='alice@a.example/r' type='result'/>")
        bob = yield self.b.login("bob@b.example")
        bob.send("<iq type='get' id='p2' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield nextMatching(bob, lambda e: e.name == "iq")
        self.assertEqual(xml(reply), "<iq from='a.example' id='p2' to='bob@b.example/r' type='result'/>")

    @defer.inlineCallbacks
    def test_unknownUser(self):
        """A message to an account that does not exist on the other server comes back as service-unavailable."""
        alice = yield self.a.login("alice@a.example")
        alice.send("<message to='nobody@b.example' type='chat' id='m3'><body>anyone?</body></message>")
        error = yield nextMatching(alice, lambda e: e.name == "message")
        self.assertEqual(
            xml(error),
            "<message from='nobody@b.example' id='m3' to='alice@a.example/r' type='error'><body>anyone?</body>"
            "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        )


class DialbackIMTests(IMMixin, unittest.TestCase):
    """Self-signed certificates: the servers authenticate each other with dialback."""

    method = "dialback"

    @defer.inlineCallbacks
    def setUp(self):
        self.a = Node(self, "a.example")
        self.b = Node(self, "b.example")
        self.a.configure(routes=self.b.route())
        self.b.configure(routes=self.a.route())
        yield self.a.start()
        yield self.b.start()


class ExternalIMTests(IMMixin, unittest.TestCase):
    """Certificates from a CA both trust: SASL EXTERNAL (XEP-0178), no dialback."""

    method = "sasl"

    @defer.inlineCallbacks
    def setUp(self):
        ca = TestCA(tempfile.mkdtemp(prefix="jabberd-s2s-ca-"))
        self.a = Node(self, "a.example", certificate=ca.issue("a.example"), trust=ca.path)
        self.b = Node(self, "b.example", certificate=ca.issue("b.example"), trust=ca.path)
        self.a.configure(routes=self.b.route())
        self.b.configure(routes=self.a.route())
        yield self.a.start()
        yield self.b.start()
