"""XMPP Ping (XEP-0199) through real sessions: the server pongs for itself and for accounts' bare JIDs."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.modules.test_disco import ServiceTestMixin, error

PING = "<ping xmlns='urn:xmpp:ping'/>"


class PingTests(ServiceTestMixin, unittest.TestCase):
    """Who answers a ping, and how."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(["ping"])
        self.alice = self.bind("alice@localhost/a")
        self.bob = self.bind("bob@localhost/b")

    @defer.inlineCallbacks
    def test_pingServer(self):
        """A ping to the domain gets an empty result from the domain (§4.2)."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='c2s1' to='localhost'>{PING}</iq>",
            "<iq type='result' id='c2s1' from='localhost' to='alice@localhost/a'/>",
        )

    @defer.inlineCallbacks
    def test_pingWithoutTo(self):
        """A ping without 'to' is handled by the server for the account (§4.2 note)."""
        yield self.assertReply(
            self.alice, f"<iq type='get' id='p'>{PING}</iq>", "<iq type='result' id='p' from='alice@localhost' to='alice@localhost/a'/>"
        )

    @defer.inlineCallbacks
    def test_pingOwnBareJID(self):
        """A ping to one's own bare JID is answered by the server."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='p' to='alice@localhost'>{PING}</iq>",
            "<iq type='result' id='p' from='alice@localhost' to='alice@localhost/a'/>",
        )

    @defer.inlineCallbacks
    def test_pingAnotherAccountsBareJID(self):
        """A ping to another account's bare JID is answered by the server on its behalf (§4.4 note), not relayed."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='e2e1' to='bob@localhost'>{PING}</iq>",
            "<iq type='result' id='e2e1' from='bob@localhost' to='alice@localhost/a'/>",
        )
        self.assertEqual(self.bob.link.pop(), [])

    @defer.inlineCallbacks
    def test_pingOfflineAccount(self):
        """An existing account with no session still pongs through the server."""
        yield self.addUser("carol@localhost")
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='p' to='carol@localhost'>{PING}</iq>",
            "<iq type='result' id='p' from='carol@localhost' to='alice@localhost/a'/>",
        )

    @defer.inlineCallbacks
    def test_pingNonexistentAccount(self):
        """A ping to a bare JID without an account is service-unavailable (RFC 6121 §8.5.1)."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='p' to='nobody@localhost'>{PING}</iq>",
            f"<iq type='error' id='p' from='nobody@localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_pingFullJIDIsRelayed(self):
        """A ping to a full JID reaches that client, and its pong comes back (§4.4)."""
        self.alice.receive(f"<iq type='get' id='e2e1' to='bob@localhost/b'>{PING}</iq>")
        (got,) = yield self.received(self.bob)
        self.assertStanza(got, f"<iq type='get' id='e2e1' from='alice@localhost/a' to='bob@localhost/b'>{PING}</iq>")
        self.bob.receive("<iq type='result' id='e2e1' to='alice@localhost/a'/>")
        (pong,) = yield self.received(self.alice)
        self.assertStanza(pong, "<iq type='result' id='e2e1' from='bob@localhost/b' to='alice@localhost/a'/>")

    @defer.inlineCallbacks
    def test_pingUnknownResource(self):
        """A ping to a full JID with no session is service-unavailable (RFC 6121 §8.5.3.2.1)."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='p' to='bob@localhost/gone'>{PING}</iq>",
            f"<iq type='error' id='p' from='bob@localhost/gone' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_pingSetIsNotHandled(self):
        """Ping is an iq get: a set is service-unavailable."""
        yield self.assertReply(
            self.alice,
            f"<iq type='set' id='p' to='localhost'>{PING}</iq>",
            f"<iq type='error' id='p' from='localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )
