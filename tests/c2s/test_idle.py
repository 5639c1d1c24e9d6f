"""
c2s.idle_timeout: an authenticated client stream that sends nothing for that
long is closed with connection-timeout; any traffic, whitespace keepalives
included, keeps it open.
"""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.c2s.test_stream import StreamErrorMixin


class IdleTimeoutTests(StreamErrorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(c2s={"idle_timeout": 0.5})
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_idleClientClosed(self):
        """A bound client that stays silent is closed with connection-timeout."""
        client, _ = yield self.login("alice@localhost")
        start = reactor.seconds()
        yield self.assertStreamError(client, "connection-timeout")
        self.assertLess(reactor.seconds() - start, 2.0)

    @defer.inlineCallbacks
    def test_whitespaceKeepsAlive(self):
        """Whitespace pings every 0.2 s keep a 0.5 s idle timeout from firing for 1.5 s."""
        client, jid = yield self.login("alice@localhost")
        for _ in range(8):
            client.send(" ")
            yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertFalse(client.lost)
        client.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield client.next()
        self.assertEqual((reply.getAttribute("type"), reply.getAttribute("to")), ("result", jid))
        # Then silence: closed.
        yield self.assertStreamError(client, "connection-timeout")

    @defer.inlineCallbacks
    def test_disabledByDefault(self):
        """idle_timeout = 0 (the default) never closes a quiet stream."""
        self.assertEqual(type(self.server.config.c2s).__dataclass_fields__["idle_timeout"].default, 0.0)
        for f in self.server._c2sFactories:
            f.idleTimeout = 0.0
        client, _ = yield self.login("alice@localhost")
        yield task.deferLater(reactor, 0.8, lambda: None)
        self.assertFalse(client.lost)


class IdleParserTests(StreamErrorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_idleStreamParserReleased(self):
        """A stream that read nothing between two sweeps loses its parser, and its next stanza is read and answered as before."""
        client, jid = yield self.login("alice@localhost")
        (factory,) = [f for f in self.server._c2sFactories if f.streams]
        (stream,) = factory.streams
        factory.releaseIdleParsers()  # it had read: only marked
        self.assertIsNotNone(stream._parser._parser)
        factory.releaseIdleParsers()
        self.assertIsNone(stream._parser._parser)
        client.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield client.next()
        self.assertEqual((reply.getAttribute("type"), reply.getAttribute("id"), reply.getAttribute("to")), ("result", "p", jid))
        self.assertIsNotNone(stream._parser._parser)
