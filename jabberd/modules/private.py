"""
Private XML storage (XEP-0049): any XML an account's clients want to keep on
the server, stored and returned by the namespace of its root element.

- set, to oneself: each child of C{<query/>} is stored under its namespace;
  several children in one namespace are kept together (§2.3 allows that),
  and a namespace in the set replaces what was stored for it;
- get, to oneself: exactly one child names the namespace wanted; the reply
  holds what is stored for it, or the child as sent when nothing is;
- a query without a child: not-acceptable (§2.3 "MUST"; the "Bad Format" of
  its later example is not an RFC 6120 stanza condition); a get naming more
  than one: bad-request (§2.3: one namespace per get);
- reserved namespaces (those starting with C{jabber:} or
  C{http://jabber.org/}, and C{vcard-temp}): not-acceptable (§2.3);
- another account's storage: forbidden (§2.3, the preferred condition);
- an account's total above C{[limits] max_private_size} bytes:
  not-acceptable, and nothing of that set is stored.
"""

from __future__ import annotations

from jabberd import bus as B
from jabberd.module import Module
from jabberd.store.userdata import QuotaExceeded, get_private_txn, set_private_txn
from jabberd.xmlstream import iqResult

NS_PRIVATE = "jabber:iq:private"
RESERVED_PREFIXES = ("jabber:", "http://jabber.org/")
RESERVED = ("vcard-temp",)


def reserved(namespace: str) -> bool:
    """Whether XEP-0049 reserves C{namespace} (no client data may be stored in it)."""
    return namespace in RESERVED or namespace.startswith(RESERVED_PREFIXES)


class PrivateModule(Module):
    """jabber:iq:private: an account's private XML, by namespace."""

    name = "private"
    features = (NS_PRIVATE,)  # as Prosody and ejabberd advertise it
    accountFeatures = (NS_PRIVATE,)

    def hooks(self):
        return [
            (B.iq("get", B.SELF, NS_PRIVATE, "query"), self.get, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_PRIVATE, "query"), self.set, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_PRIVATE, "query"), self.forbidden, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_PRIVATE, "query"), self.forbidden, B.PRIORITY_NORMAL),
        ]

    def _children(self, iq) -> list:
        return list(next(iq.elements()).elements())

    def _check(self, iq, children: list) -> bool:
        """Bounce C{iq} if its children break a rule of §2.3; True when it may proceed."""
        if not children:
            self.server.router.bounce(iq, "not-acceptable", "name at least one element with its own namespace")
            return False
        for child in children:
            if reserved(child.uri or ""):
                self.server.router.bounce(iq, "not-acceptable", f"the namespace {child.uri} is reserved")
                return False
        return True

    def get(self, iq, fromJID, toJID) -> bool:
        children = self._children(iq)
        if not self._check(iq, children):
            return True
        if len(children) > 1:
            self.server.router.bounce(iq, "bad-request", "ask for one namespace at a time")
            return True
        asked = children[0]
        d = self.server.store.runInteraction("get_private", get_private_txn, toJID.host, toJID.user, asked.uri)
        d.addCallback(self._send, iq, asked)
        d.addErrback(self._failed, iq)
        return True

    def _send(self, xml: str | None, iq, asked) -> None:
        reply = iqResult(iq)
        query = reply.addElement((NS_PRIVATE, "query"))
        if xml is None:
            query.addChild(asked)
        else:
            query.addRawXml(xml)
        self.server.router.route(reply)

    def set(self, iq, fromJID, toJID) -> bool:
        children = self._children(iq)
        if not self._check(iq, children):
            return True
        data: dict[str, str] = {}
        for child in children:
            data[child.uri] = data.get(child.uri, "") + child.toXml()
        limit = self.server.config.limits.max_private_size
        d = self.server.store.runInteraction("set_private", set_private_txn, toJID.host, toJID.user, data, limit)
        d.addCallback(self._stored, iq)
        d.addErrback(self._failed, iq)
        return True

    def _stored(self, stored: bool, iq) -> None:
        if stored:
            self.server.router.route(iqResult(iq))
        else:  # the account was deleted meanwhile
            self.server.router.bounce(iq, "item-not-found")

    def forbidden(self, iq, fromJID, toJID) -> bool:
        self.server.router.bounce(iq, "forbidden", "private storage belongs to its account alone")
        return True

    def _failed(self, failure, iq) -> None:
        if failure.check(QuotaExceeded):
            limit = self.server.config.limits.max_private_size
            self.server.router.bounce(iq, "not-acceptable", f"private storage is limited to {limit} bytes")
            return
        self.storeFailed(failure, iq, "a private storage request")
