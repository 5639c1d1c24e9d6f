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

import ipaddress
import random
import socket
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.error import TimeoutError as InternetTimeoutError
from twisted.names import dns
from twisted.names.error import DNSNameError, DNSServerError, DomainError, ResolverError

__all__ = ["Target", "NoService", "targets", "addresses", "order", "parseHostPort"]

DEFAULT_PORT = 5269
#: seconds per try of one DNS query (twisted.names retries with each)
LOOKUP_TIMEOUT = (2, 4)

_DNS_ERRORS = (DNSNameError, DomainError, DNSServerError, ResolverError, InternetTimeoutError, defer.TimeoutError)


class NoService(Exception):
    """The domain publishes that it has no XMPP server, or cannot be resolved at all."""


@dataclass(frozen=True)
class Target:
    """One place to try: a host name or address, a port, and whether TLS starts at once."""

    host: str
    port: int
    directTLS: bool = False


@dataclass(frozen=True)
class _Record:
    priority: int
    weight: int
    target: Target


def order(records: list[_Record], rng: random.Random | None = None) -> list[Target]:
    """RFC 2782: by priority; within one, a draw weighted by weight (0-weight ones rarely first)."""
    rng = rng or random.Random()
    result: list[Target] = []
    for priority in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            pick = rng.randint(0, sum(r.weight for r in group))
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    break
            result.append(group.pop(index).target)
    return result


def parseHostPort(value: str) -> Target:
    """A static route "host:port" or "[v6]:port" (already checked by the config)."""
    host, _, port = value.rpartition(":")
    return Target(host.strip("[]"), int(port), False)


def _isAddress(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def _srv(resolver: Any, name: str, directTLS: bool) -> list[_Record] | None:
    """The SRV records at C{name}: [] when none, None for the "no service" record."""
    try:
        answers, _authority, _additional = await resolver.lookupService(name, timeout=LOOKUP_TIMEOUT)
    except _DNS_ERRORS:
        return []
    records = []
    for answer in answers:
        if answer.type != dns.SRV:
            continue
        srv = answer.payload
        host = str(srv.target).rstrip(".")
        if not host:
            if len(answers) == 1:
                return None
            continue
        records.append(_Record(srv.priority, srv.weight, Target(host, srv.port, directTLS)))
    return records


async def targets(domain: str, getResolver: Any, routes: dict[str, str] | None = None, rng: random.Random | None = None) -> list[Target]:
    """
    The places to try for C{domain}, best first.

    @raise NoService: the domain says it has no XMPP server.
    """
    if routes and domain in routes:
        return [parseHostPort(routes[domain])]
    if _isAddress(domain.strip("[]")):
        return [Target(domain.strip("[]"), DEFAULT_PORT)]
    resolver = getResolver()
    direct, starttls = await defer.gatherResults(
        [
            defer.ensureDeferred(_srv(resolver, f"_xmpps-server._tcp.{domain}.", True)),
            defer.ensureDeferred(_srv(resolver, f"_xmpp-server._tcp.{domain}.", False)),
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
    if _isAddress(host):
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
