"""
XMPP over WebSocket (RFC 7395), on autobahn's WebSocket implementation.

Each WebSocket message is one complete element: C{<open/>} and
C{<close/>} (urn:ietf:params:xml:ns:xmpp-framing) stand for the stream
header and footer, everything else is a stanza or a negotiation element,
parsed with the same restricted parser and limits as a TCP stream.  The
connection is the L{Downstream} of its L{Upstream}, like a BOSH session.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.logger import Logger
from twisted.words.xish import domish

from components.bosh.bosh import bounces
from components.bosh.framing import NS_FRAMING, Upstream, lang, qualify
from jabberd import tls
from jabberd.c2s.tcp import _socketOf
from jabberd.limits import TokenBucket
from jabberd.xmlstream import NS_CLIENT, NS_STREAMS, StreamError, StreamParser, serializeStreamElement, streamErrorElement

if TYPE_CHECKING:
    from components.bosh.web import WebFrontend

SUBPROTOCOL = "xmpp"

_WRAP_START = f"<w xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>".encode()
_WRAP_END = b"</w>"


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


def framing(name: str, attrs: dict[str, str]) -> bytes:
    """An C{<open/>} or C{<close/>} framing element."""
    text = "".join(f" {k}='{_attr(v)}'" for k, v in attrs.items())
    return f"<{name} xmlns='{NS_FRAMING}'{text}/>".encode("utf-8")


class XMPPWebSocketProtocol(WebSocketServerProtocol):
    """One WebSocket connection carrying one client stream."""

    log = Logger()
    factory: XMPPWebSocketFactory

    def __init__(self) -> None:
        super().__init__()
        self.upstream: Upstream | None = None
        self.secure = False
        self.opened = False  # our <open/> is out
        self.started = False  # theirs arrived
        self.closed = False  # our <close/> is out
        self._cb: dict[str, bytes] | None = None
        self._pingCall: Any = None
        self._pongDeadline: Any = None
        self._pingPayload = b""
        #: the client's address (see WebFrontend.clientAddress), counted in the per-address limit
        self.peerAddress = ""
        self._counted = False
        # Rate limit (http.max_bytes_per_second): over it, the socket is not
        # read for a while, and messages autobahn already decoded wait in
        # _held, in order, never dropped (as on a TCP client stream).
        self._bucket: TokenBucket | None = None
        self._held: list[tuple[bytes, bool]] | None = None
        self._resumeCall: Any = None
        #: stanzas sent while the WebSocket was already closing
        self._unsent: list[bytes] = []

    # -- the WebSocket handshake ---------------------------------------------------

    def onConnect(self, request: ConnectionRequest) -> str:
        frontend = self.factory.frontend
        origin = request.headers.get("origin")
        if origin is not None and not frontend.originAllowed(origin):
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "this origin may not connect")
        if SUBPROTOCOL not in request.protocols:
            # RFC 7395 §3.1: the xmpp subprotocol, or no XMPP at all.
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "the 'xmpp' WebSocket subprotocol is required (RFC 7395)")
        self.secure = frontend.secureConnection(self.transport, request.headers.get("x-forwarded-proto"))
        self.peerAddress = frontend.clientAddress(self.transport.getPeer(), request.headers.get("x-forwarded-for"))
        if not frontend.perAddress.acquire(self.peerAddress):
            self.log.info("too many web sessions from {address}", address=self.peerAddress)
            raise ConnectionDeny(429, "too many connections from your address")
        self._counted = True
        return SUBPROTOCOL

    def onOpen(self) -> None:
        self.factory.connections.add(self)
        config = self.factory.frontend.config
        if config.max_bytes_per_second:
            self._bucket = TokenBucket(config.max_bytes_per_second, config.burst_bytes, self.factory.frontend.reactor.seconds())
        self.upstream = self.factory.frontend.upstreamFactory(self)
        self._schedulePing()

    # -- keepalive (RFC 7395 §3.4: WebSocket pings, not whitespace) -----------------

    def _schedulePing(self) -> None:
        interval = self.factory.pingInterval
        if interval:
            self._pingCall = self.factory.frontend.reactor.callLater(interval, self._ping)

    def _ping(self) -> None:
        self._pingCall = None
        self._pingPayload = os.urandom(8)
        self.sendPing(self._pingPayload)
        # No pong within one more interval: the peer is gone.
        self._pongDeadline = self.factory.frontend.reactor.callLater(self.factory.pingInterval, self._noPong)

    def onPong(self, payload: bytes) -> None:
        if payload == self._pingPayload and self._pongDeadline is not None:
            self._pongDeadline.cancel()
            self._pongDeadline = None
            self._schedulePing()

    def _noPong(self) -> None:
        self._pongDeadline = None
        self.dropConnection(abort=True)

    def _stopKeepalive(self) -> None:
        for call in (self._pingCall, self._pongDeadline):
            if call is not None and call.active():
                call.cancel()
        self._pingCall = self._pongDeadline = None

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self._stopKeepalive()
        if self._resumeCall is not None and self._resumeCall.active():
            self._resumeCall.cancel()
        self._resumeCall = self._held = None
        if self._counted:
            self._counted = False
            self.factory.frontend.perAddress.release(self.peerAddress)
        self.factory.connections.discard(self)
        upstream, self.upstream = self.upstream, None
        if upstream is not None and not self.closed:
            self.closed = True
            unsent, self._unsent = self._unsent, []
            for reply in bounces(unsent):
                upstream.receive(reply)
            upstream.abort()

    # -- from the client -------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self._held is not None:
            self._held.append((payload, isBinary))
            return
        if self._bucket is not None:
            reactor = self.factory.frontend.reactor
            wait = self._bucket.consume(len(payload), reactor.seconds())
            if wait > 0:
                # Take this one, then read nothing until the average is back under the limit.
                self._held = []
                _socketOf(self.transport).pauseProducing()
                self._resumeCall = reactor.callLater(wait, self._resumeReading)
        self._process(payload, isBinary)

    def _resumeReading(self) -> None:
        self._resumeCall = None
        held, self._held = self._held or [], None
        if self.upstream is None:
            return
        _socketOf(self.transport).resumeProducing()
        for payload, isBinary in held:
            self.onMessage(payload, isBinary)

    def _process(self, payload: bytes, isBinary: bool) -> None:
        upstream = self.upstream
        if upstream is None or self.closed:
            return
        if isBinary:
            upstream.fail("bad-format", "XMPP messages are text (RFC 7395 §3.3.2)")
            return
        if not payload.strip():
            return  # whitespace is not XMPP over WebSocket; ignore rather than fail
        elements: list[domish.Element] = []
        limits = self.factory.frontend.limits
        parser = StreamParser(lambda a: None, elements.append, lambda: None, limits.maxStanzaSize, limits.maxDepth + 1)
        try:
            parser.feed(_WRAP_START)
            parser.feed(payload)
            parser.feed(_WRAP_END)
        except StreamError as e:
            upstream.fail(e.condition, e.text)
            return
        if len(elements) != 1:
            upstream.fail("not-well-formed", "a WebSocket message must be exactly one complete element (RFC 7395 §3.3.3)")
            return
        self.elementReceived(elements[0])

    def elementReceived(self, element: domish.Element) -> None:
        upstream = self.upstream
        assert upstream is not None
        if element.uri == NS_FRAMING and element.name == "open":
            self.started = True
            secureURL = self.factory.frontend.config.secure_url
            if secureURL and not self.secure:
                # RFC 7395 §3.6.1: go elsewhere; the stream never opens here.
                uri = "wss" + secureURL[len("https") :] + self.factory.frontend.config.websocket_path
                self.closed = True
                self.upstream = None
                self.sendMessage(framing("close", {"see-other-uri": uri}))
                self.sendClose(1000)
                return
            attrs = {k: v for k, v in element.attributes.items() if isinstance(k, str)}
            found = {key: attrs[key] for key in ("to", "from", "version") if key in attrs}
            language = lang(element.attributes)
            if language:
                found["xml:lang"] = language
            upstream.open(found)
        elif element.uri == NS_FRAMING and element.name == "close":
            upstream.close()
        elif not self.started:
            upstream.fail("not-well-formed", "the stream must begin with <open/>")
        else:
            upstream.receive(element)

    # -- Downstream (from the upstream) ----------------------------------------------

    def _closing(self) -> bool:
        """
        The WebSocket is closing or closed (the client's close frame, a
        protocol error autobahn answered): nothing can be sent any more,
        though onClose, which ends the session, is still to come.
        """
        return self.state != self.STATE_OPEN

    def streamOpened(self, attrs: dict[str, str]) -> None:
        if self.closed or self._closing():
            return
        self.opened = True
        header = {k: v for k, v in attrs.items() if k in ("from", "to", "id", "version", "xml:lang")}
        self.sendMessage(framing("open", header))

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._closing():
            # The client will never read it: bounced when the session ends (onClose), as BOSH does.
            self._unsent.append(data)
            return
        self.sendMessage(data)

    def streamClosed(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._closing():
            return  # the closing handshake is already under way
        self.sendMessage(framing("close", {}))
        # RFC 7395 §3.6: the stream is closed; now the WebSocket closing handshake.
        self.sendClose(1000)

    def streamFailed(self, condition: str, text: str | None = None) -> None:
        if self.closed:
            return
        if not self.opened:
            self.streamOpened({"version": "1.0", "xml:lang": "en"})
        self.send(qualify(serializeStreamElement(streamErrorElement(condition, text))))
        self.streamClosed()

    def channelBindings(self) -> dict[str, bytes]:
        # One TLS connection carries the whole stream: its bindings are real.
        if self._cb is None:
            conn = tls.tlsConnectionOf(self.transport)
            self._cb = tls.channelBindings(conn) if conn is not None else {}
        return self._cb

    def peerCertificate(self) -> Any:
        return tls.peerCertificate(self.transport)


class XMPPWebSocketFactory(WebSocketServerFactory):
    """Makes L{XMPPWebSocketProtocol}s with the site's limits and keepalive."""

    protocol = XMPPWebSocketProtocol

    def __init__(self, frontend: WebFrontend) -> None:
        super().__init__(reactor=frontend.reactor)
        self.frontend = frontend
        self.connections: set[XMPPWebSocketProtocol] = set()
        config = frontend.config
        options: dict[str, Any] = {
            "maxMessagePayloadSize": config.websocket_max_message_size,
            "maxFramePayloadSize": config.websocket_max_message_size,
            "openHandshakeTimeout": 30,
            "closeHandshakeTimeout": 5,
            # A protocol violation (a message over the size limit) is
            # answered with a close frame and its status, not a bare drop.
            "failByDrop": False,
        }
        self.setProtocolOptions(**options)
        self.pingInterval = config.websocket_ping_interval

    def stop(self) -> None:
        """Close every connection now (the service is stopping) and cancel autobahn's timers."""
        for connection in list(self.connections):
            if not connection.closed and connection.upstream is not None:
                connection.upstream.fail("system-shutdown", "the server is shutting down")
            connection._stopKeepalive()
            connection.dropConnection(abort=False)
        cancelTimers(self)


def cancelTimers(factory: Any) -> None:
    """
    Cancel the pending calls of an autobahn factory's batched timer
    (handshake timeouts, pings): autobahn cancels single timers but leaves
    their shared bucket call scheduled, which would outlive a stopped service.
    """
    buckets = getattr(getattr(factory, "_batched_timer", None), "_buckets", None)
    if not buckets:
        return
    for delayedCall, _ in list(buckets.values()):
        if delayedCall.active():
            delayedCall.cancel()
    buckets.clear()
