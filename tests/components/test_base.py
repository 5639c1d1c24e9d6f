"""
The component base (components/base.py): the same tx_xmpp handlers run
in-process on a Router, and over XEP-0114 against the server's real
component listener (here with a router that records), reconnecting with
backoff.
"""

from __future__ import annotations

import socket

from twisted.internet import defer, endpoints, reactor, task
from twisted.trial import unittest
from twisted.words.xish import domish
from tx_xmpp.subprotocols import XMPPHandler

from components.base import ExternalComponent, InProcessComponent, copyWithTo
from jabberd.components import ComponentListener
from jabberd.xmlstream import NS_CLIENT
from tests.components.muc.support import RecordingRouter
from tests.fakes import element
from tests.harness import xml

DOMAIN = "echo.localhost"


class Echo(XMPPHandler):
    """A handler that records messages and answers each with one broadcast to two JIDs."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[domish.Element] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onMessage)

    def onMessage(self, message: domish.Element) -> None:
        self.received.append(message)
        reply = domish.Element((NS_CLIENT, "message"))
        reply["from"] = f"bot@{DOMAIN}"
        reply.addElement("body", content="echo: " + str(message.body))
        self.parent.broadcast(reply, ["alice@localhost/a", "bob@localhost/b"])


def freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def waitUntil(predicate, timeout: float = 10.0) -> defer.Deferred:
    @defer.inlineCallbacks
    def poll():
        for _ in range(int(timeout / 0.02)):
            if predicate():
                return
            yield task.deferLater(reactor, 0.02, lambda: None)
        raise AssertionError("condition not reached in time")

    return poll()


class InProcessTests(unittest.TestCase):
    """Handlers attached to the Router."""

    def setUp(self):
        self.router = RecordingRouter()
        self.echo = Echo()
        self.component = InProcessComponent(self.router, DOMAIN, [self.echo])
        self.component.startService()
        self.addCleanup(self.component.stopService)

    def test_deliverAndBroadcast(self):
        """A stanza for the domain reaches the handler as it is; its broadcast becomes one stanza per recipient."""
        message = element(f"<message from='carol@localhost/c' to='bot@{DOMAIN}'><body>hi</body></message>")
        self.router.domains[DOMAIN](message)
        self.assertIs(self.echo.received[0], message)
        self.assertEqual([xml(e) for e in self.router.routed], [
            f"<message from='bot@{DOMAIN}' to='alice@localhost/a'><body>echo: hi</body></message>",
            f"<message from='bot@{DOMAIN}' to='bob@localhost/b'><body>echo: hi</body></message>",
        ])
        first, second = self.router.routed
        self.assertIs(first.children[0], second.children[0])

    def test_fromOutsideTheDomainDropped(self):
        """A handler cannot speak for another domain in-process either."""
        message = domish.Element((NS_CLIENT, "message"))
        message["from"] = "alice@localhost"
        message["to"] = "bob@localhost"
        self.component.send(message)
        self.assertEqual(self.router.routed, [])

    def test_fromDefaultsToDomain(self):
        """A stanza sent without 'from' is from the component's domain."""
        message = domish.Element((None, "message"))
        message["to"] = "bob@localhost"
        self.component.send(message)
        self.assertEqual(xml(self.router.routed[0]), f"<message from='{DOMAIN}' to='bob@localhost'/>")

    def test_stopped(self):
        """Once stopped, the domain is no longer the component's."""
        self.component.stopService()
        self.assertNotIn(DOMAIN, self.router.domains)

    def test_copyWithTo(self):
        """copyWithTo shares children but not the list or the attributes."""
        template = domish.Element((NS_CLIENT, "message"))
        body = template.addElement("body", content="x")
        copy = copyWithTo(template, "a@b")
        copy.children.append("more")
        self.assertEqual((copy["to"], template.getAttribute("to"), template.children), ("a@b", None, [body]))


class ExternalTests(unittest.TestCase):
    """Handlers over XEP-0114, against the server's listener."""

    timeout = 30

    @defer.inlineCallbacks
    def listen(self, port: int = 0):
        self.router = getattr(self, "router", None) or RecordingRouter()
        self.listener = ComponentListener(self.router, {DOMAIN: "secret"}, reactor)
        self.listener.start()
        endpoint = endpoints.serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1")
        self.port = yield endpoint.listen(self.listener.factory())

        @defer.inlineCallbacks
        def stop():
            yield self.listener.stop()
            yield self.port.stopListening()

        self.addCleanup(stop)
        return self.port.getHost().port

    def connect(self, port: int, initialDelay: float = 0.1) -> tuple[ExternalComponent, Echo]:
        echo = Echo()
        component = ExternalComponent("127.0.0.1", port, DOMAIN, "secret", [echo], maxDelay=1.0, initialDelay=initialDelay)
        component.startService()
        self.addCleanup(component.stopService)
        return component, echo

    @defer.inlineCallbacks
    def test_roundTrip(self):
        """Stanzas reach the handlers as jabber:client, and a broadcast comes back as one stanza per recipient."""
        port = yield self.listen()
        component, echo = self.connect(port)
        yield waitUntil(lambda: DOMAIN in self.listener.connected)
        self.router.domains[DOMAIN](element(f"<message from='carol@localhost/c' to='bot@{DOMAIN}'><body>hi</body></message>"))
        yield waitUntil(lambda: len(self.router.routed) == 2)
        self.assertEqual((echo.received[0].uri, echo.received[0].body.uri), (NS_CLIENT, NS_CLIENT))
        self.assertEqual([xml(e) for e in self.router.routed], [
            f"<message from='bot@{DOMAIN}' to='alice@localhost/a'><body>echo: hi</body></message>",
            f"<message from='bot@{DOMAIN}' to='bob@localhost/b'><body>echo: hi</body></message>",
        ])

    @defer.inlineCallbacks
    def test_reconnectWithBackoff(self):
        """A component started before the server connects once it listens, and again after the server restarts."""
        port = freePort()
        component, echo = self.connect(port)
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertFalse(component.connected)
        yield self.listen(port)
        yield waitUntil(lambda: DOMAIN in self.listener.connected)
        yield self.listener.stop()
        yield self.port.stopListening()
        yield waitUntil(lambda: not component.connected)
        yield self.listen(port)
        yield waitUntil(lambda: DOMAIN in self.listener.connected)
        self.assertTrue(component.connected)

    @defer.inlineCallbacks
    def test_wrongSecretRetries(self):
        """A refused handshake does not stop the component: it keeps trying (with backoff)."""
        port = yield self.listen()
        echo = Echo()
        component = ExternalComponent("127.0.0.1", port, DOMAIN, "wrong", [echo], maxDelay=0.5, initialDelay=0.1)
        component.startService()
        self.addCleanup(component.stopService)
        yield task.deferLater(reactor, 0.5, lambda: None)
        self.assertTrue(component.running)
        self.assertFalse(component.connected)
        self.assertNotIn(DOMAIN, self.listener.connected)
