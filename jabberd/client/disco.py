"""
Service discovery (XEP-0030): asking others, and answering for ourselves.

Asking returns tx_xmpp's L{DiscoInfo} / L{DiscoItems} (and, for entity
capabilities, the raw C{<query/>}, since only the wire form can be
verified). Answering: our identity (client/pc by default, client/bot for
automated tools) and the features of the handlers we run, also at our
caps node C{node#ver} as XEP-0115 §6.2 requires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.disco import NS_DISCO_INFO, NS_DISCO_ITEMS, DiscoFeature, DiscoIdentity, DiscoInfo, DiscoItems
from tx_xmpp.subprotocols import XMPPHandler

if TYPE_CHECKING:
    from jabberd.client.client import Client

__all__ = ["NS_DISCO_INFO", "NS_DISCO_ITEMS", "Disco"]

_INFO_GET = f"/iq[@type='get']/query[@xmlns='{NS_DISCO_INFO}']"
_ITEMS_GET = f"/iq[@type='get']/query[@xmlns='{NS_DISCO_ITEMS}']"


class Disco(XMPPHandler):
    """
    @ivar identities: what we are (XEP-0030 §3.1); one client identity.
    @ivar features: the namespaces we support; handlers add theirs.
    """

    def __init__(self, client: Client, category: str = "client", type: str = "pc", name: str = "jabberd-client") -> None:
        super().__init__()
        self.client = client
        self.identities = [DiscoIdentity(category, type, name)]
        self.features: list[str] = [NS_DISCO_INFO, NS_DISCO_ITEMS]

    def addFeature(self, namespace: str) -> None:
        """Announce that we support C{namespace} (idempotent)."""
        if namespace not in self.features:
            self.features.append(namespace)

    def ownInfo(self) -> DiscoInfo:
        """Our disco#info, as we answer it and as our caps hash is computed."""
        info = DiscoInfo()
        for identity in self.identities:
            info.append(identity)
        for feature in self.features:
            info.append(DiscoFeature(feature))
        return info

    # -- answering ---------------------------------------------------------------

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(_INFO_GET, self._onInfo)
        self.xmlstream.addObserver(_ITEMS_GET, self._onItems)

    def _ourNode(self, node: str) -> bool:
        caps = self.client.caps
        return not node or node == f"{caps.node}#{caps.ver}"

    def _onInfo(self, iq: domish.Element) -> None:
        iq.handled = True
        node = iq.query.getAttribute("node", "")
        if not self._ourNode(node):
            self.send(error.StanzaError("item-not-found").toResponse(iq))
            return
        info = self.ownInfo()
        info.nodeIdentifier = node
        reply = xmlstream.toResponse(iq, "result")
        reply.addChild(info.toElement())
        self.send(reply)

    def _onItems(self, iq: domish.Element) -> None:
        iq.handled = True
        node = iq.query.getAttribute("node", "")
        if node:
            self.send(error.StanzaError("item-not-found").toResponse(iq))
            return
        reply = xmlstream.toResponse(iq, "result")
        reply.addChild(DiscoItems().toElement())
        self.send(reply)

    # -- asking ------------------------------------------------------------------

    def _query(self, namespace: str, entity: JID | str | None, node: str) -> defer.Deferred:
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        if entity is not None:
            iq["to"] = entity if isinstance(entity, str) else entity.full()
        query = iq.addElement((namespace, "query"))
        if node:
            query["node"] = node
        d = self.client.request(iq)
        d.addCallback(lambda result: result.query if result.query is not None else domish.Element((namespace, "query")))
        return d

    def infoElement(self, entity: JID | str | None, node: str = "") -> defer.Deferred:
        """The raw disco#info C{<query/>} of C{entity} (for verifying caps)."""
        return self._query(NS_DISCO_INFO, entity, node)

    def info(self, entity: JID | str | None, node: str = "") -> defer.Deferred:
        """C{entity}'s disco#info as a L{DiscoInfo}; StanzaError if it refuses."""
        return self.infoElement(entity, node).addCallback(DiscoInfo.fromElement)

    def items(self, entity: JID | str | None, node: str = "") -> defer.Deferred:
        """C{entity}'s disco#items as L{DiscoItems}; StanzaError if it refuses."""
        return self._query(NS_DISCO_ITEMS, entity, node).addCallback(DiscoItems.fromElement)
