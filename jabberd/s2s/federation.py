"""
Federation: what outlives one server stream.

L{Federation.remote} is the router's exit for every stanza to a domain
that is not ours.  Each remote domain gets a L{Route}: a bounded queue, the
one outgoing stream to that domain (several of our domains multiplexed on
it with dialback), and the connecting (static route, SRV, A/AAAA, one
address after the other).  A stanza waits in the queue until its domain
pair is authenticated; if that does not happen, it goes back to its sender
as an error (remote-server-not-found when the peer cannot be found or
reached, remote-server-timeout when it was found but the stream could not
be set up in time), never silently dropped.  Idle streams close; the next
stanza opens a new one.

Dialback verification (XEP-0220 step 3) also goes through the route: the
receiving side (an L{InboundStream}) asks L{Federation.verifyDialback},
which sends C{<db:verify/>} on the outgoing stream to the claimed domain,
opening it if needed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, endpoints
from twisted.internet import error as ierror
from twisted.internet.interfaces import IDelayedCall, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.words.xish import domish
from zope.interface import implementer

from jabberd import jid as J
from jabberd import tls
from jabberd.s2s import resolve
from jabberd.s2s.certs import TrustStore
from jabberd.s2s.dialback import Keys
from jabberd.s2s.stream import InboundStream, OutboundStream, ServerStream

__all__ = ["Federation", "Route"]

log = Logger()

#: the error texts a sender sees
_TEXTS = {
    "remote-server-not-found": "{domain} cannot be found or reached",
    "remote-server-timeout": "no authenticated connection to {domain} could be set up in time",
    "resource-constraint": "too many stanzas are waiting for the connection to {domain}",
    "system-shutdown": "the server is shutting down",
}


def _acceptAny(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
    """Ask for the peer's certificate, take whatever comes: L{certs} judges it after the handshake."""
    return True


class S2SServerTLS(tls.ServerTLS):
    """
    The hosts' server contexts for s2s: the same certificates and settings
    as c2s, but asking the peer for its certificate without letting OpenSSL
    judge it, and without session resumption (each connection's
    certificate is checked anew, with its chain).
    """

    def _makeContext(self, host: str, certPath: str, keyPath: str | None, minVersion: int, ciphers: str, clientCA: str | None) -> SSL.Context:
        ctx = super()._makeContext(host, certPath, keyPath, minVersion, ciphers, None)
        ctx.set_verify(SSL.VERIFY_PEER, _acceptAny)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.set_options(SSL.OP_NO_TICKET)
        return ctx


@implementer(IOpenSSLClientConnectionCreator)
class _ClientTLS:
    """Client side TLS to a peer: our certificate, SNI, and ALPN for direct TLS (XEP-0368)."""

    def __init__(self, context: SSL.Context, serverName: str, alpn: bool) -> None:
        self.context = context
        self.serverName = serverName
        self.alpn = alpn

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        conn = SSL.Connection(self.context, None)
        conn.set_tlsext_host_name(tls._aLabel(self.serverName).encode("ascii"))
        if self.alpn:
            conn.set_alpn_protos([b"xmpp-server"])
        conn.set_connect_state()
        return conn


class _OutboundFactory(Factory):
    def __init__(self, fed: Federation, route: Route, local: str, directTLS: bool) -> None:
        self.fed, self.route, self.local, self.directTLS = fed, route, local, directTLS

    def buildProtocol(self, addr: Any) -> OutboundStream:
        stream = OutboundStream(self.fed, self.route, self.local, self.directTLS)
        stream.factory = self
        return stream


class InboundFactory(Factory):
    """Makes an L{InboundStream} per connection to the s2s listener."""

    def __init__(self, fed: Federation, directTLS: bool = False) -> None:
        self.fed = fed
        self.directTLS = directTLS

    def buildProtocol(self, addr: Any) -> InboundStream:
        stream = InboundStream(self.fed, self.directTLS)
        stream.factory = self
        return stream


class Route:
    """One remote domain: its queue, its outgoing stream, and getting one."""

    def __init__(self, fed: Federation, domain: str) -> None:
        self.fed = fed
        self.domain = domain
        self.queue: deque[tuple[float, str, domish.Element]] = deque()
        self.stream: OutboundStream | None = None
        self.connecting = False
        self.wanted: set[str] = set()  # our domains that have something to send
        self.verifies: list[tuple[str, str, str, str, defer.Deferred]] = []
        self.failure: str | None = None
        self._expiry: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<Route to {self.domain}: {len(self.queue)} queued, stream {self.stream!r}>"

    # -- what the federation asks -----------------------------------------------

    def send(self, stanza: domish.Element, local: str) -> None:
        stream = self.stream
        if stream is not None and stream.ready and not stream.closing and local in stream.authenticated:
            stream.sendStanza(stanza)
            return
        if len(self.queue) >= self.fed.config.queue_max_stanzas:
            self._bounce(stanza, "resource-constraint")
            return
        self.queue.append((self.fed.reactor.seconds(), local, stanza))
        self._scheduleExpiry()
        self.want(local)

    def want(self, local: str) -> None:
        self.wanted.add(local)
        stream = self.stream
        if stream is not None and not stream.closing:
            if stream.ready:
                stream.authenticate(local)
        elif not self.connecting:
            self.connect(local)

    def verify(self, local: str, remote: str, streamId: str, key: str) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        d.addTimeout(self.fed.config.auth_timeout, self.fed.reactor, onTimeoutCancel=lambda result, timeout: "remote-server-timeout")
        stream = self.stream
        if stream is not None and stream.ready and not stream.closing:
            stream.sendVerify(local, remote, streamId, key, d)
        else:
            self.verifies.append((local, remote, streamId, key, d))
            if (stream is None or stream.closing) and not self.connecting:
                self.connect(local)
        return d

    # -- connecting ---------------------------------------------------------------

    def connect(self, local: str) -> None:
        self.connecting = True
        self.failure = None
        d = defer.ensureDeferred(self._connect(local))
        d.addErrback(lambda f: log.failure("connecting to {domain} failed", f, domain=self.domain))

    async def _connect(self, local: str) -> None:
        condition = "remote-server-not-found"
        try:
            targets = await resolve.targets(self.domain, self.fed.getResolver, self.fed.config.routes)
        except resolve.NoService as e:
            log.info("{e}", e=e)
            targets = []
        for target in targets:
            try:
                addresses = await resolve.addresses(target.host, self.fed.getResolver)
            except Exception:
                addresses = []
            for address in addresses:
                if self.fed.stopping:
                    break
                try:
                    await self.fed.connectStream(self, local, address, target.port, target.directTLS)
                except (ierror.TimeoutError, defer.TimeoutError):
                    log.info("connecting to {domain} at {address}:{port} timed out", domain=self.domain, address=address, port=target.port)
                    condition = "remote-server-timeout"
                    continue
                except Exception as e:
                    log.info("cannot connect to {domain} at {address}:{port}: {e}", domain=self.domain, address=address, port=target.port, e=e)
                    continue
                self.connecting = False
                return
        self.connecting = False
        log.info("no connection to {domain}: {condition}", domain=self.domain, condition=condition)
        self.fail(condition)

    # -- events from the stream ---------------------------------------------------

    def attach(self, stream: OutboundStream) -> None:
        self.stream = stream

    def streamReady(self, stream: OutboundStream) -> None:
        """Negotiation is over: ask for every pair that waits, send the waiting verifications."""
        for local in list(self.wanted):
            stream.authenticate(local)
        verifies, self.verifies = self.verifies, []
        for local, remote, streamId, key, d in verifies:
            if not d.called:
                stream.sendVerify(local, remote, streamId, key, d)

    def authenticated(self, stream: OutboundStream, local: str) -> None:
        """C{local} may send now: flush its stanzas, in order."""
        self.wanted.discard(local)
        kept: deque[tuple[float, str, domish.Element]] = deque()
        for item in self.queue:
            if item[1] == local:
                stream.sendStanza(item[2])
            else:
                kept.append(item)
        self.queue = kept

    def authFailed(self, stream: OutboundStream, local: str, condition: str) -> None:
        """The peer refused C{local}: bounce its stanzas."""
        self.wanted.discard(local)
        kept: deque[tuple[float, str, domish.Element]] = deque()
        for item in self.queue:
            if item[1] == local:
                self._bounce(item[2], condition)
            else:
                kept.append(item)
        self.queue = kept

    def streamFailed(self, stream: OutboundStream, condition: str) -> None:
        if stream is self.stream:
            self.failure = condition

    def streamClosed(self, stream: OutboundStream) -> None:
        """The stream is closing or gone: bounce what still waits, forget the route."""
        if stream is not self.stream:
            return
        self.stream = None
        self.fail(self.failure or "remote-server-timeout")

    # -- giving up ----------------------------------------------------------------

    def fail(self, condition: str) -> None:
        """Bounce every queued stanza with C{condition}, fail the verifications, drop the route."""
        if self.fed.routes.get(self.domain) is self:
            del self.fed.routes[self.domain]
        queue, self.queue = self.queue, deque()
        for _, _, stanza in queue:
            self._bounce(stanza, condition)
        verifies, self.verifies = self.verifies, []
        for _, _, _, _, d in verifies:
            if not d.called:
                d.callback("remote-server-not-found" if condition == "remote-server-not-found" else "remote-server-timeout")
        self.wanted.clear()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _bounce(self, stanza: domish.Element, condition: str) -> None:
        self.fed.router.bounce(stanza, condition, _TEXTS.get(condition, "").format(domain=self.domain) or None)

    def _scheduleExpiry(self) -> None:
        if self._expiry is not None or not self.queue:
            return
        due = self.queue[0][0] + self.fed.config.queue_max_age - self.fed.reactor.seconds()
        self._expiry = self.fed.reactor.callLater(max(due, 0), self._expire)

    def _expire(self) -> None:
        """Bounce the stanzas that waited longer than queue_max_age."""
        self._expiry = None
        limit = self.fed.reactor.seconds() - self.fed.config.queue_max_age
        while self.queue and self.queue[0][0] <= limit:
            self._bounce(self.queue.popleft()[2], "remote-server-timeout")
        self._scheduleExpiry()


class Federation:
    """Server-to-server for one XMPPServer: listeners' factories, routes, TLS, dialback keys."""

    log = Logger()

    def __init__(
        self,
        config: Any,
        router: Any,
        certificates: dict[str, tuple[str, str | None]],
        reactor: Any,
        resolver: Any = None,
    ) -> None:
        self.config = config.s2s
        self.maxDepth = config.c2s.max_depth
        self.router = router
        self.reactor = reactor
        self.keys = Keys(self.config.dialback_secret)
        self.trust = TrustStore(self.config.trust)
        self._certificates = certificates
        self._minVersion = config.tls.min_version
        self._ciphers = config.tls.ciphers or tls.DEFAULT_CIPHERS
        self.serverTLS = S2SServerTLS(
            certificates, defaultHost=config.hosts[0], minVersion=self._minVersion, ciphers=config.tls.ciphers
        )
        self.canTLS = True
        self._clientContexts: dict[str, SSL.Context] = {}
        self.routes: dict[str, Route] = {}
        self.streams: set[ServerStream] = set()
        self.stopping = False
        self._resolver = resolver
        self._ownResolver: Any = None
        self._drained: list[defer.Deferred] = []

    def getResolver(self) -> Any:
        """The DNS resolver: the one given, else the system's (made on first use)."""
        if self._resolver is None:
            from twisted.names import client

            self._resolver = self._ownResolver = client.createResolver()
        return self._resolver

    def serves(self, domain: str) -> bool:
        return self.router.serves(domain)

    # -- the router's exit -----------------------------------------------------------

    def remote(self, stanza: domish.Element, domain: str) -> None:
        """Send C{stanza} to the remote C{domain} (C{router.remote})."""
        sender = stanza.getAttribute("from")
        try:
            local = J.parse(sender).host if sender else None
        except J.InvalidJID:
            local = None
        if local is None or not self.serves(local):
            self.log.warn("not sending a stanza from {sender!r} to {domain}: not one of ours", sender=sender, domain=domain)
            return
        if self.stopping:
            self.router.bounce(stanza, "remote-server-timeout", _TEXTS["system-shutdown"])
            return
        self.route(domain).send(stanza, local)

    def route(self, domain: str) -> Route:
        route = self.routes.get(domain)
        if route is None:
            route = self.routes[domain] = Route(self, domain)
        return route

    def verifyDialback(self, local: str, remote: str, streamId: str, key: str) -> defer.Deferred:
        """
        Ask C{remote}'s authoritative server whether C{key} is valid for the
        stream C{streamId} it opened to C{local}; fires with "valid",
        "invalid" or a dialback error condition.
        """
        if self.stopping:
            return defer.succeed("remote-server-timeout")
        return self.route(remote).verify(local, remote, streamId, key)

    def inboundEnded(self, stream: InboundStream) -> None:
        pass

    # -- connections ------------------------------------------------------------------

    def clientTLS(self, local: str, remote: str, alpn: bool = False) -> _ClientTLS:
        """TLS client options for a stream from C{local} to C{remote}."""
        return _ClientTLS(self._clientContext(local), remote, alpn)

    def _clientContext(self, local: str) -> SSL.Context:
        ctx = self._clientContexts.get(local)
        if ctx is not None:
            return ctx
        entry = self._certificates.get(local)
        if entry is None and "." in local:
            entry = self._certificates.get(local.split(".", 1)[1])
        if entry is None:
            entry = self._certificates[self.serverTLS.defaultHost]
        key, cert, chain = tls.loadKeyAndCert(entry[0], entry[1])
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION if self._minVersion == "1.3" else SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | getattr(SSL, "OP_NO_RENEGOTIATION", 0))
        ctx.set_cipher_list(self._ciphers.encode("ascii"))
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
        for extra in chain:
            ctx.add_extra_chain_cert(extra)
        ctx.set_verify(SSL.VERIFY_NONE, _acceptAny)  # judged after the handshake (certs)
        self._clientContexts[local] = ctx
        return ctx

    def connectStream(self, route: Route, local: str, address: str, port: int, directTLS: bool) -> defer.Deferred:
        """Open a TCP (or direct TLS) connection to C{address}:C{port} for C{route}."""
        timeout = self.config.connect_timeout
        if ":" in address:
            endpoint: Any = endpoints.TCP6ClientEndpoint(self.reactor, address, port, timeout=timeout)
        else:
            endpoint = endpoints.TCP4ClientEndpoint(self.reactor, address, port, timeout=timeout)
        if directTLS:
            endpoint = endpoints.wrapClientTLS(self.clientTLS(local, route.domain, alpn=True), endpoint)
        return endpoint.connect(_OutboundFactory(self, route, local, directTLS))

    def inboundFactory(self) -> InboundFactory:
        """The factory for the STARTTLS listener."""
        return InboundFactory(self, directTLS=False)

    def directTLSFactory(self) -> TLSMemoryBIOFactory:
        """The factory for the direct TLS listener (XEP-0368)."""
        return TLSMemoryBIOFactory(self.serverTLS.contextFactory(), False, InboundFactory(self, directTLS=True))

    # -- stopping ---------------------------------------------------------------------

    def stop(self, grace: float = 5.0) -> defer.Deferred:
        """Bounce every queued stanza, end every stream with system-shutdown, wait for them to close."""
        self.stopping = True
        if self._ownResolver is not None:
            # twisted.names re-reads resolv.conf on a timer: stop it with us.
            for resolver in getattr(self._ownResolver, "resolvers", []):
                call = getattr(resolver, "_parseCall", None)
                if call is not None and call.active():
                    call.cancel()
        for route in list(self.routes.values()):
            route.fail("remote-server-timeout")
        for stream in list(self.streams):
            stream.terminate("system-shutdown", "the server is shutting down")
        if not self.streams:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drained.append(d)

        def abort() -> None:
            for stream in list(self.streams):
                stream.transport.abortConnection()

        call = self.reactor.callLater(grace, abort)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def streamGone(self, stream: ServerStream) -> None:
        self.streams.discard(stream)
        if not self.streams and self._drained:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)
