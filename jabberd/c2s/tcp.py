"""
Client streams over TCP: port 5222 with STARTTLS and 5223 with direct TLS
(XEP-0368).  This is only framing: bytes in through the parser, bytes out;
the XMPP logic is L{ClientSession}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from jabberd import tls
from jabberd.c2s.session import C2SContext, ClientSession
from jabberd.xmlstream import StreamError, StreamParser

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'"
)


class ClientStream(Protocol):
    """One TCP connection carrying one client session."""

    log = Logger()

    def __init__(self, ctx: C2SContext, serverTLS: tls.ServerTLS | None, directTLS: bool, maxStanzaSize: int, maxDepth: int) -> None:
        self.ctx = ctx
        self.serverTLS = serverTLS
        self.secure = directTLS
        self._maxStanzaSize = maxStanzaSize
        self._maxDepth = maxDepth
        self._parser: StreamParser | None = None
        self._closing = False
        self._cb: dict[str, bytes] | None = None
        self.session: ClientSession | None = None
        self.factory: ClientStreamFactory | None = None

    def connectionMade(self) -> None:
        if self.factory is not None:
            self.factory.streams.add(self)
        self.session = ClientSession(self.ctx, self)
        self._newParser()

    def _newParser(self) -> None:
        s = self.session
        assert s is not None
        self._parser = StreamParser(s.streamStarted, s.elementReceived, s.streamEnded, self._maxStanzaSize, self._maxDepth)

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._parser is None:
            return
        try:
            self._parser.feed(data)
        except StreamError as e:
            assert self.session is not None
            self.session.streamError(e)
        except Exception:
            self.log.failure("unexpected error handling client data")
            if self.session is not None:
                self.session.terminate("internal-server-error")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closing = True
        self._parser = None
        if self.session is not None:
            self.session.connectionLost()
            self.session = None
        if self.factory is not None:
            self.factory.streamClosed(self)

    # -- Link -----------------------------------------------------------------

    def sendHeader(self, attrs: dict[str, str]) -> None:
        if self._closing:
            return
        parts = [HEADER]
        for key, value in attrs.items():
            parts.append(f" {key}='{_escapeAttr(value)}'")
        parts.append(">")
        self.transport.write("".join(parts).encode("utf-8"))

    def sendBytes(self, data: bytes) -> None:
        if not self._closing:
            self.transport.write(data)

    def sendFooter(self) -> None:
        if not self._closing:
            self.transport.write(b"</stream:stream>")

    def close(self) -> None:
        self._closing = True
        if self._parser is not None:
            self._parser.stop()
        self.transport.loseConnection()

    def canStartTLS(self) -> bool:
        return self.serverTLS is not None and not self.secure

    def startTLS(self, host: str) -> None:
        assert self.serverTLS is not None
        self.transport.startTLS(self.serverTLS.serverOptions(host))
        self.secure = True
        # Whatever followed <starttls/> in the same plaintext read is dropped
        # by restart(): only bytes that came through TLS belong to the new
        # stream (the STARTTLS command injection of CVE-2011-0411).
        self.restart()

    def restart(self) -> None:
        if self._parser is not None:
            self._parser.stop()
        self._newParser()

    def channelBindings(self) -> dict[str, bytes]:
        # Asked only once the handshake is over (after the first header on
        # TLS), and the values never change for a connection: compute once.
        if self._cb is None:
            conn = tls.tlsConnectionOf(self.transport)
            self._cb = tls.channelBindings(conn) if conn is not None else {}
        return self._cb

    def peerCertificate(self) -> Any:
        return tls.peerCertificate(self.transport)


def _escapeAttr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


class ClientStreamFactory(Factory):
    """
    Makes a L{ClientStream} per connection, sharing one L{C2SContext}.

    It keeps the open connections so that a stopping server can wait until
    each one has flushed its C{<system-shutdown/>} and closed
    (L{closeAll}), instead of letting the reactor cut them off mid-write.
    """

    def __init__(self, ctx: C2SContext, serverTLS: tls.ServerTLS | None, directTLS: bool = False, maxStanzaSize: int = 262144, maxDepth: int = 64) -> None:
        self.ctx = ctx
        self.serverTLS = serverTLS
        self.directTLS = directTLS
        self.maxStanzaSize = maxStanzaSize
        self.maxDepth = maxDepth
        self.streams: set[ClientStream] = set()
        self._drained: list[defer.Deferred] = []

    def buildProtocol(self, addr: Any) -> ClientStream:
        p = ClientStream(self.ctx, self.serverTLS, self.directTLS, self.maxStanzaSize, self.maxDepth)
        p.factory = self
        return p

    def streamClosed(self, stream: ClientStream) -> None:
        """A connection is gone; wake L{whenClosed} waiters once none is left."""
        self.streams.discard(stream)
        if not self.streams:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def whenClosed(self, reactor: IReactorTime, timeout: float) -> defer.Deferred:
        """
        Fire once every connection has closed; abort those still open after
        C{timeout} seconds (a peer that never answers TLS close_notify).
        """
        if not self.streams:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drained.append(d)

        def abort() -> None:
            for stream in list(self.streams):
                stream.transport.abortConnection()

        call = reactor.callLater(timeout, abort)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d
