"""
The HTTP side: one twisted.web site serving BOSH, WebSocket and XEP-0156
host-meta, with CORS, a request body limit, and the rule for what counts as
a secure (TLS) request.

The same site runs in-process (L{inProcessFrontend}, started by
L{jabberd.service.XMPPServer}) and standalone (L{components.bosh.tap});
only the upstream factory differs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.interfaces import ISSLTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import resource, server

from components.bosh.bosh import BoshManager, BoshResource
from components.bosh.framing import Downstream, Upstream
from components.bosh.websocket import XMPPWebSocketFactory
from jabberd.config import HTTPConfig
from jabberd.limits import AddressLimit

if TYPE_CHECKING:
    from jabberd.service import XMPPServer
    from jabberd.tls import ServerTLS

NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
REL_BOSH = "urn:xmpp:alt-connections:xbosh"
REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket"

_HOST_HEADER = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass(frozen=True)
class Limits:
    """The parser limits every stream gets (c2s.stanza_size_limit, c2s.max_depth)."""

    maxStanzaSize: int = 262144
    maxDepth: int = 64


class LimitedRequest(server.Request):
    """
    A request whose body may not exceed C{maxBody} bytes: a larger one is
    answered 413 and its connection closed as soon as the excess is seen
    (from Content-Length, or while a chunked body arrives), before it is
    stored.
    """

    maxBody = 524288

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._received = 0
        self._tooLarge = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.maxBody:
            self._refuse()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._tooLarge:
            return
        self._received += len(data)
        if self._received > self.maxBody:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        self._tooLarge = True
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.channel.loseConnection()

    def process(self) -> None:
        if not self._tooLarge:
            super().process()


class Root(resource.Resource):
    """Dispatch on the whole configured path (which may have several segments)."""

    def __init__(self, routes: dict[str, Any]) -> None:
        super().__init__()
        self.routes = routes

    def getChildWithDefault(self, name: bytes, request: server.Request) -> Any:
        path = request.path.decode("utf-8", "replace").rstrip("/")
        found = self.routes.get(path)
        if found is None:
            return resource.NoResource()
        return found

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(404)
        return b""


class HostMeta(resource.Resource):
    """XEP-0156: /.well-known/host-meta (XRD) and host-meta.json announce both endpoints."""

    isLeaf = True

    def __init__(self, frontend: WebFrontend, asJSON: bool) -> None:
        super().__init__()
        self.frontend = frontend
        self.asJSON = asJSON

    def render_GET(self, request: server.Request) -> bytes:
        links = self.frontend.links(request)
        # Public information, meant to be read by web clients on any site.
        request.setHeader(b"access-control-allow-origin", b"*")
        if self.asJSON:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]}).encode()
        request.setHeader(b"content-type", b"application/xrd+xml; charset=utf-8")
        lines = ["<?xml version='1.0' encoding='utf-8'?>", f"<XRD xmlns='{NS_XRD}'>"]
        for rel, href in links:
            escaped = href.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
            lines.append(f"  <Link rel='{rel}' href='{escaped}'/>")
        lines.append("</XRD>")
        return ("\n".join(lines) + "\n").encode("utf-8")


class WebFrontend:
    """The site and everything its transports share: config, hosts, upstreams, limits."""

    def __init__(self, config: HTTPConfig, hosts: set[str], upstreamFactory: Callable[[Downstream], Upstream], reactor: Any, limits: Limits = Limits()) -> None:
        self.config = config
        self.hosts = hosts
        self.upstreamFactory = upstreamFactory
        self.reactor = reactor
        self.limits = limits
        #: BOSH sessions and WebSocket connections per client address, together
        self.perAddress = AddressLimit(config.max_sessions_per_address)
        self.bosh = BoshManager(self)
        self.websocket = XMPPWebSocketFactory(self)
        routes: dict[str, Any] = {
            "/.well-known/host-meta": HostMeta(self, asJSON=False),
            "/.well-known/host-meta.json": HostMeta(self, asJSON=True),
        }
        if config.bosh_path:
            routes[config.bosh_path] = BoshResource(self.bosh)
        if config.websocket_path:
            routes[config.websocket_path] = WebSocketResource(self.websocket)
        requestFactory = type("Request", (LimitedRequest,), {"maxBody": config.max_body_size})
        self.site = server.Site(Root(routes), requestFactory=requestFactory, reactor=reactor)
        self.site.noisy = False
        self.site.log = lambda request: None  # no per-request logging unless asked

    def tlsFactory(self, serverTLS: ServerTLS) -> TLSMemoryBIOFactory:
        """The site behind TLS with the hosts' certificates (SNI picks one)."""
        return TLSMemoryBIOFactory(serverTLS.contextFactory(), False, self.site)

    # -- policy --------------------------------------------------------------------

    def isSecure(self, request: server.Request) -> bool:
        """TLS here, or at a trusted reverse proxy that says so."""
        if request.isSecure():
            return True
        return self._proxiedTLS(request.getClientAddress(), request.getHeader(b"x-forwarded-proto"))

    def secureConnection(self, transport: Any, forwardedProto: str | None) -> bool:
        """The same rule for a WebSocket connection's transport."""
        if ISSLTransport.providedBy(transport):
            return True
        return self._proxiedTLS(transport.getPeer(), forwardedProto)

    def _proxiedTLS(self, peer: Any, forwardedProto: Any) -> bool:
        if not self.config.trusted_proxies or forwardedProto is None:
            return False
        if isinstance(forwardedProto, bytes):
            forwardedProto = forwardedProto.decode("latin-1")
        host = getattr(peer, "host", None)
        return host in self.config.trusted_proxies and forwardedProto.strip().lower() == "https"

    def clientAddress(self, peer: Any, forwardedFor: str | bytes | None) -> str:
        """
        The client's IP address, the key of the per-address limit and the
        SASL throttle: the connection's peer, or, when that peer is a trusted
        proxy, the rightmost X-Forwarded-For address that is not one (each
        proxy appends the address it saw, so the ones left of it are the
        client's own claims and could be forged).
        """
        host = getattr(peer, "host", "") or ""
        trusted = self.config.trusted_proxies
        if not forwardedFor or host not in trusted:
            return host
        if isinstance(forwardedFor, bytes):
            forwardedFor = forwardedFor.decode("latin-1")
        for candidate in reversed(forwardedFor.split(",")):
            candidate = candidate.strip()
            try:
                address = str(ipaddress.ip_address(candidate))
            except ValueError:
                return host  # a proxy we trust sent garbage: count the proxy
            if address not in trusted:
                return address
        return host

    def requestAddress(self, request: server.Request) -> str:
        """L{clientAddress} of an HTTP request (all its X-Forwarded-For headers, in order)."""
        values = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
        return self.clientAddress(request.getClientAddress(), b",".join(values))

    def originAllowed(self, origin: str) -> bool:
        allowed = self.config.cors_origins
        return "*" in allowed or origin in allowed

    def cors(self, request: server.Request, preflight: bool = False) -> None:
        """CORS headers for an allowed Origin (none for others: the browser then refuses)."""
        origin = request.getHeader(b"origin")
        request.setHeader(b"vary", b"Origin")
        if origin is None or not self.originAllowed(origin.decode("latin-1")):
            return
        value = b"*" if "*" in self.config.cors_origins else origin
        request.setHeader(b"access-control-allow-origin", value)
        if preflight:
            request.setHeader(b"access-control-allow-methods", b"GET, POST, OPTIONS")
            request.setHeader(b"access-control-allow-headers", b"Content-Type")
            request.setHeader(b"access-control-max-age", b"86400")

    def links(self, request: server.Request) -> list[tuple[str, str]]:
        """The endpoint URLs for XEP-0156, from public_url or the request itself."""
        config = self.config
        base = config.public_url
        if not base:
            host = (request.getHeader(b"host") or b"").decode("latin-1")
            if not _HOST_HEADER.fullmatch(host):
                address = request.getHost()
                host = f"{address.host}:{address.port}"
            base = f"{'https' if self.isSecure(request) else 'http'}://{host}"
        links = []
        if config.bosh_path:
            links.append((REL_BOSH, base + config.bosh_path))
        if config.websocket_path:
            links.append((REL_WEBSOCKET, "ws" + base[len("http") :] + config.websocket_path))
        return links

    # -- lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """End every web session (system-shutdown) and cancel their timers."""
        self.bosh.stop()
        self.websocket.stop()


def inProcessFrontend(server: XMPPServer, ctx: Any) -> WebFrontend:
    """The site of an XMPPServer: each web session feeds a ClientSession of its own."""
    from jabberd import bus as B
    from components.bosh.inprocess import InProcess

    c2s = server.config.c2s
    frontend = WebFrontend(server.config.http, server.hosts, InProcess(ctx), server.reactor, Limits(c2s.stanza_size_limit, c2s.max_depth))
    server.bus.on(B.SERVER_STOPPING, frontend.stop)
    return frontend
