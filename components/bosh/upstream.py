"""
Standalone: a XEP-0206 connection manager.  Each web session opens an
ordinary c2s stream to the core over TCP, negotiates STARTTLS on it (and
checks the core's certificate), and then relays: the client's elements up,
the core's elements down.

With C{[core] proxy_protocol} each connection to the core opens with a PROXY
v1 header naming the web client's address (L{Downstream.peerAddress}: the
HTTP peer, or the X-Forwarded-For client of a trusted proxy), for a core
listener written C{haproxy:...}: the core's per-address connection limit and
SASL throttle then count each web client apart instead of lumping them all
under this process's address.

The client's channel is the HTTP one, so the features it is shown are those
that channel justifies: never STARTTLS (XEP-0206 §4), never -PLUS SASL
mechanisms (the core's TLS channel is not the client's), and PLAIN only
when the client's own connection is encrypted.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import endpoints, ssl
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from components.bosh.framing import Downstream, qualify
from jabberd import proxyprotocol
from jabberd.jid import InvalidJID, prepDomain
from jabberd.xmlstream import (
    NS_CLIENT,
    NS_STREAMS,
    StreamError,
    StreamParser,
    serialize,
    serializeStreamElement,
)

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"

# The core is trusted; these only bound a misbehaving one.
_CORE_STANZA_LIMIT = 16 * 1024 * 1024
_CORE_DEPTH_LIMIT = 1000


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


class CoreConnection(Protocol):
    """The TCP connection to the core's c2s port, for one L{CoreUpstream}."""

    def __init__(self, upstream: CoreUpstream) -> None:
        self.upstream = upstream

    def connectionMade(self) -> None:
        if self.upstream.manager.proxyProtocol:
            # Before anything else: the server's haproxy: listener reads it first.
            address = self.upstream.downstream.peerAddress
            self.transport.write(proxyprotocol.v1Header(address, self.transport.getPeer()))
        self.upstream.connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.upstream.coreData(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.upstream.coreLost()


class CoreUpstream:
    """One web session relayed to the core over its own c2s stream (an L{Upstream})."""

    log = Logger()

    def __init__(self, manager: CoreLink, downstream: Downstream) -> None:
        self.manager = manager
        self.downstream = downstream
        self.connection: CoreConnection | None = None
        self.parser: StreamParser | None = None
        self.attrs: dict[str, str] = {}
        self.host = ""
        self.tls = False
        self.negotiatingTLS = False
        self.ready = False  # the client sees the stream from here on
        self.queue: list[bytes] = []
        self.closing = False
        self.done = False
        self._closeCall: Any = None
        self._header: dict[str, str] = {}

    # -- Upstream (from the transport) ----------------------------------------

    def open(self, attrs: dict[str, str]) -> None:
        if self.done:
            return
        self.attrs = dict(attrs)
        self.host = attrs.get("to", "")
        if self.connection is None:
            try:
                host = prepDomain(self.host)
            except InvalidJID:
                host = ""
            if host not in self.manager.hosts:
                # Refused here, as the core would: no connection for a domain not served.
                self.fail("host-unknown", f"this server does not serve {self.host}" if self.host else "'to' is required")
                return
            d = self.manager.connect(self)
            d.addErrback(self._connectFailed)
        else:
            # XEP-0206 §5: a restart request is a new stream on the same connection.
            self._sendHeader()

    def receive(self, element: domish.Element) -> None:
        self._write(serialize(element))

    def close(self) -> None:
        if self.done:
            return
        self.closing = True
        self._write(b"</stream:stream>")
        if self.connection is None:
            self._finished()
        else:
            # The core answers with its own footer; do not wait for ever.
            self._closeCall = self.manager.reactor.callLater(self.manager.closeTimeout, self._hangUp)

    def abort(self) -> None:
        if self.done:
            return
        self.closing = True
        self._write(b"</stream:stream>")
        self._hangUp()

    def fail(self, condition: str, text: str | None = None) -> None:
        if not self.done:
            self.downstream.streamFailed(condition, text)
            self.abort()

    # -- the core connection -----------------------------------------------------

    def connected(self, connection: CoreConnection) -> None:
        self.connection = connection
        if self.done:
            connection.transport.loseConnection()
            return
        self._sendHeader()

    def _connectFailed(self, failure: Failure) -> None:
        self.log.warn("cannot reach the XMPP server: {error}", error=failure.getErrorMessage())
        self._failed("the XMPP server cannot be reached")

    def _sendHeader(self) -> None:
        self.parser = StreamParser(self._started, self._element, self._ended, _CORE_STANZA_LIMIT, _CORE_DEPTH_LIMIT)
        parts = [
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
            " xmlns:stream='http://etherx.jabber.org/streams'"
        ]
        for key in ("to", "from", "version", "xml:lang"):
            if self.attrs.get(key):
                parts.append(f" {key}='{_attr(self.attrs[key])}'")
        parts.append(">")
        self._send("".join(parts).encode("utf-8"))

    def _send(self, data: bytes) -> None:
        if self.connection is not None and not self.done:
            self.connection.transport.write(data)

    def _write(self, data: bytes) -> None:
        """Client data: held until the stream under it is ready."""
        if self.ready:
            self._send(data)
        elif not self.done:
            self.queue.append(data)

    def coreData(self, data: bytes) -> None:
        if self.parser is None or self.done:
            return
        try:
            self.parser.feed(data)
        except StreamError as e:
            self.log.warn("the XMPP server sent a bad stream: {condition}", condition=e.condition)
            self._failed("the XMPP server's stream could not be read")

    def coreLost(self) -> None:
        if self._closeCall is not None and self._closeCall.active():
            self._closeCall.cancel()
        self._closeCall = None
        if not self.done:
            if self.closing:
                self._finished()
            else:
                self._failed("lost the connection to the XMPP server")

    def _started(self, attrs: dict) -> None:
        header = {k: v for k, v in attrs.items() if isinstance(k, str) and not k.startswith("__")}
        language = attrs.get(("http://www.w3.org/XML/1998/namespace", "lang"))
        if language:
            header["xml:lang"] = language
        self._header = header
        if self.negotiatingTLS or (self.manager.starttls and not self.tls):
            return  # not the client's stream yet
        self.downstream.streamOpened(header)

    def _element(self, element: domish.Element) -> None:
        if self.manager.starttls and not self.tls:
            self._negotiateTLS(element)
            return
        if element.uri == NS_STREAMS and element.name == "features":
            self._filterFeatures(element)
            self.downstream.send(qualify(serializeStreamElement(element)))
            if not self.ready:
                self.ready = True
                queued, self.queue = self.queue, []
                for data in queued:
                    self._send(data)
        elif element.uri == NS_STREAMS:
            self.downstream.send(qualify(serializeStreamElement(element)))
        else:
            self.downstream.send(qualify(serialize(element, NS_CLIENT if element.uri == NS_CLIENT else "")))

    def _negotiateTLS(self, element: domish.Element) -> None:
        if element.uri == NS_STREAMS and element.name == "error":
            # The core refused the stream before TLS: relay its reason.
            self.tls = True
            self.downstream.streamOpened(self._header)
            self.downstream.send(qualify(serializeStreamElement(element)))
            return
        if element.uri == NS_STREAMS and element.name == "features" and not self.negotiatingTLS:
            if next(element.elements(NS_TLS, "starttls"), None) is None:
                self._failed("the XMPP server offers no STARTTLS")
                return
            self.negotiatingTLS = True
            self._send(f"<starttls xmlns='{NS_TLS}'/>".encode())
        elif element.uri == NS_TLS and element.name == "proceed" and self.negotiatingTLS:
            assert self.connection is not None
            self.parser.stop()  # type: ignore[union-attr]
            self.connection.transport.startTLS(self.manager.tlsOptions(self.host))
            self.tls = True
            self.negotiatingTLS = False
            self._sendHeader()
        else:
            self._failed("STARTTLS with the XMPP server failed")

    def _filterFeatures(self, features: domish.Element) -> None:
        """Offer the client what its own channel justifies (see the module docstring)."""
        for child in list(features.elements()):
            if child.uri == NS_TLS or child.uri == NS_SASL_CB:
                features.children.remove(child)
            elif child.uri == NS_SASL and child.name == "mechanisms":
                for mechanism in list(child.elements(NS_SASL, "mechanism")):
                    name = str(mechanism).strip()
                    if name.endswith("-PLUS") or (name == "PLAIN" and not self.downstream.secure):
                        child.children.remove(mechanism)

    def _ended(self) -> None:
        self.closing = True
        if not self.done:
            self.done = True
            self.downstream.streamClosed()
        self._hangUp()

    def _failed(self, text: str) -> None:
        if not self.done:
            self.done = True
            self.downstream.streamFailed("remote-connection-failed", text)
        self._hangUp()

    def _finished(self) -> None:
        self.done = True

    def _hangUp(self) -> None:
        self.done = True
        if self._closeCall is not None and self._closeCall.active():
            self._closeCall.cancel()
        self._closeCall = None
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.loseConnection()


class CoreLink:
    """
    Where and how the connection manager reaches the core: a Twisted client
    endpoint, and the TLS trust for its certificate.
    """

    closeTimeout = 5.0

    def __init__(self, reactor: Any, endpoint: str, starttls: bool = True, caFile: str = "", proxyProtocol: bool = False) -> None:
        self.reactor = reactor
        self.endpoint = endpoints.clientFromString(reactor, endpoint)
        self.starttls = starttls
        #: send each web client's address in a PROXY header ([core] proxy_protocol)
        self.proxyProtocol = proxyProtocol
        self._trust = _trustRoot(caFile)
        self.hosts: set[str] = set()

    def connect(self, upstream: CoreUpstream) -> Any:
        return self.endpoint.connect(Factory.forProtocol(lambda: CoreConnection(upstream)))

    def tlsOptions(self, host: str) -> Any:
        """Verify the core's certificate for C{host} (RFC 6125) against the configured trust."""
        return ssl.optionsForClientTLS(host, trustRoot=self._trust)

    def __call__(self, downstream: Downstream) -> CoreUpstream:
        return CoreUpstream(self, downstream)


def _trustRoot(caFile: str) -> Any:
    """The certificates in C{caFile}, or the platform's trust store when it is ""."""
    if not caFile:
        return ssl.platformTrust()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    with open(caFile, "rb") as f:
        certificates = x509.load_pem_x509_certificates(f.read())
    return ssl.trustRootFromCertificates(
        [ssl.Certificate.loadPEM(c.public_bytes(Encoding.PEM)) for c in certificates]
    )
