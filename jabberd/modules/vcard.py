"""
vcard-temp (XEP-0054): an account's vCard, stored by the server.

- get, to oneself (no 'to' or one's own bare JID): the stored vCard, or an
  empty C{<vCard/>} when none was ever set (§2.1 allows either that or an
  error; clients handle the empty one best);
- get, to another local account's bare JID: the server answers for it
  (§2.3) with the stored vCard; when there is none, or no such account,
  service-unavailable, the same in both cases so that accounts cannot be
  harvested (§2.3, version 1.3);
- set, to oneself: replaces the whole vCard (there are no partial updates)
  if it is at most C{[limits] max_vcard_size} bytes serialized, else
  not-acceptable (XEP-0054 names no condition; RFC 6120 §8.3.3.9: the
  request does not meet the server's criteria);
- set, to anyone else: forbidden (§2.2).

The vCard is kept as the XML the owner sent, so a get returns it unchanged.
"""

from __future__ import annotations

from jabberd import bus as B
from jabberd.module import Module
from jabberd.store.userdata import get_vcard_txn, set_vcard_txn
from jabberd.xmlstream import iqResult

NS_VCARD = "vcard-temp"


class VCardModule(Module):
    """Stores and serves vcard-temp vCards of local accounts."""

    name = "vcard"
    features = (NS_VCARD,)
    accountFeatures = (NS_VCARD,)

    def hooks(self):
        return [
            (B.iq("get", B.SELF, NS_VCARD, "vCard"), self.getOwn, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_VCARD, "vCard"), self.setOwn, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_VCARD, "vCard"), self.getOther, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_VCARD, "vCard"), self.setOther, B.PRIORITY_NORMAL),
        ]

    def _load(self, toJID):
        return self.server.store.runInteraction("get_vcard", get_vcard_txn, toJID.host, toJID.user)

    def getOwn(self, iq, fromJID, toJID) -> bool:
        d = self._load(toJID)
        d.addCallback(self._sendOwn, iq)
        d.addErrback(self._failed, iq)
        return True

    def _sendOwn(self, xml: str | None, iq) -> None:
        reply = iqResult(iq)
        if xml is None:
            reply.addElement((NS_VCARD, "vCard"))
        else:
            reply.addRawXml(xml)
        self.server.router.route(reply)

    def getOther(self, iq, fromJID, toJID) -> bool:
        d = self._load(toJID)
        d.addCallback(self._sendOther, iq)
        d.addErrback(self._failed, iq)
        return True

    def _sendOther(self, xml: str | None, iq) -> None:
        if xml is None:
            self.server.router.bounce(iq, "service-unavailable")
            return
        reply = iqResult(iq)
        reply.addRawXml(xml)
        self.server.router.route(reply)

    def setOwn(self, iq, fromJID, toJID) -> bool:
        xml = next(iq.elements()).toXml()
        limit = self.server.config.limits.max_vcard_size
        if len(xml.encode("utf-8")) > limit:
            self.server.router.bounce(iq, "not-acceptable", f"the vCard is larger than {limit} bytes")
            return True
        d = self.server.store.runInteraction("set_vcard", set_vcard_txn, toJID.host, toJID.user, xml)
        d.addCallback(self._stored, iq)
        d.addErrback(self._failed, iq)
        return True

    def _stored(self, stored: bool, iq) -> None:
        if stored:
            self.server.router.route(iqResult(iq))
        else:  # the account was deleted meanwhile
            self.server.router.bounce(iq, "item-not-found")

    def setOther(self, iq, fromJID, toJID) -> bool:
        self.server.router.bounce(iq, "forbidden", "you can only change your own vCard")
        return True

    def _failed(self, failure, iq) -> None:
        self.storeFailed(failure, iq, "a vCard request")
