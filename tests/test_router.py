"""The Router's delivery and error rules (RFC 6120 §8, §10), through real sessions."""

from twisted.internet import defer
from twisted.trial import unittest

from jabberd import bus as B
from tests.fakes import ModuleTestMixin


class RouterTests(ModuleTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startModules(modules=["register"])
        self.alice = self.bind("alice@localhost/a")
        self.bob = self.bind("bob@localhost/b")

    def test_unhandledIQGetsServiceUnavailable(self):
        """An iq to the server that no module handles gets service-unavailable, with its id."""
        self.alice.receive("<iq type='get' id='q1' to='localhost'><query xmlns='urn:example:nothing'/></iq>")
        reply = self.alice.link.popOne()
        self.assertEqual((reply.name, reply["type"], reply["id"], reply["from"], reply["to"]), ("iq", "error", "q1", "localhost", "alice@localhost/a"))
        self.assertEqual(reply.error["type"], "cancel")
        self.assertEqual(next(reply.error.elements()).name, "service-unavailable")

    def test_iqToFullJIDIsDelivered(self):
        """An iq to a connected full JID reaches that resource with the sender's full JID stamped."""
        self.alice.receive("<iq type='get' id='v' to='bob@localhost/b'><query xmlns='jabber:iq:version'/></iq>")
        got = self.bob.link.popOne()
        self.assertEqual((got["from"], got["to"], got["id"]), ("alice@localhost/a", "bob@localhost/b", "v"))

    def test_iqToUnknownResourceGetsServiceUnavailable(self):
        """An iq get to a full JID with no such session gets service-unavailable (RFC 6121 §8.5.3.2.1)."""
        self.alice.receive("<iq type='get' id='v' to='bob@localhost/nope'><query xmlns='jabber:iq:version'/></iq>")
        reply = self.alice.link.popOne()
        self.assertEqual((reply["type"], next(reply.error.elements()).name), ("error", "service-unavailable"))

    def test_errorsAreNeverAnsweredWithErrors(self):
        """An error stanza to an unknown resource is dropped, not answered with another error."""
        self.alice.receive("<message type='error' to='bob@localhost/nope'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        self.alice.receive("<iq type='error' id='e' to='bob@localhost/nope'/>")
        self.assertEqual(self.alice.link.pop(), [])

    def test_malformedToGetsJidMalformed(self):
        """A stanza whose 'to' is not a valid JID gets jid-malformed."""
        self.alice.receive("<message to='bob@local..host' id='m'><body>x</body></message>")
        reply = self.alice.link.popOne()
        self.assertEqual(next(reply.error.elements()).name, "jid-malformed")
        self.assertEqual(reply.error["type"], "modify")

    def test_remoteDomainWithoutFederationBounces(self):
        """Without federation, a stanza to another domain gets remote-server-not-found."""
        self.alice.receive("<message to='carol@elsewhere.example' id='m' type='chat'><body>x</body></message>")
        reply = self.alice.link.popOne()
        self.assertEqual(next(reply.error.elements()).name, "remote-server-not-found")

    def test_iqToBareJIDIsHandledOnAccountsBehalf(self):
        """An iq to an account's bare JID is offered to modules as BARE, or SELF for the account itself."""
        seen = []
        self.server.bus.on(B.iq("get", B.BARE, "urn:example", "q"), lambda s, f, t: seen.append(("bare", str(f), str(t))) or True)
        self.server.bus.on(B.iq("get", B.SELF, "urn:example", "q"), lambda s, f, t: seen.append(("self", str(f), str(t))) or True)
        self.alice.receive("<iq type='get' id='1' to='bob@localhost'><q xmlns='urn:example'/></iq>")
        self.alice.receive("<iq type='get' id='2'><q xmlns='urn:example'/></iq>")
        self.assertEqual(seen, [("bare", "alice@localhost/a", "bob@localhost"), ("self", "alice@localhost/a", "alice@localhost")])

    def test_fromIsStamped(self):
        """The server stamps the sender's full JID even when the client sent its bare JID."""
        self.alice.receive("<message from='alice@localhost' to='bob@localhost/b' id='m'><body>x</body></message>")
        self.assertEqual(self.bob.link.popOne()["from"], "alice@localhost/a")

    def test_spoofedFromIsAStreamError(self):
        """A 'from' naming another account ends the stream with invalid-from."""
        from jabberd.xmlstream import StreamError

        with self.assertRaises(StreamError) as e:
            self.alice.receive("<message from='bob@localhost/b' to='bob@localhost/b'><body>x</body></message>")
        self.assertEqual(e.exception.condition, "invalid-from")
        self.assertEqual(self.bob.link.pop(), [])
