"""
Unit-test fixtures for modules: the real server (bus, router, sessions,
modules, SQLite store) without listeners, and real L{ClientSession}s bound
over a L{CollectingLink} instead of a socket.

Usage in a trial TestCase::

    class RosterTests(ModuleTestMixin, unittest.TestCase):
        @defer.inlineCallbacks
        def setUp(self):
            yield self.startModules()            # every module, or modules=["roster"]
            yield self.addUser("alice@localhost")
            self.alice = self.bind("alice@localhost/phone")

        def test_get(self):
            self.alice.receive("<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>")
            reply = self.alice.link.popOne()      # a domish.Element
"""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.internet import defer, reactor
from twisted.words.xish import domish

from jabberd.c2s.session import BOUND, ClientSession
from jabberd.passwords import credentialsFor
from jabberd.service import XMPPServer
from jabberd.xmlstream import StreamParser
from tests.harness import makeConfig

_OPEN = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def element(xml: str) -> domish.Element:
    """Parse one stanza written as XML text in the jabber:client namespace."""
    found: list[domish.Element] = []
    parser = StreamParser(lambda a: None, found.append, lambda: None, 10**7, 1000)
    parser.feed(_OPEN + xml.encode("utf-8"))
    assert len(found) == 1, f"expected one element in {xml!r}"
    return found[0]


class CollectingLink:
    """A Link that keeps what the session sends, parsed, for assertions."""

    secure = True

    def __init__(self) -> None:
        self.elements: list[domish.Element] = []
        self.closed = False
        self.footer = False
        self._parser = StreamParser(lambda a: None, self.elements.append, lambda: None, 10**8, 1000)
        self._parser.feed(_OPEN)

    def sendHeader(self, attrs: dict[str, str]) -> None:
        pass

    def sendBytes(self, data: bytes) -> None:
        self._parser.feed(data)

    def sendFooter(self) -> None:
        self.footer = True

    def close(self) -> None:
        self.closed = True

    def canStartTLS(self) -> bool:
        return False

    def startTLS(self, host: str) -> None:
        raise AssertionError("no TLS on a collecting link")

    def canCompress(self) -> bool:
        return False

    def startCompression(self) -> None:
        raise AssertionError("no compression on a collecting link")

    def restart(self) -> None:
        pass

    def channelBindings(self) -> dict[str, bytes]:
        return {}

    def peerCertificate(self) -> Any:
        return None

    def pop(self) -> list[domish.Element]:
        """Everything received since the last pop."""
        # Empty the list in place: the parser appends to this very list.
        out = list(self.elements)
        del self.elements[:]
        return out

    def popOne(self) -> domish.Element:
        """Exactly one element received since the last pop (fails otherwise)."""
        out = self.pop()
        assert len(out) == 1, f"expected one element, got {[e.toXml() for e in out]}"
        return out[0]


class TestSession(ClientSession):
    """A bound ClientSession whose link is a L{CollectingLink}."""

    __slots__ = ()

    def receive(self, xml: str | domish.Element) -> None:
        """Handle a stanza as if the client had sent it on its stream."""
        stanza = element(xml) if isinstance(xml, str) else xml
        self.elementReceived(stanza)

    def disconnect(self) -> None:
        """The client vanished (connection lost, no unavailable presence sent)."""
        self.link.close()
        self.connectionLost()


class SettableClock:
    """
    The real reactor (threads, timers), except that C{seconds()} reads a
    time the test sets: for replies that state the time (XEP-0202, XEP-0012).
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def seconds(self) -> float:
        return self.now

    def advance(self, amount: float) -> None:
        self.now += amount

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class ModuleTestMixin:
    """Start the real server without listeners; bind sessions without sockets."""

    server: XMPPServer

    @defer.inlineCallbacks
    def startModules(self, modules: list[str] | tuple[str, ...] = (), clock: Any = None, **overrides: Any):
        """Start the server with C{modules} (all when empty); C{clock}: a L{SettableClock} for its time."""
        dataDir = tempfile.mkdtemp(prefix="jabberd-unit-")
        overrides.setdefault("c2s", {"listen": [], "listen_tls": []})
        if modules:
            overrides["modules"] = {"enabled": list(modules)}
        self.server = XMPPServer(makeConfig(dataDir, **overrides), reactor=clock or reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)  # type: ignore[attr-defined]
        yield self.server.ready
        return self.server

    @defer.inlineCallbacks
    def addUser(self, address: str, password: str = "secret"):
        user, _, host = address.partition("@")
        yield self.server.accounts.create(host, user, credentialsFor(password))

    def bind(self, fullJID: str) -> TestSession:
        """A session for C{fullJID}, authenticated and bound (no presence sent yet)."""
        from jabberd import jid as J

        j = J.parse(fullJID)
        session = TestSession(self.server.c2sContext(), CollectingLink())
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        session.host = j.host
        session.authenticated = True
        session.username = j.user
        session.jid = j
        session.bareJID = j.userhost()
        session.resource = j.resource
        session._jidString = j.full()
        session.state = BOUND
        self.server.sessions.bind(session)
        self.addCleanup(session.connectionLost)  # type: ignore[attr-defined]
        return session

