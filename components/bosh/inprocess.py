"""
In process: each web session is a L{Link} feeding a L{ClientSession}, the
same object a TCP connection feeds.  SASL, bind and every stanza rule are
the core's own code; only TLS differs, since it is the HTTP layer's.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.words.xish import domish

from components.bosh.framing import Downstream, headerAttrs, qualify
from jabberd.c2s.session import C2SContext, ClientSession
from jabberd.xmlstream import StreamError


class WebLink:
    """The L{Link} a L{ClientSession} sends through: the transport, in XMPP terms."""

    __slots__ = ("downstream", "_closed")

    def __init__(self, downstream: Downstream) -> None:
        self.downstream = downstream
        self._closed = False

    @property
    def secure(self) -> bool:
        return self.downstream.secure

    @property
    def peerAddress(self) -> str:
        """The web client's address: ClientSession's SASL throttle keys on it, as on TCP."""
        return self.downstream.peerAddress

    def sendHeader(self, attrs: dict[str, str]) -> None:
        if not self._closed:
            self.downstream.streamOpened(attrs)

    def sendBytes(self, data: bytes) -> None:
        if not self._closed:
            self.downstream.send(qualify(data))

    def sendFooter(self) -> None:
        if not self._closed:
            self._closed = True
            self.downstream.streamClosed()

    def close(self) -> None:
        self.sendFooter()

    def canStartTLS(self) -> bool:
        return False

    def startTLS(self, host: str) -> None:
        raise RuntimeError("TLS is the HTTP layer's")

    def canCompress(self) -> bool:
        return False  # XEP-0138 is TCP framing; HTTP has its own encodings

    def startCompression(self) -> None:
        raise RuntimeError("no stream compression over BOSH/WebSocket")

    def restart(self) -> None:
        """Nothing to do: the client restarts (BOSH xmpp:restart, a new WebSocket <open/>)."""

    def channelBindings(self) -> dict[str, bytes]:
        return self.downstream.channelBindings()

    def peerCertificate(self) -> Any:
        return self.downstream.peerCertificate()


class InProcessUpstream:
    """One web session as a client stream of this server (an L{Upstream})."""

    log = Logger()

    def __init__(self, ctx: C2SContext, downstream: Downstream) -> None:
        self.ctx = ctx
        self.link = WebLink(downstream)
        self.session: ClientSession | None = None

    def _session(self) -> ClientSession:
        if self.session is None:
            self.session = ClientSession(self.ctx, self.link)
        return self.session

    def open(self, attrs: dict[str, str]) -> None:
        self._guard(self._session().streamStarted, headerAttrs(attrs))

    def receive(self, element: domish.Element) -> None:
        if self.session is not None:
            self._guard(self.session.elementReceived, element)

    def close(self) -> None:
        if self.session is not None:
            self.session.streamEnded()

    def abort(self) -> None:
        self.link._closed = True
        if self.session is not None:
            self.session.connectionLost()

    def fail(self, condition: str, text: str | None = None) -> None:
        self._session().streamError(StreamError(condition, text))

    def _guard(self, method: Any, arg: Any) -> None:
        """Run a session handler as the TCP link does: errors become stream errors."""
        session = self._session()
        try:
            method(arg)
        except StreamError as e:
            session.streamError(e)
        except Exception:
            self.log.failure("unexpected error handling web client data")
            session.terminate("internal-server-error")


class InProcess:
    """Makes an L{InProcessUpstream} per web session, all sharing one L{C2SContext}."""

    def __init__(self, ctx: C2SContext) -> None:
        self.ctx = ctx
        self.hosts = ctx.hosts

    def __call__(self, downstream: Downstream) -> InProcessUpstream:
        return InProcessUpstream(self.ctx, downstream)
