"""
The tx_xmpp handlers of a MUC component, next to L{MUCService}:

- L{MucDiscoHandler}: tx_xmpp's DiscoHandler (it asks every IDisco handler
  of the component), except that it leaves disco requests to occupant JIDs
  to the room (they are relayed, §6.7) and parses addresses through the
  server's bounded JID cache instead of Twisted's unbounded C{internJID};
- L{MucPingHandler}: XEP-0199 ping of the service and its rooms (a ping to
  an occupant is the XEP-0410 self-ping, answered by the room);
- tx_xmpp's FallbackHandler: service-unavailable for any other request.
"""

from __future__ import annotations

from twisted.words.protocols.jabber import error as jerror
from tx_xmpp.data_form import Form
from tx_xmpp.disco import DISCO_INFO, DISCO_ITEMS, DiscoHandler, DiscoIdentity, DiscoInfo, DiscoItems
from tx_xmpp.generic import FallbackHandler
from tx_xmpp.ping import PingHandler

from components.muc.constants import NODE_ROOMUSER
from jabberd import jid as J

__all__ = ["MucDiscoHandler", "MucPingHandler", "FallbackHandler", "toOccupant"]


def toOccupant(iq) -> bool:
    """Whether C{iq} is addressed to an occupant (room@service/nick)."""
    return "/" in (iq.getAttribute("to") or "")


def _addresses(iq):
    try:
        sender = J.parse(iq["from"]) if iq.getAttribute("from") else None
        recipient = J.parse(iq["to"])
    except (KeyError, J.InvalidJID):
        raise jerror.StanzaError("jid-malformed") from None
    return sender, recipient


def _node(iq, uri: str) -> str:
    query = next(iq.elements(uri, "query"), None)
    return query.getAttribute("node", "") if query is not None else ""


class MucDiscoHandler(DiscoHandler):
    """DiscoHandler for a MUC domain (see the module docstring)."""

    #: Nodes whose empty answer is an empty result, not item-not-found (§7.12).
    emptyNodes = frozenset((NODE_ROOMUSER,))

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(DISCO_INFO, self._maybe)
        self.xmlstream.addObserver(DISCO_ITEMS, self._maybe)

    def _maybe(self, iq) -> None:
        if iq.handled or toOccupant(iq):
            return
        self.handleRequest(iq)

    def _onDiscoInfo(self, iq):
        from tx_xmpp.disco import NS_DISCO_INFO

        sender, recipient = _addresses(iq)
        node = _node(iq, NS_DISCO_INFO)

        def toResponse(info):
            if node and not info and node not in self.emptyNodes:
                raise jerror.StanzaError("item-not-found")
            response = DiscoInfo()
            response.nodeIdentifier = node
            # Identities, then features, then forms, whichever handler said what.
            for item in sorted(info, key=lambda i: 0 if isinstance(i, DiscoIdentity) else 2 if isinstance(i, Form) else 1):
                response.append(item)
            return response.toElement()

        return self.info(sender, recipient, node).addCallback(toResponse)

    def _onDiscoItems(self, iq):
        from tx_xmpp.disco import NS_DISCO_ITEMS

        sender, recipient = _addresses(iq)
        node = _node(iq, NS_DISCO_ITEMS)

        def toResponse(items):
            response = DiscoItems()
            response.nodeIdentifier = node
            for item in items:
                response.append(item)
            return response.toElement()

        return self.items(sender, recipient, node).addCallback(toResponse)


class MucPingHandler(PingHandler):
    """XEP-0199 for the service and rooms; occupants' pings are the room's (XEP-0410)."""

    def onPing(self, iq) -> None:
        if iq.handled or toOccupant(iq):
            return
        PingHandler.onPing(self, iq)


