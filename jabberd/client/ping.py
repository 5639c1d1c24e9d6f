"""
XMPP Ping (XEP-0199): answering pings, and timing a round trip to anyone.

A reply of any kind proves the path works; an error reply (e.g. a server
without the feature) still fails the Deferred with its StanzaError,
because callers who ask "does it support ping" need to know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.subprotocols import XMPPHandler

if TYPE_CHECKING:
    from jabberd.client.client import Client

__all__ = ["NS_PING", "Ping"]

NS_PING = "urn:xmpp:ping"


class Ping(XMPPHandler):
    """C{client.ping(jid)} fires with the round-trip time in seconds."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        client.disco.addFeature(NS_PING)

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(f"/iq[@type='get']/ping[@xmlns='{NS_PING}']", self._onPing)

    def _onPing(self, iq: domish.Element) -> None:
        iq.handled = True
        self.send(xmlstream.toResponse(iq, "result"))

    def __call__(self, entity: JID | str | None = None) -> defer.Deferred:
        """Ping C{entity} (default: our server) and fire with the seconds it took."""
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["to"] = (entity if isinstance(entity, str) else entity.full()) if entity is not None else self.client.jid.host
        iq.addElement((NS_PING, "ping"))
        started = self.client.reactor.seconds()
        return self.client.request(iq).addCallback(lambda _: self.client.reactor.seconds() - started)
