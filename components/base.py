"""
One component, two ways to run it.

A component is a set of tx_xmpp L{XMPPHandler}s (C{IQHandlerMixin},
C{DiscoHandler}, ...) attached to a parent that gives them an XML stream to
observe and a C{send}.  This module has the two parents:

- L{InProcessComponent}: attached to the core's Router as a registered
  domain.  Stanzas for the domain (and names under it) are dispatched to
  the handlers as they are, without serialising anything; what the
  handlers send goes to C{router.route}.
- L{ExternalComponent}: its own process, connected to a server over
  XEP-0114 (C{jabber:component:accept}), reconnecting with exponential
  backoff when the connection drops or is refused.

Both are tx_xmpp C{StreamManager}s, so C{request()} (iq tracking), the
handler life cycle (C{connectionInitialized}, C{connectionLost}) and the
handlers themselves are the same either way.  Both see stanzas in
C{jabber:client} (L{jabberd.components.toClientNamespace} rewrites what a
component stream delivers) and both offer L{broadcast}, which sends one
stanza to many recipients building it once: in-process a shallow copy per
recipient, over XEP-0114 one serialisation with only the C{to} spliced in.

A component uses nothing of the core but the pure helpers (JIDs, the
namespace rewrite): it speaks XMPP, and keeps its own state.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.application import service
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish, utility
from tx_xmpp import component as txcomponent
from tx_xmpp.subprotocols import StreamManager

from jabberd import jid as J
from jabberd.components import inDomain, toClientNamespace
from jabberd.xmlstream import NS_CLIENT

__all__ = ["ExternalComponent", "InProcessComponent", "copyWithTo"]

STANZAS = frozenset(("message", "presence", "iq"))


def copyWithTo(template: domish.Element, to: str) -> domish.Element:
    """
    A shallow copy of C{template} addressed to C{to}: children shared, list
    and attributes not.  (Built without Element.__init__: this is the
    per-recipient cost of every broadcast.)
    """
    copy = _newElement(domish.Element)
    copy.__dict__.update(template.__dict__)
    attributes = copy.attributes = dict(template.attributes)
    attributes["to"] = to
    copy.children = list(template.children)
    copy.parent = None
    return copy


_newElement = object.__new__


def _escapeAttr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


class _NoFactory:
    """StreamManager wants a factory to hook its bootstraps on; in-process there is none."""

    def addBootstrap(self, event: str, fn: Any) -> None:
        pass


class _LocalStream(utility.EventDispatcher):
    """The 'XML stream' handlers observe and send on when they run inside the server."""

    def __init__(self, domain: str, out: Any) -> None:
        super().__init__()
        self.thisEntity = JID(domain)
        self.otherEntity = None
        self._out = out

    def send(self, obj: Any) -> None:
        if not domish.IElement.providedBy(obj):
            raise TypeError("in-process components send elements, not serialised XML")
        self._out(obj)


class InProcessComponent(StreamManager, service.Service):
    """
    Runs handlers inside the server: the Router's deliver callable for
    C{domain} dispatches to them, their sends go to C{router.route}.
    """

    log = Logger()

    def __init__(self, router: Any, domain: str, handlers: Iterable[Any] = (), reactor: Any = None) -> None:
        StreamManager.__init__(self, _NoFactory(), reactor)
        self.router = router
        self.domain = domain
        for handler in handlers:
            handler.setHandlerParent(self)

    def startService(self) -> None:
        service.Service.startService(self)
        xs = _LocalStream(self.domain, self._outbound)
        self._connected(xs)
        self._authd(xs)
        self.router.registerDomain(self.domain, self.deliver)

    def stopService(self) -> Any:
        if self.router.domains.get(self.domain) == self.deliver:
            self.router.unregisterDomain(self.domain)
        if self.xmlstream is not None:
            self._disconnected(Failure(ConnectionDone()))
        return service.Service.stopService(self)

    def deliver(self, stanza: domish.Element) -> None:
        """A stanza routed to the domain: the handlers' observers see it."""
        xs = self.xmlstream
        if xs is None:
            self.router.bounce(stanza, "service-unavailable")
            return
        xs.dispatch(stanza)

    def _outbound(self, element: domish.Element) -> None:
        sender = element.getAttribute("from")
        if not sender:
            element["from"] = self.domain
        else:
            try:
                host = J.parse(sender).host
            except J.InvalidJID:
                host = ""
            if not inDomain(host, self.domain):
                # What an external component would be disconnected for.
                self.log.error("component {domain} tried to send from {sender}; dropped", domain=self.domain, sender=sender)
                return
        self.router.route(toClientNamespace(element))

    def send(self, obj: Any) -> None:
        # Never queue: in-process there is no "not yet connected" to wait out.
        if self.xmlstream is not None:
            self.xmlstream.send(obj)

    def broadcast(self, template: domish.Element, tos: Iterable[str]) -> None:
        """Send C{template} to each of C{tos}: one shallow copy per recipient."""
        if self.xmlstream is None:
            return
        if not template.getAttribute("from"):
            template["from"] = self.domain
        toClientNamespace(template)
        route = self.router.route
        for to in tos:
            route(copyWithTo(template, to))


class ExternalComponent(txcomponent.Component):
    """
    Runs handlers in their own process, connected to a server over XEP-0114.

    Reconnects after a lost or refused connection with exponential backoff
    (Twisted's C{ReconnectingClientFactory}: C{initialDelay} growing up to
    C{maxDelay} seconds), also when the server refuses the handshake or
    answers C{<conflict/>} because another instance holds the domain.
    """

    log = Logger()

    def __init__(
        self,
        host: str,
        port: int,
        domain: str,
        secret: str,
        handlers: Iterable[Any] = (),
        maxDelay: float = 60.0,
        initialDelay: float = 1.0,
    ) -> None:
        txcomponent.Component.__init__(self, host, port, domain, secret)
        self.domain = domain
        self.factory.maxDelay = maxDelay
        self.factory.initialDelay = initialDelay
        self.factory.delay = initialDelay
        self.factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT, self._streamError)
        for handler in handlers:
            handler.setHandlerParent(self)

    @property
    def connected(self) -> bool:
        """Whether the handshake is done and stanzas flow."""
        return self._initialized

    def _connected(self, xs: Any) -> None:
        # Before anything else sees a stanza: requalify it as jabber:client.
        xs.addObserver("/*", self._normalise, 1000)
        StreamManager._connected(self, xs)

    @staticmethod
    def _normalise(element: domish.Element) -> None:
        if element.name in STANZAS:
            toClientNamespace(element)

    def _authd(self, xs: Any) -> None:
        raw = xs.send

        def send(obj: Any) -> None:
            if domish.IElement.providedBy(obj):
                if not obj.getAttribute("from"):
                    obj["from"] = self.domain
                # jabber:client elements go out unqualified: the stream's
                # default namespace, jabber:component:accept, applies.
                obj = toClientNamespace(obj).toXml(defaultUri=NS_CLIENT)
            raw(obj)

        xs.send = send
        self.factory.resetDelay()
        self.log.info("component {domain} connected to {host}:{port}", domain=self.domain, host=self.host, port=self.port)
        StreamManager._authd(self, xs)

    def _streamError(self, failure: Failure) -> None:
        self.log.warn("component {domain}: the server closed the stream: {error}", domain=self.domain, error=failure.value)

    def initializationFailed(self, reason: Failure) -> None:
        # The connection drops and the factory retries with backoff; the
        # service keeps running (tx_xmpp's default would stop it for good).
        self.log.warn("component {domain}: handshake failed: {reason}", domain=self.domain, reason=reason.value)

    def send(self, obj: Any) -> None:
        # Never queue stanzas for a connection that may come back much later.
        if self._initialized:
            self.xmlstream.send(obj)

    def broadcast(self, template: domish.Element, tos: Iterable[str]) -> None:
        """Send C{template} to each of C{tos}, serialising it once."""
        if not self._initialized:
            return
        if not template.getAttribute("from"):
            template["from"] = self.domain
        template.attributes.pop("to", None)
        text = toClientNamespace(template).toXml(defaultUri=NS_CLIENT)
        head = "<" + template.name
        rest = text[len(head) :]
        write = self.xmlstream.send
        for to in tos:
            write(f"{head} to='{_escapeAttr(to)}'{rest}")

    def _disconnected(self, reason: Any) -> None:
        StreamManager._disconnected(self, reason)
        waiting, self._closing = getattr(self, "_closing", []), []
        for d in waiting:
            if not d.called:
                d.callback(None)

    def stopService(self, timeout: float = 5.0) -> defer.Deferred:
        """
        Stop reconnecting and close the connection; fires once it is closed
        (what was sent last, such as 332 presence, has then left), or after
        C{timeout} seconds.
        """
        self.factory.stopTrying()
        connection = getattr(self, "_connection", None)
        service.Service.stopService(self)
        if connection is None:
            return defer.succeed(None)
        if self.xmlstream is None:
            connection.disconnect()
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._closing = getattr(self, "_closing", []) + [d]
        self.xmlstream.send("</stream:stream>")
        connection.disconnect()
        from twisted.internet import reactor

        call = reactor.callLater(timeout, lambda: d.called or d.callback(None))
        return d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
