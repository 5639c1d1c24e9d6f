"""
Where a peer server listens: static routes, DNS SRV, then A/AAAA.

RFC 6120 §3.2 with XEP-0368: C{_xmpps-server._tcp} (direct TLS) and
C{_xmpp-server._tcp} (STARTTLS) are both asked and merged into one list in
RFC 2782 order, so the peer's operator decides what is tried first.  No
records means the domain itself on 5269.  A lone "." target at
C{_xmpp-server._tcp} means the domain offers no federation.

The resolver is any Twisted IResolver (the system's by default, one asking
a twisted.names server on loopback in tests), passed as a function that
returns it, so none is made when static routes and addresses need none.
"""

from __future__ import annotations

import random
import socket
from typing import Any

from twisted.internet import defer
from twisted.names import dns

from jabberd.srv import Target, isAddress, lookupSRV, order

__all__ = ["Target", "NoService", "targets", "addresses", "order", "parseHostPort"]

DEFAULT_PORT = 5269
#: seconds per try of one DNS query (twisted.names retries with each)
LOOKUP_TIMEOUT = (2, 4)



class NoService(Exception):
    """The domain publishes that it has no XMPP server, or cannot be resolved at all."""


def parseHostPort(value: str) -> Target:
    """A static route "host:port" or "[v6]:port" (already checked by the config)."""
    host, _, port = value.rpartition(":")
    return Target(host.strip("[]"), int(port), False)


async def targets(domain: str, getResolver: Any, routes: dict[str, str] | None = None, rng: random.Random | None = None) -> list[Target]:
    """
    The places to try for C{domain}, best first.

    @raise NoService: the domain says it has no XMPP server.
    """
    if routes and domain in routes:
        return [parseHostPort(routes[domain])]
    if isAddress(domain.strip("[]")):
        return [Target(domain.strip("[]"), DEFAULT_PORT)]
    resolver = getResolver()
    direct, starttls = await defer.gatherResults(
        [
            defer.ensureDeferred(lookupSRV(resolver, f"_xmpps-server._tcp.{domain}.", True, LOOKUP_TIMEOUT)),
            defer.ensureDeferred(lookupSRV(resolver, f"_xmpp-server._tcp.{domain}.", False, LOOKUP_TIMEOUT)),
        ]
    )
    records = (direct or []) + (starttls or [])
    if records:
        return order(records, rng)
    if starttls is None:
        raise NoService(f"{domain} publishes that it has no XMPP server")
    return [Target(domain, DEFAULT_PORT)]


async def addresses(host: str, getResolver: Any) -> list[str]:
    """The IPv6 and IPv4 addresses of C{host} (itself when it is one); [] when none."""
    if isAddress(host):
        return [host]
    resolver = getResolver()
    results = await defer.DeferredList(
        [
            resolver.lookupIPV6Address(host + ".", timeout=LOOKUP_TIMEOUT),
            resolver.lookupAddress(host + ".", timeout=LOOKUP_TIMEOUT),
        ],
        consumeErrors=True,
    )
    found: list[str] = []
    for ok, result in results:
        if not ok:
            continue
        for answer in result[0]:
            if answer.type in (dns.A, dns.AAAA):
                address = answer.payload.dottedQuad() if answer.type == dns.A else socket.inet_ntop(socket.AF_INET6, answer.payload.address)
                if address not in found:
                    found.append(address)
    return found
