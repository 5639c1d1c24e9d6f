"""
The PROXY protocol (HAProxy's, v1 text and v2 binary) on listeners written
C{haproxy:...} in the configuration, e.g. C{"haproxy:tcp:5224:interface=127.0.0.1"}.

A proxy in front of the server (HAProxy, nginx's stream proxy, the
standalone BOSH/WebSocket connection manager with C{[core] proxy_protocol})
opens each connection with one header naming the client's address; from
then on the connection's C{getPeer()} is that address, so per-address
limits, the SASL throttle and the logs see the client, not the proxy.

Twisted parses the header (the parsers of L{twisted.protocols.haproxy},
whose modules are private: check them on a Twisted upgrade); this wrapper
differs from Twisted's own in what the wrapped protocol sees:

 - the wrapped protocol is connected only once the header has been read,
   so whatever it does in C{connectionMade} (count the address, refuse
   it) uses the client's address, never the proxy's;
 - a header split across reads is waited for (Twisted's wrapper refuses a
   first read shorter than 16 bytes), at most L{HEADER_TIMEOUT} seconds;
 - a malformed header, a missing one, or a source that is not an IP
   address of the family it claims closes the connection, unread and
   unanswered, and the listener goes on serving the others.

Only a C{haproxy:} listener reads a header, so a client of any other
listener cannot claim an address: the trust is in who can reach the
listener (bind it to loopback or a private interface).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from twisted.internet import endpoints
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._info import ProxyInfo
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper, HAProxyWrappingFactory
from zope.interface import directlyProvides, implementer, providedBy

PREFIX = "haproxy:"

#: Seconds a connection may take to send its header: a proxy sends it at once.
HEADER_TIMEOUT = 10.0

_V1 = b"PROXY "
_V2 = V2Parser.PREFIX  # 12 bytes, then version/command, family, length (16 in all)


class ProxyHeaderProtocol(HAProxyProtocolWrapper):
    """One connection of a C{haproxy:} listener: read the header, then connect the wrapped protocol."""

    log = Logger()
    factory: ProxyWrappingFactory

    def __init__(self, factory: ProxyWrappingFactory, wrappedProtocol: Any) -> None:
        super().__init__(factory, wrappedProtocol)
        self._pending = b""
        self._timeout: Any = None
        self._connected = False  # the wrapped protocol was connected

    def makeConnection(self, transport: Any) -> None:
        # ProtocolWrapper.makeConnection without connecting the wrapped protocol yet.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timeout = self.factory.reactor.callLater(self.factory.timeout, self._refuse, "no PROXY header in time")

    def dataReceived(self, data: bytes) -> None:
        if self._connected:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._timeout is None:
            return  # refused, closing
        self._pending += data
        try:
            info, rest = self._parseHeader()
        except (InvalidProxyHeader, ValueError, IndexError, struct.error):
            self._refuse("malformed PROXY header")
            return
        if info is None:
            return  # incomplete: wait for more
        self._proxyInfo = info
        self._timeout.cancel()
        self._timeout = None
        self._connected = True
        self.wrappedProtocol.makeConnection(self)
        if rest and self.connected:
            self.wrappedProtocol.dataReceived(rest)

    def _parseHeader(self) -> tuple[ProxyInfo | None, bytes]:
        """(info, bytes after it) once the header is complete, (None, b"") before; raises if malformed."""
        data = self._pending
        if data.startswith(_V1):
            if b"\r\n" not in data:
                if len(data) > 107:  # the longest v1 header (TCP6) with its CRLF
                    raise InvalidProxyHeader()
                return None, b""
            line, rest = data.split(b"\r\n", 1)
            if len(line) > 105:
                raise InvalidProxyHeader()
            info = V1Parser.parse(line)
        elif data.startswith(_V2) and len(data) >= 16:
            if data[12] & 0xF0 != 0x20:
                raise InvalidProxyHeader()
            size = 16 + int.from_bytes(data[14:16], "big")
            if len(data) < size:
                return None, b""
            info, rest = V2Parser.parse(data[:size]), data[size:]
        elif _V1.startswith(data[:6]) or _V2.startswith(data[:12]):
            return None, b""  # a prefix of a signature so far
        else:
            raise InvalidProxyHeader()
        _checkAddress(info.source)
        _checkAddress(info.destination)
        return info, rest

    def _refuse(self, why: str) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        self._pending = b""
        peer = self.transport.getPeer()
        self.log.info("{why} from {address}; connection closed", why=why, address=getattr(peer, "host", peer))
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        if self._connected:
            super().connectionLost(reason)
        else:
            self.factory.unregisterProtocol(self)
            self.wrappedProtocol = None


def _checkAddress(address: Any) -> None:
    """An address the header names must be an IP address of its own family (the source becomes a limit key)."""
    if address is None:
        return
    if isinstance(address, IPv4Address):
        ipaddress.IPv4Address(address.host)
    elif isinstance(address, IPv6Address):
        ipaddress.IPv6Address(address.host)
    else:
        raise InvalidProxyHeader()  # AF_UNIX in a v2 header: not a client address
    if not 0 <= address.port <= 65535:
        raise InvalidProxyHeader()


class ProxyWrappingFactory(HAProxyWrappingFactory):
    """Wraps a listener's factory: every connection starts with a PROXY header."""

    protocol = ProxyHeaderProtocol

    def __init__(self, wrappedFactory: Any, reactor: Any, timeout: float = HEADER_TIMEOUT) -> None:
        super().__init__(wrappedFactory)
        self.reactor = reactor
        #: seconds a connection may take to send its header
        self.timeout = timeout

    def stopFactory(self) -> None:
        """The listener closed: connections still waiting for their header will never be served."""
        for p in list(self.protocols):
            if not p._connected and p.transport is not None:
                p.transport.abortConnection()
        super().stopFactory()


@implementer(IStreamServerEndpoint)
class ProxyServerEndpoint:
    """A server endpoint whose connections each start with a PROXY header."""

    def __init__(self, inner: IStreamServerEndpoint, reactor: Any) -> None:
        self.inner = inner
        self.reactor = reactor

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        return self.inner.listen(ProxyWrappingFactory(factory, self.reactor))


def serverFromString(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    L{endpoints.serverFromString}, except that C{haproxy:DESCRIPTION} gets
    this module's wrapper (not Twisted's) around the endpoint DESCRIPTION.
    """
    if description.startswith(PREFIX):
        return ProxyServerEndpoint(endpoints.serverFromString(reactor, description[len(PREFIX):]), reactor)
    return endpoints.serverFromString(reactor, description)


def v1Header(source: str, destination: Any) -> bytes:
    """
    The PROXY v1 line a proxy sends first: C{source} is the client's IP
    address (port 0: a web session spans many HTTP connections, so it has
    no one port), C{destination} the address the proxy connected to.  An
    unusable C{source} gives C{PROXY UNKNOWN}: the server then counts the
    proxy itself.
    """
    try:
        client = ipaddress.ip_address(source)
    except ValueError:
        return b"PROXY UNKNOWN\r\n"
    family = "TCP4" if client.version == 4 else "TCP6"
    host, port = getattr(destination, "host", ""), getattr(destination, "port", 0)
    try:
        target = ipaddress.ip_address(host)
    except ValueError:
        target = None
    if target is None or target.version != client.version:
        target, port = ipaddress.ip_address("0.0.0.0" if client.version == 4 else "::"), 0
    return f"PROXY {family} {client} {target} 0 {port}\r\n".encode("ascii")
