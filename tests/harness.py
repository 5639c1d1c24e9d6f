"""
Helpers for integration tests: a real server on ephemeral loopback ports,
a raw-bytes client for protocol transcripts, and slixmpp clients sharing
trial's asyncio reactor (the suite runs with `trial --reactor=asyncio`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.words.xish import domish
from zope.interface import implementer

from jabberd.config import Config, fromDict
from jabberd.passwords import credentialsFor
from jabberd.service import XMPPServer
from jabberd.xmlstream import StreamParser

LOOPBACK = "127.0.0.1"


def makeConfig(dataDir: str, **overrides: Any) -> Config:
    """A config listening on ephemeral loopback ports with a temp data folder."""
    data: dict[str, Any] = {
        "data_dir": dataDir,
        "c2s": {"listen": [f"tcp:0:interface={LOOPBACK}"], "listen_tls": [f"tcp:0:interface={LOOPBACK}"]},
        "http": {"listen": [f"tcp:0:interface={LOOPBACK}"], "listen_tls": [f"tcp:0:interface={LOOPBACK}"]},
        # no federation (it would listen on 5269 and look peers up in DNS):
        # stanzas to other domains bounce; tests/s2s/ turns it on
        "s2s": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return fromDict(data)


class ServerMixin:
    """
    For trial TestCases: C{startServer()} runs a real XMPPServer, stopped
    again at cleanup.  Mix in before C{unittest.TestCase}.
    """

    server: XMPPServer

    @defer.inlineCallbacks
    def startServer(self, **overrides: Any):
        dataDir = tempfile.mkdtemp(prefix="jabberd-test-")
        self.dataDir = dataDir
        self.server = XMPPServer(makeConfig(dataDir, **overrides), reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready
        return self.server

    @defer.inlineCallbacks
    def addUser(self, address: str, password: str = "secret"):
        user, _, host = address.partition("@")
        credentials = credentialsFor(password, self.server.config.auth.scram_iterations)
        yield self.server.accounts.create(host, user, credentials)

    def certificatePath(self, host: str = "localhost") -> str:
        return os.path.join(self.dataDir, "certs", f"{host}.pem")

    def clientSSLContext(self, host: str = "localhost", maxVersion: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A client TLS context that trusts exactly the server's generated certificate."""
        ctx = ssl.create_default_context(cafile=self.certificatePath(host))
        if maxVersion is not None:
            ctx.maximum_version = maxVersion
        return ctx


# -- raw protocol transcripts ---------------------------------------------------

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class RawClient(protocol.Protocol):
    """
    Sends bytes, collects parsed elements: for exact-stanza assertions.

    C{elements} holds what arrived since the last stream (re)start,
    C{headers} every stream header the server sent, C{raw} every byte
    received (after TLS: the decrypted bytes).  L{next} reads the elements
    in order, which is how a transcript test reads: send, then expect.
    """

    def __init__(self) -> None:
        self.header: dict | None = None
        self.headers: list[dict] = []
        self.elements: list[domish.Element] = []
        self.ended = False
        self.lost = False
        self.closed: defer.Deferred = defer.Deferred()
        self.raw = b""
        self.cursor = 0
        self._waiters: list[tuple[Any, defer.Deferred]] = []
        self._resetParser()

    def _resetParser(self) -> None:
        self.parser = StreamParser(self._onStart, self._onElement, self._onEnd, 10**7, 1000)

    def _onStart(self, attrs: dict) -> None:
        self.header = attrs
        self.headers.append(attrs)
        self._check()

    def _onElement(self, element: domish.Element) -> None:
        self.elements.append(element)
        self._check()

    def _onEnd(self) -> None:
        self.ended = True
        self._check()

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self.parser.feed(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.ended = True
        self.lost = True
        self._check()
        self.closed.callback(None)

    def send(self, data: str | bytes) -> None:
        self.transport.write(data.encode() if isinstance(data, str) else data)

    def open(self, to: str = "localhost", extra: str = "") -> None:
        self.send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'{extra}>"
        )

    def _check(self) -> None:
        for item in list(self._waiters):
            predicate, d = item
            result = predicate()
            if result:
                self._waiters.remove(item)
                d.callback(result)

    def waitFor(self, predicate, timeout: float = 5.0) -> defer.Deferred:
        """Fire with predicate()'s value once it is truthy (checked on every event)."""
        result = predicate()
        if result:
            return defer.succeed(result)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((predicate, d))
        d.addTimeout(timeout, reactor)
        return d

    def waitElement(self, name: str, uri: str | None = None, after: int = 0) -> defer.Deferred:
        """The first element named C{name} (in C{uri}) at or after index C{after}."""

        def find():
            for e in self.elements[after:]:
                if e.name == name and (uri is None or e.uri == uri):
                    return e
            return None

        return self.waitFor(find)

    def next(self, timeout: float = 5.0) -> defer.Deferred:
        """The next element not yet read with L{next} (fails on timeout)."""

        def take():
            if len(self.elements) > self.cursor:
                self.cursor += 1
                return self.elements[self.cursor - 1]
            return None

        return self.waitFor(take, timeout)

    def nextHeader(self, timeout: float = 5.0) -> defer.Deferred:
        """The server's header of the current stream, once it arrived."""
        return self.waitFor(lambda: self.header, timeout)

    def waitClosed(self, timeout: float = 5.0) -> defer.Deferred:
        """Fire once the server has closed the TCP connection."""
        return self.waitFor(lambda: self.lost, timeout)

    def restart(self) -> None:
        """Expect a new stream header (after STARTTLS or SASL)."""
        self.header = None
        self.elements = []
        self.cursor = 0
        self._resetParser()

    def startTLS(self, options: Any) -> None:
        """Start TLS over this connection (after <proceed/>) and expect a new stream."""
        self.transport.startTLS(options)
        self.restart()

    def tlsConnection(self) -> Any:
        """The client side pyOpenSSL Connection, or None without TLS."""
        from jabberd.tls import tlsConnectionOf

        return tlsConnectionOf(self.transport)

    def channelBindings(self) -> dict[str, bytes]:
        """The channel-binding data as the client computes it (RFC 5929, RFC 9266)."""
        from jabberd.tls import channelBindings

        return channelBindings(self.tlsConnection(), isServer=False)

    def peerCertificate(self) -> Any:
        """The certificate the server presented (cryptography x509)."""
        return self.tlsConnection().get_peer_certificate(as_cryptography=True)

    def disconnect(self) -> defer.Deferred:
        """Drop the connection (test cleanup) and wait until it is gone."""
        if not self.lost and self.transport is not None:
            self.transport.abortConnection()
        return self.waitClosed()


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLSOptions:
    """
    A plain pyOpenSSL client for tests: trust one file, optionally send SNI,
    cap or floor the TLS version, present a client certificate.
    """

    def __init__(
        self,
        trust: str | None = None,
        sni: str | None = None,
        minVersion: int | None = None,
        maxVersion: int | None = None,
        certFile: str | None = None,
        ciphers: bytes | None = None,
    ) -> None:
        from OpenSSL import SSL

        self.context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        if minVersion is not None:
            self.context.set_min_proto_version(minVersion)
        if maxVersion is not None:
            self.context.set_max_proto_version(maxVersion)
        if ciphers is not None:
            self.context.set_cipher_list(ciphers)
        if trust is not None:
            self.context.load_verify_locations(trust)
            self.context.set_verify(SSL.VERIFY_PEER)
        if certFile is not None:
            self.context.use_certificate_chain_file(certFile)
            self.context.use_privatekey_file(certFile)
        self.sni = sni

    def clientConnectionForTLS(self, tlsProtocol: object) -> Any:
        from OpenSSL import SSL

        conn = SSL.Connection(self.context, None)
        if self.sni is not None:
            conn.set_tlsext_host_name(self.sni.encode("ascii"))
        conn.set_connect_state()
        return conn


@defer.inlineCallbacks
def rawConnect(port: int, tlsOptions: Any = None):
    """Connect a L{RawClient} to C{port} on loopback; with C{tlsOptions}, over direct TLS."""
    endpoint: Any = TCP4ClientEndpoint(reactor, LOOPBACK, port)
    if tlsOptions is not None:
        endpoint = wrapClientTLS(tlsOptions, endpoint)
    client = yield endpoint.connect(protocol.Factory.forProtocol(RawClient))
    return client


def xml(element: domish.Element, _parentUri: str = "jabber:client") -> str:
    """
    An element as canonical text, for comparing whole stanzas in assertions:
    attributes sorted, C{xmlns} only where the namespace changes (a stanza
    in jabber:client shows none), no prefixes, C{'} around values.
    """
    from xml.sax.saxutils import escape

    attrs = []
    for key, value in element.attributes.items():
        if isinstance(key, tuple):
            key = f"xml:{key[1]}" if key[0] == "http://www.w3.org/XML/1998/namespace" else f"{{{key[0]}}}{key[1]}"
        attrs.append((key, value))
    if element.uri != _parentUri:
        attrs.append(("xmlns", element.uri or ""))
    text = "".join(f" {k}='{escape(v, {chr(39): '&apos;'})}'" for k, v in sorted(attrs))
    inner = "".join(
        xml(child, element.uri) if isinstance(child, domish.Element) else escape(str(child))
        for child in element.children
    )
    if not inner:
        return f"<{element.name}{text}/>"
    return f"<{element.name}{text}>{inner}</{element.name}>"


def condition(element: domish.Element, uri: str | None = None) -> str | None:
    """
    The defined condition of a stream error, stanza error or SASL failure:
    the name of its first child (in C{uri}, when given) that is not <text/>.
    """
    if element.name != "error" and element.uri != NS_SASL and element.error is not None:
        element = element.error
    for child in element.elements():
        if child.name != "text" and (uri is None or child.uri == uri):
            return child.name
    return None


class TranscriptMixin(ServerMixin):
    """
    Raw client transcripts against the real server: connect, negotiate step
    by step, and close every client at cleanup.  Mix in before
    C{unittest.TestCase}; call C{startServer()} first.
    """

    def trustFile(self, host: str = "localhost") -> str:
        return self.certificatePath(host)

    def tlsOptions(self, host: str = "localhost", **kw: Any) -> ClientTLSOptions:
        """Client TLS options trusting C{host}'s generated certificate."""
        kw.setdefault("trust", self.trustFile(host))
        return ClientTLSOptions(**kw)

    @defer.inlineCallbacks
    def connect(self, kind: str = "c2s", tlsOptions: Any = None):
        """A connected L{RawClient}; C{kind} "c2s_tls" connects with direct TLS."""
        if kind == "c2s_tls" and tlsOptions is None:
            tlsOptions = self.tlsOptions()
        client = yield rawConnect(self.server.port(kind), tlsOptions)
        self.addCleanup(client.disconnect)  # type: ignore[attr-defined]
        return client

    @defer.inlineCallbacks
    def openStream(self, client: RawClient, to: str = "localhost"):
        """Send a stream header; return the server's <stream:features/>."""
        client.open(to)
        features = yield client.next()
        assert features.name == "features", xml(features)
        return features

    @defer.inlineCallbacks
    def starttls(self, client: RawClient, options: Any = None, to: str = "localhost"):
        """STARTTLS on an open stream; return the features of the new stream."""
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = yield client.next()
        assert proceed.name == "proceed", xml(proceed)
        client.startTLS(options or self.tlsOptions(to))
        features = yield self.openStream(client, to)
        return features

    @defer.inlineCallbacks
    def authPlain(self, client: RawClient, username: str, password: str, to: str = "localhost"):
        """SASL PLAIN; return the features of the restarted stream."""
        import base64

        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        answer = yield client.next()
        assert answer.name == "success", xml(answer)
        client.restart()
        features = yield self.openStream(client, to)
        return features

    @defer.inlineCallbacks
    def bindResource(self, client: RawClient, resource: str | None = None):
        """Bind (the server picks the resource when None); return the bound JID."""
        inner = f"<resource>{resource}</resource>" if resource is not None else ""
        client.send(f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")
        reply = yield client.next()
        assert reply.getAttribute("type") == "result", xml(reply)
        return str(reply.bind.jid)

    @defer.inlineCallbacks
    def login(self, address: str, password: str = "secret", resource: str | None = "res"):
        """A client over STARTTLS, authenticated with PLAIN and bound: (client, full JID)."""
        username, _, host = address.partition("@")
        client = yield self.connect()
        yield self.openStream(client, host)
        yield self.starttls(client, to=host)
        yield self.authPlain(client, username, password, host)
        jid = yield self.bindResource(client, resource)
        return client, jid


# -- slixmpp --------------------------------------------------------------------


def slixmppClient(jid: str, password: str, sslContext: ssl.SSLContext | None = None, directTLS: bool = False, plugins: tuple[str, ...] = ()):
    """A slixmpp ClientXMPP on the asyncio loop trial's reactor runs."""
    import slixmpp

    client = slixmpp.ClientXMPP(jid, password, loop=asyncio.get_event_loop())
    if sslContext is not None:
        client.ssl_context = sslContext
    client.enable_direct_tls = directTLS
    client.enable_starttls = not directTLS
    client.enable_plaintext = False
    client.use_aiodns = False
    client.auto_reconnect = False if hasattr(client, "auto_reconnect") else None
    for plugin in plugins:
        client.register_plugin(plugin)
    return client


def deferred(awaitable: Any) -> defer.Deferred:
    """A Deferred for an asyncio awaitable (slixmpp futures and coroutines)."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(awaitable))


@defer.inlineCallbacks
def connectSlixmpp(client, port: int, timeout: float = 10.0):
    """Connect C{client} to loopback C{port} and wait for session_start."""
    started: asyncio.Future = asyncio.get_event_loop().create_future()
    failed = lambda *a: started.done() or started.set_exception(RuntimeError(f"login failed: {a!r}"))  # noqa: E731
    client.add_event_handler("session_start", lambda *a: started.done() or started.set_result(True))
    client.add_event_handler("failed_auth", failed)
    client.add_event_handler("connection_failed", failed)
    client.add_event_handler("disconnected", failed)
    client.connect(LOOPBACK, port)
    d = deferred(started)
    d.addTimeout(timeout, reactor)
    yield d
    return client
