"""
The XEP-0114 component listener under attack and under faults, against a
real server over loopback.

Fuzzing: generated streams before the handshake and mutated stanza
sequences after it; no error is logged, every stream ends or stays
harmless, the listener's registries and the live ComponentStream objects
return to their baseline, and users are still served.

Faults: a component whose connection is reset, again and again.  While
it is away, stanzas to its domain are bounced with service-unavailable
(the domain is configured, its service is down: jabberd/components.py);
each time it reconnects it is served again; and no old stream object
survives.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.components import ComponentStream, handshakeDigest
from jabberd.xmlstream import NS_COMPONENT
from tests.harness import condition, rawConnect, xml
from tests.hostile import fuzzing
from tests.hostile.base import HostileMixin
from tests.hostile.test_fuzz import ServerFuzzTests, collect
from tests.hostile.test_leaks import LeakMixin, liveObjects

SECRET = "s3cret"
DOMAIN = "muc.localhost"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class ComponentMixin(LeakMixin, HostileMixin):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(
            components={"listen": ["tcp:0:interface=127.0.0.1"], "secrets": {DOMAIN: SECRET}, "handshake_timeout": 1.0},
            muc={"enabled": False},
        )
        yield self.addUser("alice@localhost")
        self.base = self.baseline()

    @defer.inlineCallbacks
    def component(self):
        """A raw component through the handshake."""
        client = yield rawConnect(self.server.port("component"))
        self.addCleanup(client.disconnect)
        client.send(fuzzing.COMPONENT_OPEN.format(domain=DOMAIN))
        header = yield client.nextHeader()
        client.send(f"<handshake>{handshakeDigest(header['id'], SECRET)}</handshake>")
        answer = yield client.next()
        self.assertEqual(xml(answer, NS_COMPONENT), "<handshake/>")
        return client


class ComponentFuzzTests(ComponentMixin, unittest.TestCase):
    """Generated input into the component port."""

    @defer.inlineCallbacks
    def replay(self, examples: list, connect):
        """The c2s pass's replay (chunks until the server closes), one example at a time: only one stream may hold the domain."""
        for example in examples:
            yield ServerFuzzTests.replay([example], connect)

    @defer.inlineCallbacks
    def test_beforeHandshake(self):
        """60 generated streams on fresh component connections: no error logged, no leak, users served."""
        examples = collect(fuzzing.componentStreams(DOMAIN).flatmap(lambda d: fuzzing.chunkSizes.map(lambda s: (d, s))), 60)

        def connect():
            return rawConnect(self.server.port("component"))

        yield self.replay(examples, connect)
        yield self.assertBackToBaseline(self.base)
        self.assertEqual(self.server.components.connected, {})
        yield self.assertServed()
        # The component itself can still connect and be routed to.
        yield self.component()

    @defer.inlineCallbacks
    def test_afterHandshake(self):
        """30 mutated stanza sequences from an authenticated component: no error logged, no leak, users served."""
        examples = collect(fuzzing.componentStanzas(DOMAIN).flatmap(lambda d: fuzzing.chunkSizes.map(lambda s: (d, s))), 30)
        yield self.replay(examples, self.component)
        yield self.assertBackToBaseline(self.base)
        self.assertEqual(self.server.components.connected, {})
        yield self.assertServed()


class ComponentReconnectTests(ComponentMixin, unittest.TestCase):
    """A component that drops (TCP reset) and reconnects, five times."""

    @defer.inlineCallbacks
    def test_dropAndReconnect(self):
        """While away its domain bounces service-unavailable; back, it is served; no old stream survives."""
        alice, jid = yield self.login("alice@localhost")
        self.base = self.baseline()
        for i in range(5):
            component = yield self.component()
            alice.send(f"<message to='room@{DOMAIN}' type='chat' id='up{i}'><body>hi</body></message>")
            got = yield component.next()
            self.assertEqual(xml(got, NS_COMPONENT), f"<message from='{jid}' id='up{i}' to='room@{DOMAIN}' type='chat'><body>hi</body></message>")
            component.send(f"<message from='room@{DOMAIN}' to='{jid}' id='back{i}'><body>back</body></message>")
            reply = yield alice.next()
            self.assertEqual(reply["id"], f"back{i}")
            # Reset: no closing tag, no FIN.
            component.transport.abortConnection()
            yield component.waitClosed()
            alice.send(f"<message to='room@{DOMAIN}' type='chat' id='down{i}'><body>anyone?</body></message>")
            bounce = yield alice.next()
            self.assertEqual((bounce["type"], bounce["id"], bounce["from"], condition(bounce, STANZAS)),
                             ("error", f"down{i}", f"room@{DOMAIN}", "service-unavailable"))
            alice.send(f"<iq to='{DOMAIN}' type='get' id='q{i}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            bounce = yield alice.next()
            self.assertEqual((bounce["type"], condition(bounce, STANZAS)), ("error", "service-unavailable"))
            yield component.disconnect()
        self.assertEqual(self.server.components.connected, {})
        yield self.assertBackToBaseline(self.base)
        self.assertEqual(liveObjects([ComponentStream]), {"ComponentStream": 0})
        # And once more: served again after all that.
        component = yield self.component()
        alice.send(f"<message to='room@{DOMAIN}' type='chat' id='last'><body>hi</body></message>")
        got = yield component.next()
        self.assertEqual(got["id"], "last")
        self.assertEqual(liveObjects([ComponentStream]), {"ComponentStream": 1})
