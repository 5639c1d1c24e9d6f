"""
DNS SRV (RFC 2782) for XMPP: the lookup and the order of the targets,
shared by federation (jabberd/s2s/resolve.py) and the client library
(jabberd/client/srv.py), which each apply their own services and
fallbacks.

A pure helper like L{jabberd.scram}: it imports nothing of the server.
The resolver is any Twisted IResolver, so tests ask a twisted.names
server on loopback.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.error import TimeoutError as InternetTimeoutError
from twisted.names import dns
from twisted.names.error import DNSNameError, DNSServerError, DomainError, ResolverError

__all__ = ["Target", "SRVRecord", "DNS_ERRORS", "order", "lookupSRV", "isAddress"]

#: What a failed lookup raises: all mean "no records here".
DNS_ERRORS = (DNSNameError, DomainError, DNSServerError, ResolverError, InternetTimeoutError, defer.TimeoutError)


@dataclass(frozen=True)
class Target:
    """One place to try: a host name or address, a port, and whether TLS starts at once."""

    host: str
    port: int
    directTLS: bool = False


@dataclass(frozen=True)
class SRVRecord:
    """One SRV answer, reduced to what ordering needs."""

    priority: int
    weight: int
    target: Target


def isAddress(host: str) -> bool:
    """Whether C{host} is an IP address literal (with or without IPv6 brackets)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def order(records: list[SRVRecord], rng: random.Random | None = None) -> list[Target]:
    """
    RFC 2782 order: by priority, then within a priority a weighted random
    draw (weight 0 records first in the running sum, so they are rarely
    picked first when others have weight).
    """
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


async def lookupSRV(resolver: Any, name: str, directTLS: bool, timeout: tuple[int, ...]) -> list[SRVRecord] | None:
    """
    The SRV records at C{name}: [] when there are none (or the lookup
    failed), None when the domain said "no such service" (a lone "." target).
    """
    try:
        answers, _authority, _additional = await resolver.lookupService(name, timeout=timeout)
    except DNS_ERRORS:
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
        records.append(SRVRecord(srv.priority, srv.weight, Target(host, srv.port, directTLS)))
    return records
