"""
L{Client}: one XMPP client session, from connecting to closing.

It wires the pieces together: the stream (L{jabberd.client.stream}), the
connection logic (L{jabberd.client.connect}), and one handler per protocol
(roster, presence, messages, disco, caps, ping, vCard), all on a tx_xmpp
StreamManager so any third-party XMPPHandler can be added too.

    client = Client("alice@example.com/laptop", password, ClientOptions(trust="ca.pem"))
    await client.connect()
    client.messages.send("bob@example.com", "hi")
    await client.close()
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT
from tx_xmpp.generic import Request
from tx_xmpp.subprotocols import StreamManager, XMPPHandler

from jabberd import jid as J
from jabberd.client import srv
from jabberd.client.caps import NS_CAPS, Caps
from jabberd.client.connect import Dialer, asClientError, openStream
from jabberd.client.disco import Disco
from jabberd.client.errors import ConnectionFailed, StreamError
from jabberd.client.messages import Messages
from jabberd.client.ping import Ping
from jabberd.client.presence import PresenceHandler
from jabberd.client.roster import Roster
from jabberd.client.stream import ClientAuthenticator, ClientStreamFactory, ClientXmlStream
from jabberd.client.tls import ClientTLS
from jabberd.client.vcard import VCard

__all__ = ["CAPS_NODE", "Client", "ClientOptions", "NS_CLIENT"]

NS_CLIENT = "jabber:client"

#: Our XEP-0115 node: a URI naming this software.
CAPS_NODE = "https://pypi.org/project/jabberd/#client"

log = Logger()


@dataclass
class ClientOptions:
    """
    How to reach and trust the server, and how to present ourselves.

    @ivar host: connect here instead of resolving SRV records for the domain.
    @ivar port: with C{host}; default 5222 (5223 with direct TLS).
    @ivar directTLS: True: TLS from the first byte (XEP-0368); False:
        STARTTLS; None: whatever the SRV records say.
    @ivar trust: PEM file of certificates to trust instead of the system CAs.
    @ivar insecure: accept any server certificate (test servers only).
    @ivar certificate: client certificate (PEM, with key unless C{key}) for EXTERNAL.
    @ivar mechanisms: the SASL mechanisms allowed, in order of preference;
        None: the strongest both sides support.
    @ivar compression: negotiate zlib (XEP-0138) when offered; off by
        default because compression under TLS leaks (XEP-0138 §9).
    @ivar resolver: a Twisted IResolver for SRV (and target address) lookups.
    @ivar timeout: seconds for connecting and negotiating.
    @ivar requestTimeout: seconds to wait for an IQ answer (None: forever).
    @ivar tlsMinVersion: oldest TLS version accepted ("1.2" or "1.3").
    @ivar tlsMaxVersion: newest TLS version offered; only tests have a
        reason to cap it (e.g. "1.2" to exercise tls-unique).
    @ivar identityType: our disco identity type: "pc", or "bot" for tools.
    @ivar name: our disco identity name.
    @ivar capsNode: our XEP-0115 node (a URI naming the software).
    @ivar discoFeatures: extra features to announce in disco#info (for
        XMPPHandlers added to C{client.manager} by the application).
    """

    host: str | None = None
    port: int | None = None
    directTLS: bool | None = None
    trust: str | None = None
    insecure: bool = False
    certificate: str | None = None
    key: str | None = None
    mechanisms: list[str] | None = None
    compression: bool = False
    resolver: Any = None
    timeout: float = 30.0
    requestTimeout: float | None = 30.0
    tlsMinVersion: str = "1.2"
    tlsMaxVersion: str | None = None
    identityType: str = "pc"
    name: str = "jabberd-client"
    capsNode: str = CAPS_NODE
    discoFeatures: list[str] = field(default_factory=list)


class _RawRequest(Request):
    """A ready-made IQ element as a tx_xmpp request (for L{StreamManager.request})."""

    stanzaKind = "iq"

    def __init__(self, element: domish.Element, timeout: float | None) -> None:
        super().__init__()
        self.element = element
        self.stanzaType = element.getAttribute("type")
        self.stanzaID = element.getAttribute("id")
        to = element.getAttribute("to")
        self.recipient = J.parse(to) if to else None
        self.timeout = timeout

    def toElement(self) -> domish.Element:
        if self.stanzaID:
            self.element["id"] = self.stanzaID
        return self.element


class _Manager(StreamManager):
    """
    The stream manager, with two guards tx_xmpp leaves out: IQ ids are
    unpredictable, and an IQ answer counts only if it comes from whom we
    asked (RFC 6120 §8.1.2.1 / §10.1), so no third party can forge a
    roster or disco result by guessing an id.
    """

    def __init__(self, factory: ClientStreamFactory, reactor: Any) -> None:
        super().__init__(factory, reactor)
        self.jid: JID | None = None
        self.streamError: StreamError | None = None
        self._askedOf: dict[str, JID | None] = {}

    def request(self, request: Any) -> defer.Deferred:
        if not request.stanzaID:
            request.stanzaID = "c" + secrets.token_hex(8)
        stanzaID = request.stanzaID
        self._askedOf[stanzaID] = request.recipient

        def forget(result: Any) -> Any:
            self._askedOf.pop(stanzaID, None)
            return result

        return super().request(request).addBoth(forget)

    def _onIQResponse(self, iq: domish.Element) -> None:
        stanzaID = iq.getAttribute("id")
        if stanzaID not in self._iqDeferreds:
            return
        if not self._fromExpected(iq.getAttribute("from"), self._askedOf.get(stanzaID)):
            log.warn("ignoring an IQ answer from {sender} to a request sent elsewhere", sender=iq.getAttribute("from"))
            return
        super()._onIQResponse(iq)

    def _fromExpected(self, sender: str | None, asked: JID | None) -> bool:
        own = self.jid
        if own is None:
            return False
        ownBare, ownDomain = own.userhost(), own.host
        try:
            got = J.parse(sender).full() if sender else None
        except J.InvalidJID:
            return False
        if asked is None or asked.full() in (ownBare, ownDomain):
            # Asked our own account or server: the answer comes from it (or
            # carries no 'from', meaning the server answered for us).
            return got in (None, ownBare, own.full(), ownDomain)
        return got == asked.full()

    def _disconnected(self, reason: Failure) -> None:
        if self.streamError is not None:
            reason = Failure(self.streamError)
        super()._disconnected(reason)


class _IQFallback(XMPPHandler):
    """Answer what no handler took with service-unavailable (RFC 6120 §8.4)."""

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='get']", self._fallback, -1)
        self.xmlstream.addObserver("/iq[@type='set']", self._fallback, -1)

    def _fallback(self, iq: domish.Element) -> None:
        if getattr(iq, "handled", False):
            return
        iq.handled = True
        self.send(jerror.StanzaError("service-unavailable").toResponse(iq))


class Client:
    """
    One client session. Not reusable: make a new Client to reconnect.

    @ivar roster: L{Roster} (RFC 6121 §2)
    @ivar presence: L{PresenceHandler} (RFC 6121 §3-§4, subscriptions)
    @ivar messages: L{Messages} (RFC 6121 §5)
    @ivar disco: L{Disco} (XEP-0030)
    @ivar caps: L{Caps} (XEP-0115)
    @ivar ping: L{Ping} (XEP-0199)
    @ivar vcard: L{VCard} (XEP-0054)
    @ivar disconnected: fires when the stream ends after connecting: with
        None after L{close}, else with the exception that ended it
        (L{StreamError}, L{ConnectionFailed}); a value, not a failure, so
        that a program not watching it gets no "unhandled error" noise.
    """

    def __init__(self, jid: JID | str, password: str | None, options: ClientOptions | None = None, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.reactor = reactor
        self.options = options or ClientOptions()
        self.requestedJID = J.parse(jid) if isinstance(jid, str) else jid
        if self.requestedJID.user is None and password is not None:
            raise ValueError("a JID with a localpart is needed to log in with a password")
        if password is None and not self.options.certificate:
            raise ValueError("give a password, or a client certificate for SASL EXTERNAL")
        domain = self.requestedJID.host
        o = self.options
        tlsArgs = dict(trust=o.trust, insecure=o.insecure, certificate=o.certificate, key=o.key, minVersion=o.tlsMinVersion, maxVersion=o.tlsMaxVersion)
        self._startTLSOptions = ClientTLS(domain, **tlsArgs)
        self._directTLSOptions = ClientTLS(domain, alpn=["xmpp-client"], **tlsArgs)
        self.authenticator = ClientAuthenticator(
            self.requestedJID,
            password,
            self._startTLSOptions,
            mechanisms=o.mechanisms,
            compression=o.compression,
            haveClientCertificate=bool(o.certificate),
        )
        self.factory = ClientStreamFactory(self.authenticator)
        self.manager = _Manager(self.factory, reactor)
        self.manager.timeout = o.requestTimeout
        self.factory.addBootstrap(STREAM_ERROR_EVENT, self._onStreamError)
        self.factory.addBootstrap(STREAM_END_EVENT, self._onStreamEnd)

        self.disco = Disco(self, "client", o.identityType, o.name)
        self.caps = Caps(self.disco, o.capsNode)
        self.roster = Roster(self)
        self.presence = PresenceHandler(self)
        self.messages = Messages(self)
        self.ping = Ping(self)
        self.vcard = VCard(self)
        self.disco.addFeature(NS_CAPS)
        for feature in o.discoFeatures:
            self.disco.addFeature(feature)
        for handler in (self.disco, self.roster, self.presence, self.messages, self.ping, _IQFallback()):
            handler.setHandlerParent(self.manager)

        self.xmlstream: ClientXmlStream | None = None
        self.features: dict[tuple[str, str], domish.Element] = {}
        self.disconnected: defer.Deferred = defer.Deferred()
        self._observers: list[Callable[[domish.Element], Any]] = []
        self._closing = False
        self._connected = False
        self._endWaiters: list[defer.Deferred] = []

    # -- state -----------------------------------------------------------------

    @property
    def jid(self) -> JID:
        """Our full JID: the one the server bound once connected."""
        return self.manager.jid or self.requestedJID

    @property
    def mechanism(self) -> str | None:
        """The SASL mechanism used to log in."""
        return self.authenticator.mechanism

    @property
    def compressed(self) -> bool:
        """Whether XEP-0138 compression is on for this stream."""
        return self.xmlstream is not None and self.xmlstream.compressed

    @property
    def connected(self) -> bool:
        return self._connected

    # -- connecting --------------------------------------------------------------

    async def targets(self) -> list[srv.Target]:
        """Where to connect: the configured host, or the domain's SRV records."""
        o = self.options
        if o.host:
            direct = bool(o.directTLS)
            return [srv.Target(o.host, o.port or (srv.DIRECT_TLS_PORT if direct else srv.STARTTLS_PORT), direct)]
        return await srv.resolve(self.requestedJID.host, o.resolver, o.directTLS)

    async def connect(self) -> Client:
        """
        Connect, secure, authenticate and bind.

        @raise ConnectionFailed: unreachable, timed out, or closed early.
        @raise TLSFailed: the certificate was not accepted or TLS broke.
        @raise AuthenticationFailed: credentials refused, or the server
            failed to prove itself (SCRAM) or a downgrade was detected.
        @raise StreamError: the server ended the stream with an error.
        @raise StanzaError: the server refused the resource binding.
        """
        if self._connected or self.xmlstream is not None:
            raise RuntimeError("a Client connects once; make a new one to reconnect")
        o = self.options
        dialer = Dialer(self.reactor, self._directTLSOptions, o.resolver, o.timeout)
        xs = await openStream(self.factory, self.authenticator, await self.targets(), dialer, o.timeout)
        self.xmlstream = xs
        self.features = dict(xs.features)
        self.manager.jid = self.authenticator.jid
        self._connected = True
        xs.addObserver("/*", self._dispatchStanza, 100)
        return self

    # -- sending -----------------------------------------------------------------

    def send(self, element: domish.Element | str) -> None:
        """Send a stanza (or raw XML) as is."""
        if not self._connected or self.xmlstream is None:
            raise ConnectionFailed("not connected")
        self.manager.send(element)

    def request(self, iq: domish.Element, timeout: float | None = None) -> defer.Deferred:
        """
        Send an IQ get/set and fire with the result C{<iq/>}.

        Errbacks with L{StanzaError} for an error reply, with the stream's
        failure if it ends first, or with a timeout.
        """
        if not self._connected:
            return defer.fail(ConnectionFailed("not connected"))
        return self.manager.request(_RawRequest(iq, timeout if timeout is not None else self.manager.timeout))

    def addObserver(self, observer: Callable[[domish.Element], Any]) -> None:
        """Call C{observer} with every incoming stanza, before any handler sees it."""
        self._observers.append(observer)

    def removeObserver(self, observer: Callable[[domish.Element], Any]) -> None:
        self._observers.remove(observer)

    def _dispatchStanza(self, element: domish.Element) -> None:
        if element.uri != NS_CLIENT or element.name not in ("message", "presence", "iq"):
            return
        for observer in list(self._observers):
            try:
                observer(element)
            except Exception:
                log.failure("stanza observer failed")

    # -- ending ------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> defer.Deferred:
        """
        Close the stream (RFC 6120 §4.4): send our end tag and wait for the
        server's, so everything we sent before has been read; after
        C{timeout} seconds the connection is dropped anyway.
        """
        if not self._connected or self.xmlstream is None or self._closing:
            return defer.succeed(None) if not self._connected else self._whenDisconnected()
        self._closing = True
        xs = self.xmlstream
        xs.sendFooter()
        timer = self.reactor.callLater(timeout, lambda: xs.transport and xs.transport.abortConnection())
        d = self._whenDisconnected()

        def stop(result: Any) -> None:
            if timer.active():
                timer.cancel()
            return None

        return d.addBoth(stop)

    def _whenDisconnected(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self._endWaiters.append(d)
        return d

    def _onStreamError(self, failure: Failure) -> None:
        error = asClientError(failure)
        if isinstance(error, StreamError):
            self.manager.streamError = error

    def _onStreamEnd(self, reason: Failure) -> None:
        if not self._connected:
            return
        self._connected = False
        why: Exception | None
        if self.manager.streamError is not None:
            why = self.manager.streamError
        elif self._closing:
            why = None
        else:
            why = ConnectionFailed(f"connection lost: {reason.getErrorMessage()}")
        self.disconnected.callback(why)
        for waiter in self._endWaiters:
            waiter.callback(None)
        self._endWaiters = []


def connect(jid: JID | str, password: str | None, options: ClientOptions | None = None, reactor: Any = None, **kwargs: Any) -> defer.Deferred:
    """C{Client(jid, password, options).connect()} as a Deferred; keyword arguments fill ClientOptions."""
    if kwargs:
        options = ClientOptions(**{**(vars(options) if options else {}), **kwargs})
    return defer.ensureDeferred(Client(jid, password, options, reactor).connect())
