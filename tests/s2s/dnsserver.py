"""
A tiny authoritative DNS server for the interop tests, run as its own
process (Prosody and ejabberd outlive single tests, so it must too):

    python -m tests.s2s.dnsserver PORT ZONE JSON

JSON maps names to records: {"a.example": {"A": ["127.0.0.1"]},
"_xmpp-server._tcp.a.example": {"SRV": [[0, 0, 5269, "a.example"]]}}.
It answers on 127.0.0.1 only, UDP and TCP, and prints "ready" once listening.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.internet import reactor
from twisted.names import dns, server

from tests.s2s.support import MemoryAuthority


def records(spec: dict) -> dict:
    out: dict = {}
    for name, kinds in spec.items():
        found = out.setdefault(name, [])
        for address in kinds.get("A", []):
            found.append(dns.Record_A(address, ttl=300))
        for address in kinds.get("AAAA", []):
            found.append(dns.Record_AAAA(address, ttl=300))
        for priority, weight, port, target in kinds.get("SRV", []):
            found.append(dns.Record_SRV(priority, weight, port, target.encode(), ttl=300))
    return out


LOG = os.environ.get("JABBERD_DNS_LOG")


class Factory(server.DNSServerFactory):
    """Echoes the query's RD flag, as RFC 1035 §4.1.1 says (Erlang's resolver rejects replies that don't)."""

    def handleQuery(self, message, protocol, address):
        if LOG:
            with open(LOG, "a") as f:
                f.write(f"{address} {[str(q) for q in message.queries]}\n")
        return super().handleQuery(message, protocol, address)

    def _responseFromMessage(self, message, *args, **kwargs):
        response = super()._responseFromMessage(message, *args, **kwargs)
        response.recDes = message.recDes
        return response


def main() -> None:
    port, zone, spec = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    factory = Factory(authorities=[MemoryAuthority(zone, records(spec))])
    reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
