"""
Federation: what outlives one server stream.

L{Federation.remote} is the router's exit for every stanza to a domain
that is not ours.  Each remote domain gets a L{Route}: a bounded queue, the
outgoing stream that carries it (several of our domains multiplexed on it
with dialback), and the connecting (static route, SRV, A/AAAA, one address
after the other).  A route whose domain resolves to the address and port
of a stream already open joins that stream instead of connecting (target
multiplexing, XEP-0220 §2.4.3), and falls back to a connection of its own
if the peer refuses its domain there.  A stanza waits in the queue until its domain
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

from collections import OrderedDict, deque
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
from jabberd.limits import AddressLimit
from jabberd.s2s import resolve
from jabberd.s2s.certs import TrustStore
from jabberd.s2s.dialback import Keys
from jabberd.s2s.stream import InboundStream, OutboundStream, ServerStream

__all__ = ["Federation", "NegativeCache", "Route"]

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
    def __init__(self, fed: Federation, route: Route, local: str, directTLS: bool, address: tuple[str, int]) -> None:
        self.fed, self.route, self.local, self.directTLS, self.address = fed, route, local, directTLS, address

    def buildProtocol(self, addr: Any) -> OutboundStream:
        stream = OutboundStream(self.fed, self.route, self.local, self.directTLS, self.address)
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


#: most unreachable domains remembered at once (the oldest are forgotten first)
NEGATIVE_CACHE_ENTRIES = 10000


class NegativeCache:
    """
    Domains that could not be reached lately, each with the error its
    stanzas got, remembered for C{duration} seconds (0: never): stanzas for
    them bounce at once instead of each starting a connection attempt that
    fails the same way.  Bounded: entries expire in the order they were
    added, and beyond C{entries} the oldest go.
    """

    def __init__(self, duration: float, reactor: Any, entries: int = NEGATIVE_CACHE_ENTRIES) -> None:
        self.duration = duration
        self.reactor = reactor
        self.entries = entries
        self._failed: OrderedDict[str, tuple[float, str]] = OrderedDict()  # domain -> (until, condition)

    def add(self, domain: str, condition: str) -> None:
        if self.duration <= 0:
            return
        now = self.reactor.seconds()
        self._failed.pop(domain, None)
        self._failed[domain] = (now + self.duration, condition)
        while self._failed and (len(self._failed) > self.entries or next(iter(self._failed.values()))[0] <= now):
            self._failed.popitem(last=False)

    def get(self, domain: str) -> str | None:
        """The condition C{domain} failed with, if that was less than C{duration} ago."""
        entry = self._failed.get(domain)
        if entry is None:
            return None
        if entry[0] <= self.reactor.seconds():
            del self._failed[domain]
            return None
        return entry[1]

    def forget(self, domain: str) -> None:
        """C{domain} proved alive (its server authenticated a stream to us)."""
        self._failed.pop(domain, None)

    def __len__(self) -> int:
        return len(self._failed)


class Route:
    """One remote domain: its queue, the outgoing stream that carries it (its own or a shared one), and getting one."""

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
        self.multiplex = True  # may join a stream already open to the same peer server
        self._attempt: defer.Deferred | None = None  # the connection being made
        self._local = ""  # the domain the connection is made for (its header's 'from')
        self._at: tuple[str, int] | None = None  # where this route is connecting, until its stream is set up
        self.followers: list[Route] = []  # routes waiting to see whether that stream can carry them too
        self.patient = True  # may wait for another route's stream to the same place (once)

    def __repr__(self) -> str:
        return f"<Route to {self.domain}: {len(self.queue)} queued, stream {self.stream!r}>"

    # -- what the federation asks -----------------------------------------------

    def send(self, stanza: domish.Element, local: str) -> None:
        stream = self.stream
        if stream is not None and stream.ready and not stream.closing and (local, self.domain) in stream.pairs and stream.writable:
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
                stream.authenticate(local, self.domain)
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
        self._local = local
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
                key = (address, target.port)
                if self.multiplex:
                    shared = self.fed.sharedStream(address, target.port, self.domain)
                    if shared is not None:
                        # Same peer, same port (XEP-0220 §2.4.3): no new connection.
                        self.connecting = False
                        shared.carry(self)
                        return
                    leader = self.fed.connectingAt.get(key)
                    if leader is not None and leader is not self and self.patient:
                        # A stream to that place is being set up: see whether it can carry us too.
                        leader.followers.append(self)
                        return
                if key not in self.fed.connectingAt:
                    self.fed.connectingAt[key] = self
                    self._at = key
                self._attempt = self.fed.connectStream(self, local, address, target.port, target.directTLS)
                try:
                    await self._attempt
                except (defer.CancelledError, ierror.ConnectingCancelledError):
                    return  # the route was given up meanwhile (fail)
                except (ierror.TimeoutError, defer.TimeoutError):
                    log.info("connecting to {domain} at {address}:{port} timed out", domain=self.domain, address=address, port=target.port)
                    condition = "remote-server-timeout"
                    self._settle()
                    continue
                except Exception as e:
                    log.info("cannot connect to {domain} at {address}:{port}: {e}", domain=self.domain, address=address, port=target.port, e=e)
                    self._settle()
                    continue
                finally:
                    self._attempt = None
                self.connecting = False
                return
        self.connecting = False
        log.info("no connection to {domain}: {condition}", domain=self.domain, condition=condition)
        self.fail(condition, unreachable=True)

    # -- events from the stream ---------------------------------------------------

    def attach(self, stream: OutboundStream) -> None:
        self.stream = stream

    def streamReady(self, stream: OutboundStream) -> None:
        """Negotiation is over: ask for every pair that waits, send the waiting verifications."""
        for local in list(self.wanted):
            stream.authenticate(local, self.domain)
        verifies, self.verifies = self.verifies, []
        for local, remote, streamId, key, d in verifies:
            if not d.called:
                stream.sendVerify(local, remote, streamId, key, d)
        self._settle()

    def _settle(self) -> None:
        """
        The connection this route was making is set up, or came to nothing:
        the routes that waited to see whether it could carry them go on
        (joining it, or connecting on their own).
        """
        if self._at is not None and self.fed.connectingAt.get(self._at) is self:
            del self.fed.connectingAt[self._at]
        self._at = None
        followers, self.followers = self.followers, []
        for route in followers:
            if self.fed.routes.get(route.domain) is route and route.stream is None and not self.fed.stopping:
                route.patient = False  # if that stream cannot carry it, connect now rather than queue up behind another
                route.connect(route._local)

    def authenticated(self, stream: OutboundStream, local: str) -> None:
        """C{local} may send now: flush its stanzas, in order."""
        self.wanted.discard(local)
        self.flush(stream)

    def flush(self, stream: OutboundStream) -> None:
        """
        Write the queued stanzas of every authenticated domain, in order,
        for as long as the peer reads (L{ServerStream.writable}): what does
        not fit stays queued, bounded and aging, until the output drains.
        """
        if stream is not self.stream:
            return
        kept: deque[tuple[float, str, domish.Element]] = deque()
        queue, self.queue = self.queue, kept
        for item in queue:
            if (item[1], self.domain) in stream.pairs and stream.writable and not stream.closing:
                stream.sendStanza(item[2])
            else:
                kept.append(item)

    def authFailed(self, stream: OutboundStream, local: str, condition: str) -> None:
        """
        The peer refused C{local}: bounce its stanzas.  On a stream this
        route only joined (target multiplexing) where none of its pairs got
        through, the peer may just not serve this domain at that address
        after all: try a connection of its own instead, as if the stream
        had never been there.
        """
        if stream is self.stream and stream.route is not self and not any(r == self.domain for _, r in stream.pairs):
            log.info("{domain} refused on the stream to {other}: connecting on its own", domain=self.domain, other=stream.remote)
            stream.drop(self)
            self.stream = None
            self.multiplex = False
            self.connect(local)
            return
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
        # A stream that never got through negotiation counts as unreachable.
        self.fail(self.failure or "remote-server-timeout", unreachable=not stream.everReady)

    # -- giving up ----------------------------------------------------------------

    def fail(self, condition: str, unreachable: bool = False) -> None:
        """
        Bounce every queued stanza with C{condition}, fail the
        verifications, drop the route; when the domain could not be
        reached (C{unreachable}), remember that for negative_cache_time.
        """
        if self.fed.routes.get(self.domain) is self:
            del self.fed.routes[self.domain]
        if unreachable:
            self.fed.unreachable.add(self.domain, condition)
        queue, self.queue = self.queue, deque()
        for _, _, stanza in queue:
            self._bounce(stanza, condition)
        verifies, self.verifies = self.verifies, []
        for _, _, _, _, d in verifies:
            if not d.called:
                d.callback("remote-server-not-found" if condition == "remote-server-not-found" else "remote-server-timeout")
        self.wanted.clear()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            self.connecting = False
            attempt.cancel()
        self._settle()
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
        self.unreachable = NegativeCache(self.config.negative_cache_time, reactor)
        #: open incoming connections per address, shared by both listeners
        self.perAddress = AddressLimit(self.config.max_connections_per_address)
        self.streams: set[ServerStream] = set()
        self.stopping = False
        self._resolver = resolver
        self._ownResolver: Any = None
        self._drained: list[defer.Deferred] = []
        #: outgoing streams by the (IP, port) they connected to, for target multiplexing
        self.outgoing: dict[tuple[str, int], list[OutboundStream]] = {}
        #: the route connecting to each (IP, port) until its stream is set up; others wait for it
        self.connectingAt: dict[tuple[str, int], Route] = {}

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
        if domain not in self.routes:
            condition = self.unreachable.get(domain)
            if condition is not None:
                self.router.bounce(stanza, condition, _TEXTS[condition].format(domain=domain))
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
        if remote not in self.routes:
            condition = self.unreachable.get(remote)
            if condition is not None:
                return defer.succeed(condition)
        return self.route(remote).verify(local, remote, streamId, key)

    def inboundEnded(self, stream: InboundStream) -> None:
        pass

    # -- target multiplexing ----------------------------------------------------------

    def sharedStream(self, address: str, port: int, domain: str) -> OutboundStream | None:
        """An outgoing stream already connected to C{address}:C{port} that may carry C{domain} too."""
        for stream in self.outgoing.get((address, port), ()):
            if stream.canCarry(domain):
                return stream
        return None

    def outgoingUp(self, stream: OutboundStream) -> None:
        self.outgoing.setdefault(stream.peerAddress, []).append(stream)

    def outgoingGone(self, stream: OutboundStream) -> None:
        streams = self.outgoing.get(stream.peerAddress)
        if streams is not None and stream in streams:
            streams.remove(stream)
            if not streams:
                del self.outgoing[stream.peerAddress]

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
        return endpoint.connect(_OutboundFactory(self, route, local, directTLS, (address, port)))

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
