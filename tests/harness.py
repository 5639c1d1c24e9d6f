"""
Helpers for integration tests: a real server on ephemeral loopback ports,
a raw-bytes client for protocol transcripts, and slixmpp clients sharing
trial's asyncio reactor (the suite runs with `trial --reactor=asyncio`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.words.xish import domish

from jabberd.config import Config, fromDict
from jabberd.passwords import credentialsFor
from jabberd.service import XMPPServer
from jabberd.xmlstream import StreamParser

LOOPBACK = "127.0.0.1"


def makeConfig(dataDir: str, **overrides: Any) -> Config:
    """A config listening on ephemeral loopback ports with a temp data folder."""
    data: dict[str, Any] = {
        "data_dir": dataDir,
        "c2s": {"listen": [f"tcp:0:interface={LOOPBACK}"], "listen_tls": [f"tcp:0:interface={LOOPBACK}"]},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return fromDict(data)


class ServerMixin:
    """
    For trial TestCases: C{startServer()} runs a real XMPPServer, stopped
    again at cleanup.  Mix in before C{unittest.TestCase}.
    """

    server: XMPPServer

    @defer.inlineCallbacks
    def startServer(self, **overrides: Any):
        dataDir = tempfile.mkdtemp(prefix="jabberd-test-")
        self.dataDir = dataDir
        self.server = XMPPServer(makeConfig(dataDir, **overrides), reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready
        return self.server

    @defer.inlineCallbacks
    def addUser(self, address: str, password: str = "secret"):
        user, _, host = address.partition("@")
        credentials = credentialsFor(password, self.server.config.auth.scram_iterations)
        yield self.server.accounts.create(host, user, credentials)

    def certificatePath(self, host: str = "localhost") -> str:
        return os.path.join(self.dataDir, "certs", f"{host}.pem")

    def clientSSLContext(self, host: str = "localhost", maxVersion: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A client TLS context that trusts exactly the server's generated certificate."""
        ctx = ssl.create_default_context(cafile=self.certificatePath(host))
        if maxVersion is not None:
            ctx.maximum_version = maxVersion
        return ctx


# -- raw protocol transcripts ---------------------------------------------------


class RawClient(protocol.Protocol):
    """Sends bytes, collects parsed elements: for exact-stanza assertions."""

    def __init__(self) -> None:
        self.header: dict | None = None
        self.elements: list[domish.Element] = []
        self.ended = False
        self.closed: defer.Deferred = defer.Deferred()
        self.raw = b""
        self._waiters: list[tuple[Any, defer.Deferred]] = []
        self._resetParser()

    def _resetParser(self) -> None:
        self.parser = StreamParser(self._onStart, self._onElement, self._onEnd, 10**7, 1000)

    def _onStart(self, attrs: dict) -> None:
        self.header = attrs
        self._check()

    def _onElement(self, element: domish.Element) -> None:
        self.elements.append(element)
        self._check()

    def _onEnd(self) -> None:
        self.ended = True
        self._check()

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self.parser.feed(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.ended = True
        self._check()
        self.closed.callback(None)

    def send(self, data: str | bytes) -> None:
        self.transport.write(data.encode() if isinstance(data, str) else data)

    def open(self, to: str = "localhost", extra: str = "") -> None:
        self.send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'{extra}>"
        )

    def _check(self) -> None:
        for item in list(self._waiters):
            predicate, d = item
            result = predicate()
            if result:
                self._waiters.remove(item)
                d.callback(result)

    def waitFor(self, predicate, timeout: float = 5.0) -> defer.Deferred:
        """Fire with predicate()'s value once it is truthy (checked on every event)."""
        result = predicate()
        if result:
            return defer.succeed(result)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((predicate, d))
        d.addTimeout(timeout, reactor)
        return d

    def waitElement(self, name: str, uri: str | None = None, after: int = 0) -> defer.Deferred:
        """The first element named C{name} (in C{uri}) at or after index C{after}."""

        def find():
            for e in self.elements[after:]:
                if e.name == name and (uri is None or e.uri == uri):
                    return e
            return None

        return self.waitFor(find)

    def restart(self) -> None:
        """Expect a new stream header (after STARTTLS or SASL)."""
        self.header = None
        self.elements = []
        self._resetParser()


@defer.inlineCallbacks
def rawConnect(port: int):
    """Connect a L{RawClient} to C{port} on loopback."""
    client = yield TCP4ClientEndpoint(reactor, LOOPBACK, port).connect(protocol.Factory.forProtocol(RawClient))
    return client


# -- slixmpp --------------------------------------------------------------------


def slixmppClient(jid: str, password: str, sslContext: ssl.SSLContext | None = None, directTLS: bool = False, plugins: tuple[str, ...] = ()):
    """A slixmpp ClientXMPP on the asyncio loop trial's reactor runs."""
    import slixmpp

    client = slixmpp.ClientXMPP(jid, password, loop=asyncio.get_event_loop())
    if sslContext is not None:
        client.ssl_context = sslContext
    client.enable_direct_tls = directTLS
    client.enable_starttls = not directTLS
    client.enable_plaintext = False
    client.use_aiodns = False
    client.auto_reconnect = False if hasattr(client, "auto_reconnect") else None
    for plugin in plugins:
        client.register_plugin(plugin)
    return client


def deferred(awaitable: Any) -> defer.Deferred:
    """A Deferred for an asyncio awaitable (slixmpp futures and coroutines)."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(awaitable))


@defer.inlineCallbacks
def connectSlixmpp(client, port: int, timeout: float = 10.0):
    """Connect C{client} to loopback C{port} and wait for session_start."""
    started: asyncio.Future = asyncio.get_event_loop().create_future()
    failed = lambda *a: started.done() or started.set_exception(RuntimeError(f"login failed: {a!r}"))  # noqa: E731
    client.add_event_handler("session_start", lambda *a: started.done() or started.set_result(True))
    client.add_event_handler("failed_auth", failed)
    client.add_event_handler("connection_failed", failed)
    client.add_event_handler("disconnected", failed)
    client.connect(LOOPBACK, port)
    d = deferred(started)
    d.addTimeout(timeout, reactor)
    yield d
    return client
