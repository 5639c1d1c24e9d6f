"""
Where to connect for a domain: DNS SRV (RFC 6120 §3.2, XEP-0368).

Both C{_xmpps-client._tcp} (direct TLS) and C{_xmpp-client._tcp} (STARTTLS)
are looked up and merged into one list ordered by priority and weight
(RFC 2782), so the server operator decides which kind is tried first. No
records at all means the fallback: the domain itself on 5222 (5223 for
direct TLS). A lone record with target "." means "no such service here":
for xmpp-client that forbids the fallback.

The resolver is any Twisted IResolver (C{lookupService}), so tests run a
tiny twisted.names server on loopback and pass a resolver that asks it.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer

from jabberd.srv import Target, isAddress, lookupSRV, order

from jabberd.client.errors import ConnectionFailed

__all__ = ["Target", "defaultResolver", "order", "resolve"]

#: Seconds per retry of each SRV query; short, since there is a fallback.
LOOKUP_TIMEOUT = (1, 3)

STARTTLS_PORT = 5222
DIRECT_TLS_PORT = 5223


def defaultResolver() -> Any:
    """The system's resolver (resolv.conf, hosts), made on first use."""
    from twisted.names import client

    return client.createResolver()


async def resolve(
    domain: str,
    resolver: Any = None,
    directTLS: bool | None = None,
    rng: random.Random | None = None,
) -> list[Target]:
    """
    The targets to try for C{domain}, best first.

    @param directTLS: None: whatever the records say (both kinds); True:
        only direct TLS; False: only STARTTLS.
    @raise ConnectionFailed: the domain publishes that it has no client service.
    """
    fallbackPort = DIRECT_TLS_PORT if directTLS else STARTTLS_PORT
    fallback = [Target(domain, fallbackPort, bool(directTLS))]
    # RFC 6761 §6.3: "localhost" is loopback without asking DNS; literals have no SRV.
    if isAddress(domain) or domain == "localhost" or domain.endswith(".localhost"):
        return fallback
    if resolver is None:
        resolver = defaultResolver()
    lookups = []
    if directTLS is not False:
        lookups.append(lookupSRV(resolver, f"_xmpps-client._tcp.{domain}", True, LOOKUP_TIMEOUT))
    if directTLS is not True:
        lookups.append(lookupSRV(resolver, f"_xmpp-client._tcp.{domain}", False, LOOKUP_TIMEOUT))
    results = await defer.gatherResults([defer.ensureDeferred(lookup) for lookup in lookups])
    records = [r for found in results if found for r in found]
    if records:
        return order(records, rng)
    # XEP-0368: "." for xmpps-client only disables direct TLS; for
    # xmpp-client (RFC 6120 §3.2.1) it forbids the A/AAAA fallback.
    startTLSRefused = directTLS is not True and results[-1] is None
    directRefused = directTLS is True and results[0] is None
    if startTLSRefused or directRefused:
        raise ConnectionFailed(f"{domain} publishes that it offers no XMPP client service")
    return fallback
