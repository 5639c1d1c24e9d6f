"""
XMPPServer: the whole server as one Twisted service, built from a Config.

This is the object an existing Twisted application embeds
(C{XMPPServer(config).setServiceParent(app)}); the twistd plugin is a thin
wrapper around it.  Starting it prepares the store (migrations for the
embedded SQLite default), the certificates, the modules, and only then
opens the listeners, so a client never meets a half-started server.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer, threads
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from jabberd import bus as B
from jabberd import proxyprotocol, tls
from jabberd.bus import EventBus
from jabberd.c2s.session import C2SContext
from jabberd.c2s.tcp import ClientStreamFactory
from jabberd.limits import AddressLimit, AuthThrottle
from jabberd.components import ComponentListener
from jabberd.config import Config
from jabberd.module import ModuleHost
from jabberd.router import Router
from jabberd.s2s.federation import Federation
from jabberd.sessions import SessionManager
from jabberd.store import Store, StoreUnavailable
from jabberd.store.accounts import Accounts


#: Seconds a stopping server waits for client connections to close.
SHUTDOWN_GRACE = 5.0


class XMPPServer(MultiService):
    """The XMPP server: c2s listeners, router, sessions, modules and store."""

    log = Logger()

    def __init__(self, config: Config, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.config = config
        self.reactor = reactor
        self.hosts: set[str] = set(config.hosts)
        self.bus = EventBus()
        self.sessions = SessionManager(self.bus)
        self.router = Router(self.hosts, self.bus, self.sessions)
        self.store = Store(config.databaseURL(), reactor=reactor)
        self.accounts = Accounts(self.store)
        self.modules = ModuleHost(self)
        # XEP-0114: external components (their domains bounce until connected).
        self.components = ComponentListener(
            self.router,
            config.components.secrets,
            reactor,
            config.components.stanza_size_limit,
            config.components.handshake_timeout,
        )
        self.serverTLS: tls.ServerTLS | None = None
        self.certificates: dict[str, tuple[str, str | None]] = {}
        # Federation (jabberd/s2s), made at start; s2sResolver is the DNS
        # resolver it uses (None: the system's; tests set a loopback one).
        self.s2s: Federation | None = None
        self.s2sResolver: Any = None
        self.ports: dict[str, list[IListeningPort]] = {}
        # Every open client session, bound or still negotiating, over any
        # transport: shared by every C2SContext so shutdown reaches them all.
        self.clientStreams: set = set()
        #: SASL failures per address and account, shared by every transport
        self.authThrottle = AuthThrottle(config.auth.throttle_delay, config.auth.throttle_max_delay)
        self._c2sFactories: list[ClientStreamFactory] = []
        self.web: Any = None  # the BOSH/WebSocket site (components/bosh), when [http] listens
        self.startedAt = 0.0
        self.ready: defer.Deferred = defer.Deferred()

    # -- lifecycle ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.startedAt = self.reactor.seconds()
        d = defer.ensureDeferred(self._start())
        d.addErrback(self._startFailed)
        d.chainDeferred(self.ready)

    def _startFailed(self, failure):
        if not failure.check(StoreUnavailable):  # an operator's fault, not a bug: its one line is enough
            self.log.failure("jabberd failed to start", failure)
        return failure

    async def _start(self) -> "XMPPServer":
        config = self.config
        os.makedirs(config.data_dir, exist_ok=True)
        self.log.info("jabberd data folder: {path}", path=config.data_dir)
        self.store.start()
        if self.store.dialect_name == "sqlite":
            await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.store.upgrade)
        else:
            needs = await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.store.needsUpgrade)
            if needs:
                raise RuntimeError("the database schema is out of date: run `jabberdctl db upgrade`")
        self.serverTLS = self._makeTLS()
        if config.s2s.enabled:
            self.s2s = Federation(config, self.router, self.certificates, self.reactor, self.s2sResolver)
            self.router.remote = self.s2s.remote
        await self.modules.load(ModuleHost.select(config.modules.enabled, config.modules.disabled))
        await self._listen()
        self.bus.notify(B.SERVER_STARTED)
        self.log.info("jabberd serving {hosts}", hosts=", ".join(sorted(self.hosts)))
        return self

    def _makeTLS(self) -> tls.ServerTLS:
        certificates = {}
        for host in sorted(self.hosts):
            hc = self.config.forHost(host)
            if hc.certificate:
                certificates[host] = (hc.certificate, hc.key or hc.certificate)
            elif self.config.tls.certificate:
                certificates[host] = (self.config.tls.certificate, self.config.tls.key or self.config.tls.certificate)
            else:
                certificates[host] = tls.ensureCertificate(self.config.data_dir, host)
        self.certificates = certificates
        return tls.ServerTLS(
            certificates,
            defaultHost=self.config.hosts[0],
            minVersion=self.config.tls.min_version,
            ciphers=self.config.tls.ciphers,
            clientCA=self.config.auth.client_ca or None,
        )

    def c2sContext(self) -> C2SContext:
        """The shared state of client sessions (also used by BOSH/WebSocket)."""
        config = self.config
        return C2SContext(
            hosts=self.hosts,
            router=self.router,
            sessions=self.sessions,
            bus=self.bus,
            lookupCredentials=self.accounts.getCredentials,
            reactor=self.reactor,
            requireTLS=config.c2s.require_tls,
            authTimeout=config.c2s.auth_timeout,
            maxAuthAttempts=config.auth.max_attempts,
            allowedMechanisms=tuple(config.auth.mechanisms),
            anonymousHosts={h for h in self.hosts if config.forHost(h).anonymous},
            registrationHosts={h for h in self.hosts if config.forHost(h).registration},
            externalUsernames=self._externalUsernames if config.auth.external else None,
            streams=self.clientStreams,
            authThrottle=self.authThrottle,
        )

    def _externalUsernames(self, cert: Any) -> list[str]:
        """XEP-0178: the accounts a client certificate speaks for (xmppAddr)."""
        names = []
        for address in tls.certificateAddresses(cert):
            node, _, host = address.partition("@")
            if node and host in self.hosts:
                names.append(node)
        return names

    async def _listen(self) -> None:
        c2s = self.config.c2s
        ctx = self.c2sContext()
        self._c2sFactories = []
        factories: dict[tuple[bool, bool], Any] = {}
        perAddress = AddressLimit(c2s.max_connections_per_address)
        total = AddressLimit(c2s.max_connections)

        def factory(directTLS: bool, compression: bool) -> Any:
            # One factory per kind of listener: STARTTLS or direct TLS, with
            # or without XEP-0138 (c2s.compression names the endpoints).
            key = (directTLS, compression)
            if key not in factories:
                f = ClientStreamFactory(
                    ctx, None if directTLS else self.serverTLS, directTLS, c2s.stanza_size_limit, c2s.max_depth, compression, c2s.idle_timeout,
                    perAddress, c2s.max_bytes_per_second, c2s.burst_bytes, total,
                )
                self._c2sFactories.append(f)
                factories[key] = TLSMemoryBIOFactory(self.serverTLS.contextFactory(), False, f) if directTLS else f
            return factories[key]

        for description in c2s.listen:
            await self._listenOne("c2s", description, factory(False, description in c2s.compression))
        for description in c2s.listen_tls:
            await self._listenOne("c2s_tls", description, factory(True, description in c2s.compression))
        http = self.config.http
        if http.listen or http.listen_tls:
            # BOSH and WebSocket (components/bosh): each web session feeds a ClientSession.
            from components.bosh.web import inProcessFrontend

            self.web = inProcessFrontend(self, ctx)
            for description in http.listen:
                await self._listenOne("http", description, self.web.site)
            for description in http.listen_tls:
                await self._listenOne("http_tls", description, self.web.tlsFactory(self.serverTLS))
        # Only with a component configured: an unused port stays closed.
        if self.config.components.secrets:
            self.components.start()
            factory = self.components.factory()
            for description in self.config.components.listen:
                await self._listenOne("component", description, factory)
        if self.s2s is not None:
            for description in self.config.s2s.listen:
                await self._listenOne("s2s", description, self.s2s.inboundFactory())
            for description in self.config.s2s.listen_tls:
                await self._listenOne("s2s_tls", description, self.s2s.directTLSFactory())

    async def _listenOne(self, kind: str, description: str, factory: Any) -> None:
        # "haproxy:..." listeners read a PROXY header first (jabberd/proxyprotocol.py).
        endpoint = proxyprotocol.serverFromString(self.reactor, description)
        port = await endpoint.listen(factory)
        self.ports.setdefault(kind, []).append(port)
        self.log.info("listening for {kind} on {addr}", kind=kind, addr=port.getHost())

    def port(self, kind: str = "c2s") -> int:
        """The TCP port number of the first listener of C{kind} (tests, logs)."""
        return self.ports[kind][0].getHost().port

    @defer.inlineCallbacks
    def stopService(self):
        """Close every stream with system-shutdown, then the store (RFC 6120 §4.9.3.22)."""
        if not self.running:
            return  # already stopped (an embedding app and a test cleanup may both ask)
        self.bus.notify(B.SERVER_STOPPING)
        for ports in self.ports.values():
            for port in ports:
                yield port.stopListening()
        self.ports.clear()
        yield self.components.stop()
        if self.s2s is not None:
            # Queued stanzas bounce to their (still connected) senders first.
            yield self.s2s.stop(SHUTDOWN_GRACE)
        # Every stream, also those still negotiating, not only bound sessions.
        for session in list(self.clientStreams):
            session.terminate("system-shutdown", "the server is shutting down")
        # Let the error and the closing tags reach the clients before the
        # reactor stops; a peer that never completes the TLS close is cut off.
        yield defer.gatherResults([f.whenClosed(self.reactor, SHUTDOWN_GRACE) for f in self._c2sFactories])
        yield self.modules.unloadAll()
        yield self.store.close()
        yield super().stopService()
