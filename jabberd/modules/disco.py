"""
Service discovery: XEP-0030, with XEP-0128 extended info carrying the
XEP-0157 contact addresses.

What the server says about itself is generated, never a hand-kept list:
the features are those the loaded modules declare (C{Module.features} for
a hosted domain, C{Module.accountFeatures} for an account's bare JID) and
the items of a domain are the component domains registered under it on
the router.

Other modules add to an answer through four bus events, each called with a
L{DiscoRequest} (notify: every handler runs):

- C{discoInfo(HOST)} / C{discoInfo(ACCOUNT)}: disco#info of a hosted domain
  / of an account's bare JID: add identities, features or forms to
  C{request.query};
- C{discoItems(HOST)} / C{discoItems(ACCOUNT)}: disco#items: add items
  (PEP lists its nodes here).

A request with a C{node} is offered to the same handlers; one that knows the
node fills the query and sets C{request.found}, and when none does the
answer is item-not-found.  A handler that needs the store passes its
Deferred to C{request.wait}; the reply goes out when all have fired.

Accounts (XEP-0030 §8): the server answers for an account's bare JID only to
the account itself and to entities allowed to see its presence (a "from" or
"both" subscription in its roster).  Anyone else gets service-unavailable
for disco#info and an empty result for disco#items, exactly what a
non-existent account gets (XEP-0030 §8 requires both), so neither the
account's existence nor its features leak.  Prosody applies the same rule;
ejabberd too, answering subscription-required.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.module import Module
from jabberd.store.userdata import presence_authorized_txn
from jabberd.xmlstream import NS_CLIENT, iqResult

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"
NS_SERVERINFO = "http://jabber.org/network/serverinfo"  # XEP-0157 FORM_TYPE

HOST = "host"
ACCOUNT = "account"

#: The server's identity on disco#info (XEP-0030 registry: server/im).
SERVER_NAME = "jabberd"


def discoInfo(target: str) -> tuple:
    """Bus key for adding to disco#info of C{target}: L{HOST} or L{ACCOUNT}."""
    return ("disco-info", target)


def discoItems(target: str) -> tuple:
    """Bus key for adding to disco#items of C{target}: L{HOST} or L{ACCOUNT}."""
    return ("disco-items", target)


class DiscoRequest:
    """One disco request being answered: what the event handlers see and fill in."""

    __slots__ = ("iq", "query", "fromJID", "toJID", "node", "found", "_pending")

    def __init__(self, iq: domish.Element, query: domish.Element, fromJID: Any, toJID: Any, node: str | None) -> None:
        self.iq = iq
        self.query = query  # the reply's <query/>: add children here
        self.fromJID = fromJID  # the requester (a JID; None for the server itself)
        self.toJID = toJID  # the domain or bare JID asked about
        self.node = node  # the requested node, or None
        self.found = False  # set by the handler that knows self.node
        self._pending: list[defer.Deferred] = []

    def wait(self, d: defer.Deferred) -> None:
        """Hold the reply until C{d} fires (a handler that reads the store)."""
        self._pending.append(d)

    def addIdentity(self, category: str, type_: str, name: str | None = None) -> None:
        """Add an C{<identity/>} to a disco#info answer."""
        identity = self.query.addElement("identity")
        identity["category"] = category
        identity["type"] = type_
        if name:
            identity["name"] = name

    def addFeature(self, var: str) -> None:
        """Add a C{<feature/>} to a disco#info answer."""
        self.query.addElement("feature")["var"] = var

    def addItem(self, jid: str, node: str | None = None, name: str | None = None) -> None:
        """Add an C{<item/>} to a disco#items answer."""
        item = self.query.addElement("item")
        item["jid"] = jid
        if node:
            item["node"] = node
        if name:
            item["name"] = name


def serverInfoForm(addresses: dict[str, tuple[str, ...]]) -> domish.Element:
    """The XEP-0157 form (XEP-0128 extended info) listing C{addresses} by field name."""
    form = domish.Element((NS_DATA, "x"))
    form["type"] = "result"
    formType = form.addElement("field")
    formType["var"] = "FORM_TYPE"
    formType["type"] = "hidden"
    formType.addElement("value", content=NS_SERVERINFO)
    for var in sorted(addresses):
        field = form.addElement("field")
        field["var"] = var
        field["type"] = "list-multi"  # optional in a result (XEP-0004 §3.3), but clients need not guess
        for uri in addresses[var]:
            field.addElement("value", content=uri)
    return form


class DiscoModule(Module):
    """disco#info and disco#items for hosted domains and accounts' bare JIDs."""

    name = "disco"
    features = (NS_DISCO_INFO, NS_DISCO_ITEMS)
    accountFeatures = (NS_DISCO_INFO, NS_DISCO_ITEMS)

    def hooks(self):
        return [
            (B.iq("get", B.HOST, NS_DISCO_INFO, "query"), self.hostInfo, B.PRIORITY_NORMAL),
            (B.iq("get", B.HOST, NS_DISCO_ITEMS, "query"), self.hostItems, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_DISCO_INFO, "query"), self.accountInfo, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_DISCO_ITEMS, "query"), self.accountItems, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_DISCO_INFO, "query"), self.accountInfo, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_DISCO_ITEMS, "query"), self.accountItems, B.PRIORITY_NORMAL),
        ]

    # -- hosted domains --------------------------------------------------------

    def hostInfo(self, iq, fromJID, toJID) -> bool:
        request = self._request(iq, NS_DISCO_INFO, fromJID, toJID)
        if request.node is None:
            self._hostInfo(request)
        self._answer(request, discoInfo(HOST))
        return True

    def _hostInfo(self, request: DiscoRequest) -> None:
        request.addIdentity("server", "im", SERVER_NAME)
        for feature in self.server.modules.features():
            request.addFeature(feature)
        addresses = self.server.config.forHost(request.toJID.host).contact_addresses
        if addresses:
            request.query.addChild(serverInfoForm(addresses))

    def hostInfoQuery(self, host: str) -> defer.Deferred:
        """
        Fires with the disco#info C{<query/>} of the hosted domain C{host}
        (no node) exactly as a request is answered, the other modules'
        additions included: what the server's XEP-0115 caps hash.
        """
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq["to"] = host
        iq.addElement((NS_DISCO_INFO, "query"))
        toJID = J.parse(host)
        request = DiscoRequest(iq, domish.Element((NS_DISCO_INFO, "query")), None, toJID, None)
        self._hostInfo(request)
        self.server.bus.notify(discoInfo(HOST), request)
        d = defer.gatherResults(request._pending, consumeErrors=True) if request._pending else defer.succeed(None)
        return d.addCallback(lambda _: request.query)

    def hostItems(self, iq, fromJID, toJID) -> bool:
        request = self._request(iq, NS_DISCO_ITEMS, fromJID, toJID)
        if request.node is None:
            for domain in self.componentsOf(toJID.host):
                request.addItem(domain)
        self._answer(request, discoItems(HOST))
        return True

    def componentsOf(self, host: str) -> list[str]:
        """The registered (component) domains under C{host}, sorted: muc.example.org for example.org."""
        suffix = "." + host
        return sorted(d for d in self.server.router.domains if d.endswith(suffix))

    # -- accounts ------------------------------------------------------------------

    def accountInfo(self, iq, fromJID, toJID) -> bool:
        d = self._authorized(fromJID, toJID)
        d.addCallback(self._accountInfo, iq, fromJID, toJID)
        d.addErrback(self._failed, iq)
        return True

    def _accountInfo(self, authorized: bool, iq, fromJID, toJID) -> None:
        if not authorized:
            self.server.router.bounce(iq, "service-unavailable")
            return
        request = self._request(iq, NS_DISCO_INFO, fromJID, toJID)
        if request.node is None:
            request.addIdentity("account", "registered")
            for feature in self.server.modules.accountFeatures():
                request.addFeature(feature)
        self._answer(request, discoInfo(ACCOUNT))

    def accountItems(self, iq, fromJID, toJID) -> bool:
        d = self._authorized(fromJID, toJID)
        d.addCallback(self._accountItems, iq, fromJID, toJID)
        d.addErrback(self._failed, iq)
        return True

    def _accountItems(self, authorized: bool, iq, fromJID, toJID) -> None:
        request = self._request(iq, NS_DISCO_ITEMS, fromJID, toJID)
        if not authorized:
            # XEP-0030 §8: an empty result, as for an account that does not exist.
            self.server.router.route(self._reply(request))
            return
        self._answer(request, discoItems(ACCOUNT))

    def _authorized(self, fromJID, toJID) -> defer.Deferred:
        """Whether C{fromJID} may discover the account C{toJID} (itself, or sees its presence)."""
        if fromJID is None:
            return defer.succeed(False)
        if fromJID.user == toJID.user and fromJID.host == toJID.host:
            return defer.succeed(True)
        return self.server.store.runInteraction(
            "disco_authorized", presence_authorized_txn, toJID.host, toJID.user, fromJID.userhost()
        )

    # -- answering ---------------------------------------------------------------------

    def _request(self, iq, namespace: str, fromJID, toJID) -> DiscoRequest:
        asked = next(iq.elements())
        node = asked.getAttribute("node") or None
        query = domish.Element((namespace, "query"))
        if node is not None:
            query["node"] = node
        return DiscoRequest(iq, query, fromJID, toJID, node)

    def _reply(self, request: DiscoRequest) -> domish.Element:
        reply = iqResult(request.iq)
        reply.addChild(request.query)
        return reply

    def _answer(self, request: DiscoRequest, key: tuple) -> None:
        """Let the other modules add to C{request}, then send it (or item-not-found for an unknown node)."""
        self.server.bus.notify(key, request)
        d = defer.gatherResults(request._pending, consumeErrors=True) if request._pending else defer.succeed(None)
        d.addCallback(lambda _: self._send(request))
        d.addErrback(self._failed, request.iq)

    def _send(self, request: DiscoRequest) -> None:
        if request.node is not None and not request.found:
            self.server.router.bounce(request.iq, "item-not-found")
            return
        self.server.router.route(self._reply(request))

    def _failed(self, failure, iq) -> None:
        self.storeFailed(failure, iq, "service discovery")

