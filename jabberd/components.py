"""
External components (XEP-0114): the C{jabber:component:accept} listener.

A component opens a stream whose C{to} names the domain it wants to serve,
proves that it knows that domain's secret with C{<handshake/>}
(C{sha1(stream id + secret)} in lowercase hex, compared in constant time),
and from then on the Router hands it every stanza addressed to its domain or
to a name under it, while the component may send stanzas from any JID in its
domain and from no other (C{<invalid-from/>} otherwise).

Namespaces.  Stanzas on a component stream are qualified by
C{jabber:component:accept}; inside the server every stanza is
C{jabber:client}.  L{toClientNamespace} rewrites an element (and its
children in that namespace) on the way in; on the way out L{serialize}'s
default C{defaultUri} leaves C{jabber:client} elements unqualified, which the
component reads as its stream's default namespace.

While a configured component is not connected its domain stays registered
on the Router with a bouncer, so a stanza to it gets service-unavailable
(the component exists but is down) rather than remote-server-not-found, and
the server's disco#items keeps listing it (as Prosody does).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from jabberd import jid as J
from jabberd.xmlstream import (
    NS_CLIENT,
    NS_COMPONENT,
    NS_SERVER,
    NS_STREAMS,
    STANZA_NAMES,
    StreamError,
    StreamParser,
    serialize,
    serializeStreamElement,
    streamErrorElement,
)

__all__ = [
    "ComponentListener",
    "ComponentStream",
    "ComponentStreamFactory",
    "handshakeDigest",
    "inDomain",
    "toClientNamespace",
]

#: Deepest XML nesting a component may send.
MAX_DEPTH = 64


def handshakeDigest(streamID: str, secret: str) -> str:
    """The XEP-0114 handshake value: lowercase hex SHA-1 of stream id + secret."""
    return hashlib.sha1((streamID + secret).encode("utf-8")).hexdigest()


def inDomain(host: str, domain: str) -> bool:
    """Whether C{host} is C{domain} or a name under it (rooms at muc.example.org)."""
    return host == domain or host.endswith("." + domain)


_FOREIGN = (NS_COMPONENT, NS_SERVER, None, "")


def toClientNamespace(element: domish.Element, _from: tuple = _FOREIGN) -> domish.Element:
    """
    Requalify C{element} and its children from the component namespace to C{jabber:client}.

    Only elements in C{jabber:component:accept} (or in no namespace, as
    some libraries build them) are rewritten; a payload in its own
    namespace, and anything inside it, is left alone.  Returns C{element}.
    """
    if element.uri in _from:
        element.uri = NS_CLIENT
        if element.defaultUri in _from:
            element.defaultUri = NS_CLIENT
        for child in element.children:
            if isinstance(child, domish.Element) and child.uri in _from:
                toClientNamespace(child, _from)
    return element


class ComponentStream(Protocol):
    """One component connection: header, handshake, then stanzas both ways."""

    log = Logger()

    def __init__(self, listener: "ComponentListener") -> None:
        self.listener = listener
        self.domain: str | None = None
        self.streamID = ""
        self.authenticated = False
        self._parser: StreamParser | None = None
        self._headerSent = False
        self._closing = False
        self._timer: Any = None

    # -- connection -----------------------------------------------------------

    def connectionMade(self) -> None:
        self.listener.streams.add(self)
        self._parser = StreamParser(
            self._streamStarted, self._elementReceived, self._streamEnded,
            self.listener.stanzaSizeLimit, MAX_DEPTH,
        )
        self._timer = self.listener.reactor.callLater(self.listener.handshakeTimeout, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._parser is None:
            return
        try:
            self._parser.feed(data)
        except StreamError as e:
            self.terminate(e.condition, e.text)
        except Exception:
            self.log.failure("unexpected error handling component data")
            self.terminate("internal-server-error")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closing = True
        self._parser = None
        self._cancelTimer()
        if self.authenticated:
            self.authenticated = False
            self.listener.disconnected(self)
        self.listener.streamClosed(self)

    def _timedOut(self) -> None:
        self._timer = None
        if not self.authenticated:
            self.terminate("connection-timeout", "no handshake in time")

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- stream -----------------------------------------------------------------

    def _sendHeader(self) -> None:
        if self._headerSent:
            return
        self._headerSent = True
        if not self.streamID:
            self.streamID = os.urandom(12).hex()
        parts = [
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
            f" xmlns='{NS_COMPONENT}' id='{self.streamID}'"
        ]
        if self.domain:
            parts.append(f" from='{_escapeAttr(self.domain)}'")
        parts.append(">")
        self.transport.write("".join(parts).encode("utf-8"))

    def _streamStarted(self, attrs: dict) -> None:
        if attrs["__qname__"] != (NS_STREAMS, "stream"):
            self.terminate("invalid-namespace", "not an XMPP stream")
            return
        if attrs["__default_ns__"] != NS_COMPONENT:
            self.terminate("invalid-namespace", f"this port takes {NS_COMPONENT} streams")
            return
        to = attrs.get("to")
        try:
            domain = J.prepDomain(to) if to else None
        except J.InvalidJID:
            domain = None
        if domain is None:
            self.terminate("improper-addressing", "the stream header must name the component's domain")
            return
        if domain not in self.listener.secrets:
            self.terminate("host-unknown", f"no component {domain} is configured")
            return
        self.domain = domain
        if domain in self.listener.connected:
            self.terminate("conflict", f"{domain} is already connected")
            return
        self._sendHeader()

    def _elementReceived(self, element: domish.Element) -> None:
        if not self.authenticated:
            self._handshake(element)
        elif element.name in STANZA_NAMES and element.uri in (NS_COMPONENT, NS_CLIENT):
            self._stanza(element)
        else:
            self.terminate("unsupported-stanza-type", f"<{element.name}/> is not a stanza")

    def _handshake(self, element: domish.Element) -> None:
        if element.name != "handshake" or element.uri != NS_COMPONENT:
            self.terminate("not-authorized", "send <handshake/> first")
            return
        assert self.domain is not None
        expected = handshakeDigest(self.streamID, self.listener.secrets[self.domain])
        given = str(element).strip().lower()
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            self.terminate("not-authorized", "wrong handshake")
            return
        if self.domain in self.listener.connected:
            self.terminate("conflict", f"{self.domain} is already connected")
            return
        self._cancelTimer()
        self.authenticated = True
        self.transport.write(b"<handshake/>")
        self.listener.authenticated(self)

    def _stanza(self, stanza: domish.Element) -> None:
        assert self.domain is not None
        sender, to = stanza.getAttribute("from"), stanza.getAttribute("to")
        if not sender or not to:
            self.terminate("improper-addressing", "a component's stanzas need 'from' and 'to'")
            return
        try:
            fromJID = J.parse(sender)
        except J.InvalidJID:
            self.terminate("invalid-from", "malformed 'from'")
            return
        if not inDomain(fromJID.host, self.domain):
            self.terminate("invalid-from", f"{self.domain} may not send from {fromJID.host}")
            return
        self.listener.route(toClientNamespace(stanza))

    def _streamEnded(self) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------

    def deliver(self, stanza: domish.Element) -> None:
        """Send a routed stanza to the component (the Router's deliver callable)."""
        if self.authenticated and not self._closing:
            # The stanza's own namespace (jabber:client, or jabber:server from
            # federation) goes out unqualified: the component reads it as its
            # stream's default, jabber:component:accept.
            uri = stanza.uri if stanza.uri in (NS_CLIENT, NS_SERVER) else NS_CLIENT
            self.transport.write(serialize(stanza, uri))

    def terminate(self, condition: str, text: str | None = None) -> None:
        """Send a stream error (after our header, if not sent yet) and close."""
        if self._closing:
            return
        self._sendHeader()
        self.transport.write(serializeStreamElement(streamErrorElement(condition, text), NS_COMPONENT))
        self.close()

    def close(self) -> None:
        """Send the closing tag and drop the connection; the domain bounces from now on."""
        if self._closing:
            return
        if self.authenticated:
            # Unroute now, not when TCP says goodbye: nothing more can be delivered.
            self.authenticated = False
            self.listener.disconnected(self)
        self._closing = True
        self._cancelTimer()
        if self._parser is not None:
            self._parser.stop()
        self._sendHeader()
        self.transport.write(b"</stream:stream>")
        self.transport.loseConnection()


def _escapeAttr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


class ComponentStreamFactory(Factory):
    """Makes a L{ComponentStream} per connection."""

    def __init__(self, listener: "ComponentListener") -> None:
        self.listener = listener

    def buildProtocol(self, addr: Any) -> ComponentStream:
        return ComponentStream(self.listener)


class ComponentListener:
    """
    The server's side of XEP-0114: which component domains exist, which are
    connected, and the routing of their domains.

    @ivar connected: domain -> the authenticated L{ComponentStream}.
    """

    log = Logger()

    def __init__(
        self,
        router: Any,
        secrets: dict[str, str],
        reactor: Any,
        stanzaSizeLimit: int = 1048576,
        handshakeTimeout: float = 30.0,
        onChange: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.router = router
        self.secrets = dict(secrets)
        self.reactor = reactor
        self.stanzaSizeLimit = stanzaSizeLimit
        self.handshakeTimeout = handshakeTimeout
        self.onChange = onChange
        self.connected: dict[str, ComponentStream] = {}
        self.streams: set[ComponentStream] = set()
        self._drained: list[defer.Deferred] = []

    def factory(self) -> ComponentStreamFactory:
        return ComponentStreamFactory(self)

    def start(self) -> None:
        """Register a bouncer for every configured domain: down until it connects."""
        for domain in self.secrets:
            self._bounceFor(domain)

    def _bounceFor(self, domain: str) -> None:
        router = self.router

        def bounce(stanza: domish.Element) -> None:
            router.bounce(stanza, "service-unavailable", f"{domain} is not connected")

        router.registerDomain(domain, bounce)

    def route(self, stanza: domish.Element) -> None:
        self.router.route(stanza)

    def authenticated(self, stream: ComponentStream) -> None:
        assert stream.domain is not None
        self.connected[stream.domain] = stream
        self.router.registerDomain(stream.domain, stream.deliver)
        self.log.info("component {domain} connected", domain=stream.domain)
        if self.onChange is not None:
            self.onChange(stream.domain, True)

    def disconnected(self, stream: ComponentStream) -> None:
        domain = stream.domain
        if domain is None or self.connected.get(domain) is not stream:
            return
        del self.connected[domain]
        self._bounceFor(domain)
        self.log.info("component {domain} disconnected", domain=domain)
        if self.onChange is not None:
            self.onChange(domain, False)

    def streamClosed(self, stream: ComponentStream) -> None:
        self.streams.discard(stream)
        if not self.streams:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def stop(self, timeout: float = 5.0) -> defer.Deferred:
        """
        End every component stream with system-shutdown and unregister the
        domains; fires once the connections are closed (or cut after C{timeout}).
        """
        for stream in list(self.streams):
            stream.terminate("system-shutdown", "the server is shutting down")
        for domain in self.secrets:
            if self.router.domains.get(domain) is not None:
                self.router.unregisterDomain(domain)
        if not self.streams:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drained.append(d)

        def abort() -> None:
            for stream in list(self.streams):
                stream.transport.abortConnection()

        call = self.reactor.callLater(timeout, abort)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d
