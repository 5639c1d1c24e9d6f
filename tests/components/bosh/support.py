"""
Helpers for the web transport tests: the server with its HTTP listener
(in-process) or with a standalone connection manager in front of it, an
HTTP client (twisted.web.client.Agent), a BOSH client that keeps sid and rid,
and a WebSocket client (autobahn) that collects messages.
"""

from __future__ import annotations

import base64
import io
import os
import random
from dataclasses import dataclass
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, reactor, ssl
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.words.xish import domish

from components.bosh.config import BoshConfig
from components.bosh.framing import NS_FRAMING, NS_HTTPBIND, NS_XBOSH
from components.bosh.tap import ConnectionManager
from components.bosh.websocket import cancelTimers
from jabberd.config import fromDict
from jabberd.xmlstream import NS_CLIENT, NS_STREAMS, StreamParser
from tests.harness import LOOPBACK, NS_BIND, NS_SASL, TranscriptMixin, xml

EPHEMERAL = [f"tcp:0:interface={LOOPBACK}"]


@dataclass
class Answer:
    """One HTTP answer: status, headers, the raw body, and a parsed <body/>."""

    code: int
    headers: Headers
    raw: bytes
    attrs: dict
    children: list[domish.Element]

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode() if values else None

    def xml(self) -> list[str]:
        """The payloads as canonical text (tests.harness.xml)."""
        return [xml(c, NS_HTTPBIND) for c in self.children]


def parseXML(raw: bytes) -> tuple[dict, list[domish.Element]]:
    """The root attributes and children of one XML document."""
    attrs: dict = {}
    children: list[domish.Element] = []
    parser = StreamParser(attrs.update, children.append, lambda: None, 10**8, 1000)
    parser.feed(raw)
    return attrs, children


def plainToken(username: str, password: str) -> str:
    return base64.b64encode(f"\0{username}\0{password}".encode()).decode()


class WebMixin(TranscriptMixin):
    """
    Starts the server with its web front, in-process or (C{standalone =
    True}) as a separate connection manager relaying to the server's c2s
    port; either way C{self.web.port("http")} / C{port("http_tls")}.
    """

    standalone = False

    @defer.inlineCallbacks
    def startWeb(self, http: dict | None = None, **overrides: Any):
        http = dict(http or {})
        overrides.setdefault("muc", {"enabled": False})  # not under test here
        if not self.standalone:
            server = yield self.startServer(http=http, **overrides)
            self.web = server
            return server
        server = yield self.startServer(http={"listen": [], "listen_tls": []}, **overrides)
        c2s = server.config.c2s
        config = fromDict(
            {
                "hosts": list(server.config.hosts),
                "data_dir": self.dataDir,
                "stanza_size_limit": c2s.stanza_size_limit,
                "max_depth": c2s.max_depth,
                "core": {"connect": f"tcp:{LOOPBACK}:{server.port('c2s')}", "ca_file": self.certificatePath()},
                "http": {"listen": EPHEMERAL, "listen_tls": EPHEMERAL, **http},
            },
            cls=BoshConfig,
        )
        manager = ConnectionManager(config, reactor)
        manager.startService()
        self.addCleanup(manager.stopService)
        yield manager.ready
        self.web = manager
        return server

    def url(self, path: str = "/http-bind", secure: bool = True) -> str:
        if secure:
            return f"https://localhost:{self.web.port('http_tls')}{path}"
        return f"http://{LOOPBACK}:{self.web.port('http')}{path}"

    def agent(self) -> Agent:
        pool = HTTPConnectionPool(reactor, persistent=False)
        if not os.path.exists(self.certificatePath()):
            return Agent(reactor, pool=pool)
        with open(self.certificatePath(), "rb") as f:
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(f.read())])
        return Agent(reactor, BrowserLikePolicyForHTTPS(trustRoot=trust), pool=pool)

    @defer.inlineCallbacks
    def http(self, method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
        """One HTTP request; an L{Answer} (its XML parsed when it has some)."""
        producer = FileBodyProducer(io.BytesIO(data)) if data is not None else None
        raw = Headers({k: [v] for k, v in (headers or {}).items()})
        response = yield self.agent().request(method.encode(), url.encode(), raw, producer)
        body = yield readBody(response)
        attrs, children = {}, []
        if body.startswith(b"<"):
            attrs, children = parseXML(body)
        return Answer(response.code, response.headers, body, attrs, children)

    def bosh(self, secure: bool = True) -> BoshClient:
        return BoshClient(self, self.url(secure=secure))

    @defer.inlineCallbacks
    def boshLogin(self, address: str, password: str = "secret", resource: str = "web", **create: str):
        """A BOSH session over HTTPS, authenticated with PLAIN and bound: (client, full JID)."""
        username, _, host = address.partition("@")
        client = self.bosh()
        yield client.create(to=host, **create)
        answer = yield client.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plainToken(username, password)}</auth>")
        assert answer.children and answer.children[0].name == "success", answer.raw
        answer = yield client.post("", {"xmpp:restart": "true", "to": host})
        assert answer.children and answer.children[0].name == "features", answer.raw
        answer = yield client.post(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
        return client, str(answer.children[0].bind.jid)


class BoshClient:
    """Keeps a session's sid and the next rid; every request is a real HTTP POST."""

    def __init__(self, test: WebMixin, url: str, rid: int | None = None) -> None:
        self.test = test
        self.url = url
        self.rid = rid if rid is not None else random.randint(10**6, 10**9)
        self.sid: str | None = None
        self.created: Answer | None = None

    def body(self, payload: str = "", attrs: dict[str, str] | None = None, rid: int | None = None) -> bytes:
        attrs = dict(attrs or {})
        attrs.setdefault("rid", str(rid if rid is not None else self.rid))
        if self.sid is not None:
            attrs.setdefault("sid", self.sid)
        text = "".join(f" {k}='{v}'" for k, v in attrs.items() if v is not None)
        tail = f">{payload}</body>" if payload else "/>"
        return f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'{text}{tail}".encode()

    def create(self, **attrs: str) -> defer.Deferred:
        """The session creation request (wait 5, hold 1, ver 1.11 unless given)."""
        attrs = {"to": "localhost", "wait": "5", "hold": "1", "ver": "1.11", "xml:lang": "en", "xmpp:version": "1.0", **attrs}
        d = self.post("", attrs)

        def created(answer: Answer) -> Answer:
            self.sid = answer.attrs.get("sid")
            self.created = answer
            return answer

        return d.addCallback(created)

    def post(self, payload: str = "", attrs: dict[str, str] | None = None, rid: int | None = None, headers: dict[str, str] | None = None) -> defer.Deferred:
        """POST a <body/> with the next rid (or C{rid}); fires with the L{Answer}."""
        data = self.body(payload, attrs, rid)
        if rid is None:
            self.rid += 1
        return self.test.http("POST", self.url, data, {"Content-Type": "text/xml; charset=utf-8", **(headers or {})})


# -- WebSocket -------------------------------------------------------------------


class WSClient(WebSocketClientProtocol):
    """Collects text messages as parsed elements; C{next()} reads them in order."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[bytes] = []
        self.elements: list[domish.Element] = []
        self.cursor = 0
        self.opened: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()
        self.closeCode: int | None = None
        self.pings = 0
        self._waiters: list[defer.Deferred] = []

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append(payload)
        self.elements.extend(parseXML(b"<w xmlns='" + NS_CLIENT.encode() + b"'>" + payload + b"</w>")[1])
        self._wake()

    def onPing(self, payload: bytes) -> None:
        self.pings += 1
        super().onPing(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.closeCode = code
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"WebSocket refused: {reason}"))
        if not self.closed.called:
            self.closed.callback(code)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    @defer.inlineCallbacks
    def next(self, timeout: float = 5.0):
        """The next element not yet read."""
        while self.cursor >= len(self.elements):
            if self.closed.called:
                raise AssertionError(f"closed ({self.closeCode}) after {[m.decode() for m in self.messages]}")
            d: defer.Deferred = defer.Deferred()
            self._waiters.append(d)
            d.addTimeout(timeout, reactor)
            yield d
        self.cursor += 1
        return self.elements[self.cursor - 1]

    def sendText(self, text: str) -> None:
        self.sendMessage(text.encode("utf-8"))


class WSMixin(WebMixin):
    """WebSocket clients against the web front, closed at cleanup."""

    @defer.inlineCallbacks
    def wsConnect(self, secure: bool = True, protocols: tuple[str, ...] = ("xmpp",), origin: str | None = None):
        scheme = "wss" if secure else "ws"
        host = "localhost" if secure else LOOPBACK
        port = self.web.port("http_tls" if secure else "http")
        url = f"{scheme}://{host}:{port}/xmpp-websocket"
        factory = WebSocketClientFactory(url, protocols=list(protocols), origin=origin)
        factory.protocol = WSClient
        self.addCleanup(cancelTimers, factory)
        protocols_: list[WSClient] = []
        original = factory.buildProtocol

        def build(addr: Any) -> Any:
            p = original(addr)
            protocols_.append(p)
            return p

        factory.buildProtocol = build  # type: ignore[method-assign]
        contextFactory = None
        if secure:
            with open(self.certificatePath(), "rb") as f:
                trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(f.read())])
            contextFactory = ssl.optionsForClientTLS("localhost", trustRoot=trust)
        connector = connectWS(factory, contextFactory)
        self.addCleanup(connector.disconnect)
        for _ in range(100):
            if protocols_:
                break
            yield deferLater(0.01)
        client = protocols_[0]
        self.addCleanup(lambda: client.closed if client.closed.called else (client.dropConnection(abort=True), client.closed)[1])
        yield client.opened
        return client

    @defer.inlineCallbacks
    def wsOpen(self, client: WSClient, to: str = "localhost"):
        """Send <open/>; return (the server's <open/>, its features)."""
        client.sendText(f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'/>")
        header = yield client.next()
        features = yield client.next()
        return header, features

    @defer.inlineCallbacks
    def wsLogin(self, address: str, password: str = "secret", resource: str = "ws"):
        """A WebSocket client over wss, authenticated with PLAIN and bound: (client, full JID)."""
        username, _, host = address.partition("@")
        client = yield self.wsConnect()
        yield self.wsOpen(client, host)
        client.sendText(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plainToken(username, password)}</auth>")
        success = yield client.next()
        assert success.name == "success", xml(success)
        yield self.wsOpen(client, host)
        client.sendText(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
        reply = yield client.next()
        return client, str(reply.bind.jid)


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


__all__ = ["Answer", "BoshClient", "WSClient", "WSMixin", "WebMixin", "NS_STREAMS", "NS_FRAMING", "NS_HTTPBIND", "NS_XBOSH"]
