"""
End to end with a real third-party client: slixmpp logs in to the real
server over real loopback sockets and two accounts chat.
"""

from __future__ import annotations

import asyncio
import ssl

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.harness import ServerMixin, connectSlixmpp, slixmppClient


class SlixmppLoginTests(ServerMixin, unittest.TestCase):
    """Logins with each transport and mechanism a real client uses."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "wonderland")
        yield self.addUser("bob@localhost", "builder")

    def client(self, jid, password, **kw):
        c = slixmppClient(jid, password, sslContext=kw.pop("sslContext", None) or self.clientSSLContext(), **kw)
        self.addCleanup(c.disconnect)
        return c

    def mechanismUsed(self, client):
        return client["feature_mechanisms"].mech.name if client["feature_mechanisms"].mech else None

    @defer.inlineCallbacks
    def test_starttlsScramSha256(self):
        """A client logs in over STARTTLS with SCRAM-SHA-256 and gets its full JID bound."""
        c = self.client("alice@localhost/home", "wonderland")
        c["feature_mechanisms"].use_mech = "SCRAM-SHA-256"
        yield connectSlixmpp(c, self.server.port("c2s"))
        self.assertEqual(str(c.boundjid), "alice@localhost/home")
        self.assertEqual(self.mechanismUsed(c), "SCRAM-SHA-256")
        self.assertIsNotNone(self.server.sessions.get("alice@localhost", "home"))

    @defer.inlineCallbacks
    def test_directTLS(self):
        """A client logs in on the direct TLS port (XEP-0368) without STARTTLS."""
        c = self.client("alice@localhost/tls", "wonderland", directTLS=True)
        yield connectSlixmpp(c, self.server.port("c2s_tls"))
        self.assertEqual(str(c.boundjid), "alice@localhost/tls")

    @defer.inlineCallbacks
    def test_scramPlusTlsUnique(self):
        """Over TLS 1.2 slixmpp negotiates SCRAM-SHA-256-PLUS with tls-unique channel binding."""
        c = self.client("alice@localhost/plus", "wonderland", sslContext=self.clientSSLContext(maxVersion=ssl.TLSVersion.TLSv1_2))
        yield connectSlixmpp(c, self.server.port("c2s"))
        self.assertEqual(self.mechanismUsed(c), "SCRAM-SHA-256-PLUS")
        self.assertEqual(str(c.boundjid), "alice@localhost/plus")

    @defer.inlineCallbacks
    def test_wrongPasswordFails(self):
        """A wrong password is refused and no session is bound."""
        c = self.client("alice@localhost/x", "not-the-password")
        with self.assertRaises(RuntimeError):
            yield connectSlixmpp(c, self.server.port("c2s"), timeout=5)
        self.assertEqual(self.server.sessions.resources("alice@localhost"), {})

    @defer.inlineCallbacks
    def test_chatBetweenTwoAccounts(self):
        """Alice sends Bob a chat message to his full JID; Bob's reply reaches Alice."""
        alice = self.client("alice@localhost/a", "wonderland")
        bob = self.client("bob@localhost/b", "builder")
        yield connectSlixmpp(alice, self.server.port("c2s"))
        yield connectSlixmpp(bob, self.server.port("c2s"))
        loop = asyncio.get_event_loop()
        bobGot, aliceGot = loop.create_future(), loop.create_future()
        bob.add_event_handler("message", lambda m: bobGot.done() or bobGot.set_result(m))
        alice.add_event_handler("message", lambda m: aliceGot.done() or aliceGot.set_result(m))
        alice.send_message(mto="bob@localhost/b", mbody="hello bob", mtype="chat")
        m = yield defer.Deferred.fromFuture(bobGot).addTimeout(5, reactor)
        self.assertEqual((str(m["from"]), m["body"], m["type"]), ("alice@localhost/a", "hello bob", "chat"))
        bob.send_message(mto="alice@localhost/a", mbody="hi alice", mtype="chat")
        m = yield defer.Deferred.fromFuture(aliceGot).addTimeout(5, reactor)
        self.assertEqual((str(m["from"]), m["body"]), ("bob@localhost/b", "hi alice"))
