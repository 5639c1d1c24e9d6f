"""
Privacy lists (XEP-0016): the C{jabber:iq:privacy} protocol.

Lists, their storage, the rule engine and the enforcement on both edges
are shared with the blocking command (XEP-0191) in
L{jabberd.modules.privacyrules}; this module is the protocol:

- get with an empty query: the names of the account's lists, preceded by
  the session's active list and the account's default list (§2.3);
- get with one C{<list name=.../>}: that list's items in order, or
  item-not-found; more than one list, or anything else, is bad-request;
- set with exactly one child (bad-request otherwise, §2.1):
  - C{<active name=.../>}: the session's active list (item-not-found for
    an unknown list); C{<active/>}: decline (§2.4);
  - C{<default name=.../>}: the account's default list; C{<default/>}:
    decline; both are a conflict while the current default list applies to
    another connected resource (one without an active list) (§2.5);
  - C{<list name=...>} with items: create or replace the list (§2.6, §2.7);
    without items: remove it (§2.8): item-not-found if there is none,
    conflict if it applies to another connected resource;
- after a list is created, changed or removed, every connected resource
  gets a push naming it (§2.2 rule 10), whichever protocol changed it.

Items are checked before anything is stored: 'action' allow or deny,
'order' an unsignedInt unique in the list, 'type' jid, group or
subscription with a 'value' (a valid JID, a group of the user's roster —
item-not-found otherwise, a subscription state), children among
C{<message/>}, C{<iq/>}, C{<presence-in/>}, C{<presence-out/>}; anything
else is bad-request.  An account keeps at most C{[limits]
max_privacy_lists} lists of at most C{max_privacy_items} items each
(not-allowed beyond).

Requests to another account's bare JID are forbidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.modules.privacyrules import LIST_CHANGED, PrivacyAccount, PrivacyError, PrivacyProtocolModule, activeName
from jabberd.privacy import ALL, ITEM_TYPES, KIND_ELEMENTS, MAX_ORDER, SUBSCRIPTIONS, PrivacyItem
from jabberd.store.privacy import NAME_LENGTH
from jabberd.xmlstream import NS_CLIENT, iqResult

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession

NS_PRIVACY = "jabber:iq:privacy"

_KIND_BY_NAME = dict(KIND_ELEMENTS)


def itemElement(item: PrivacyItem) -> domish.Element:
    """The C{<item/>} of a list as XEP-0016 writes it."""
    e = domish.Element((NS_PRIVACY, "item"))
    if item.type is not None:
        e["type"] = item.type
        e["value"] = item.value or ""
    e["action"] = "allow" if item.allow else "deny"
    e["order"] = str(item.order)
    for name, bit in KIND_ELEMENTS:
        if item.kinds & bit:
            e.addElement(name)
    return e


def parseItem(e: domish.Element) -> PrivacyItem:
    """A list item from its element, or L{PrivacyError} (bad-request)."""
    action = e.getAttribute("action")
    if action not in ("allow", "deny"):
        raise PrivacyError("bad-request", "an item needs action='allow' or action='deny'")
    order = e.getAttribute("order")
    if order is None or not order.isdigit() or not order.isascii() or int(order) > MAX_ORDER:
        raise PrivacyError("bad-request", "an item needs an 'order' that is a non-negative integer")
    type_ = e.getAttribute("type")
    value = e.getAttribute("value")
    if type_ is None:
        value = None
    elif type_ not in ITEM_TYPES:
        raise PrivacyError("bad-request", f"unknown item type {type_!r}")
    elif value is None:
        raise PrivacyError("bad-request", f"an item of type {type_!r} needs a 'value'")
    elif type_ == "jid":
        try:
            value = J.parse(value).full()
        except J.InvalidJID as error:
            raise PrivacyError("bad-request", f"the value is not a JID: {error}") from None
    elif type_ == "subscription" and value not in SUBSCRIPTIONS:
        raise PrivacyError("bad-request", "a subscription value is one of both, to, from, none")
    kinds = ALL
    for child in e.elements():
        bit = _KIND_BY_NAME.get(child.name)
        if bit is None or child.uri != NS_PRIVACY:
            raise PrivacyError("bad-request", f"unknown stanza kind <{child.name}/>")
        kinds |= bit
    return PrivacyItem(int(order), action == "allow", type_, value, kinds)


class PrivacyModule(PrivacyProtocolModule):
    """XEP-0016 privacy lists; see the module docstring."""

    name = "privacy"
    subject = "privacy lists"
    features = (NS_PRIVACY,)

    def hooks(self):
        return [
            (B.iq("get", B.SELF, NS_PRIVACY, "query"), self.get, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_PRIVACY, "query"), self.set, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_PRIVACY, "query"), self.forbidden, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_PRIVACY, "query"), self.forbidden, B.PRIORITY_NORMAL),
            (LIST_CHANGED, self.push, B.PRIORITY_NORMAL),
        ]

    # -- get (§2.3) --------------------------------------------------------------------------

    def get(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        session = self._session(fromJID)
        query = next(iq.elements(NS_PRIVACY, "query"))
        children = list(query.elements())

        def work(acct: PrivacyAccount) -> None:
            reply = iqResult(iq)
            result = reply.addElement((NS_PRIVACY, "query"))
            if not children:
                active = activeName(session) if session is not None else None
                if active is not None:
                    result.addElement("active")["name"] = active
                if acct.defaultName is not None:
                    result.addElement("default")["name"] = acct.defaultName
                for name in sorted(acct.lists):
                    result.addElement("list")["name"] = name
            else:
                if len(children) != 1 or children[0].name != "list" or children[0].uri != NS_PRIVACY:
                    raise PrivacyError("bad-request", "ask for the list names, or for one list")
                name = children[0].getAttribute("name")
                if name is None:
                    raise PrivacyError("bad-request", "the list has no name")
                items = acct.lists.get(name)
                if items is None:
                    raise PrivacyError("item-not-found", "there is no list by that name")
                lst = result.addElement("list")
                lst["name"] = name
                for item in items:
                    lst.addChild(itemElement(item))
            self.server.router.route(reply)

        return self._serve(iq, fromJID, work)

    # -- set (§2.4 - §2.8) -------------------------------------------------------------------

    def set(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        session = self._session(fromJID)
        query = next(iq.elements(NS_PRIVACY, "query"))
        children = list(query.elements())
        child = children[0] if len(children) == 1 and children[0].uri == NS_PRIVACY else None

        def work(acct: PrivacyAccount) -> Any:
            if child is None:
                raise PrivacyError("bad-request", "a privacy set carries exactly one active, default or list element")
            if child.name == "active":
                return self._setActive(acct, iq, session, child.getAttribute("name"))
            if child.name == "default":
                return self._setDefault(acct, iq, session, child.getAttribute("name"))
            if child.name == "list":
                return self._setList(acct, iq, session, child)
            raise PrivacyError("bad-request", f"unknown element <{child.name}/>")

        return self._serve(iq, fromJID, work)

    def _done(self, iq: domish.Element) -> None:
        self.server.router.route(iqResult(iq))

    def _setActive(self, acct: PrivacyAccount, iq: domish.Element, session: ClientSession | None, name: str | None) -> None:
        assert self.rules is not None
        if name is not None and name not in acct.lists:
            raise PrivacyError("item-not-found", "there is no list by that name")
        if session is None:
            self._done(iq)
        else:
            self.rules.setActive(acct, session, name, then=lambda: self._done(iq))

    def _setDefault(self, acct: PrivacyAccount, iq: domish.Element, session: ClientSession | None, name: str | None) -> Any:
        assert self.rules is not None
        if name is not None and name not in acct.lists:
            raise PrivacyError("item-not-found", "there is no list by that name")
        if name == acct.defaultName:
            self._done(iq)
            return None
        if self.rules.defaultUsedByOthers(acct, session):
            raise PrivacyError("conflict", "the default list is in use by another resource")
        return self.rules.commit(acct, [("default", name)], then=lambda: self._done(iq))

    def _setList(self, acct: PrivacyAccount, iq: domish.Element, session: ClientSession | None, lst: domish.Element) -> Any:
        assert self.rules is not None
        name = lst.getAttribute("name")
        if name is None:
            raise PrivacyError("bad-request", "the list has no name")
        elements = list(lst.elements())
        if not elements:
            # §2.8: a list without items removes it.
            if name not in acct.lists:
                raise PrivacyError("item-not-found", "there is no list by that name")
            if self.rules.usedByOthers(acct, name, session):
                raise PrivacyError("conflict", "the list is in use by another resource")
            return self.rules.commit(acct, [("remove", name)], then=lambda: self._done(iq))
        if len(name) > NAME_LENGTH:
            raise PrivacyError("not-acceptable", f"a list name is at most {NAME_LENGTH} characters")
        items = []
        for e in elements:
            if e.name != "item" or e.uri != NS_PRIVACY:
                raise PrivacyError("bad-request", f"unknown element <{e.name}/> in a list")
            items.append(parseItem(e))
        orders = [item.order for item in items]
        if len(set(orders)) != len(orders):
            raise PrivacyError("bad-request", "the 'order' of each item must be unique in the list")
        if name not in acct.lists and len(acct.lists) >= self.rules.maxLists:
            raise PrivacyError("not-allowed", f"an account keeps at most {self.rules.maxLists} privacy lists")
        if len(items) > self.rules.maxItems:
            raise PrivacyError("not-allowed", f"a privacy list holds at most {self.rules.maxItems} items")
        items.sort(key=lambda i: i.order)
        groups = {item.value for item in items if item.type == "group"}
        roster = self.server.modules.modules.get("roster")
        if not groups or roster is None:
            return self._storeList(acct, iq, session, name, items)

        # A group that is not in the roster gets item-not-found (§2.1);
        # read it in the roster's order (it is loaded while we are online).
        def missing(racct: Any) -> list[str]:
            known = {g for item in racct.state.items.values() for g in item.groups}
            return sorted(g for g in groups if g not in known)

        def checked(missing: list[str]) -> Any:
            if missing:
                raise PrivacyError("item-not-found", f"there is no roster group {missing[0]!r}")
            return self._storeList(acct, iq, session, name, items)

        return roster.run(acct.bare, missing).addCallback(checked)

    def _storeList(self, acct: PrivacyAccount, iq: domish.Element, session: ClientSession | None, name: str, items: list[PrivacyItem]) -> Any:
        assert self.rules is not None
        if acct.lists.get(name) == tuple(items):
            self._done(iq)
            return None
        return self.rules.commit(acct, [("list", name, items)], then=lambda: self._done(iq))

    # -- pushes (§2.2 rule 10) ----------------------------------------------------------------

    def push(self, bareJID: str, name: str) -> None:
        """Tell every connected resource that the list C{name} changed."""
        for session in list(self.server.sessions.resources(bareJID).values()):
            if session.jid is None:
                continue
            self._pushId += 1
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "set"
            iq["id"] = f"privacy-push{self._pushId}"
            iq["to"] = session.jid.full()
            iq.addElement((NS_PRIVACY, "query")).addElement("list")["name"] = name
            session.deliver(iq)
