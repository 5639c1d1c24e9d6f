"""
The blocking command (XEP-0191): the C{urn:xmpp:blocking} protocol.

The blocklist is the account's default privacy list seen through this
simpler protocol (XEP-0191 §5), kept and enforced by
L{jabberd.modules.privacyrules} together with XEP-0016:

- the blocked JIDs are the "jid, deny, no children" items of the default
  list (a list without a default list blocks nobody);
- C{<block/>} puts one such item per JID not blocked yet in front of the
  default list's other items; when the account has no default list, it
  creates one (named L{BLOCKLIST_NAME}, or that name with a number when a
  list by that name exists) and makes it the default;
- C{<unblock/>} with items removes those items; without items, every
  blocked JID (the list's other items stay);
- so a JID blocked here shows in the default privacy list, and a "jid,
  deny" item put in the default list with XEP-0016 shows in the blocklist.

Requests (XEP-0191 §3): C{<blocklist/>} get (the session then gets the
pushes), C{<block/>} set with at least one item (bad-request otherwise),
C{<unblock/>} set; an item's 'jid' must be a JID (jid-malformed
otherwise; no 'jid' is bad-request).  After a block or unblock the
result goes to the requester, then every resource that asked for the
blocklist gets a push with the items of the command (an empty
C{<unblock/>} for "unblock all").  A change of the blocklist made through
privacy lists is pushed the same way, as the difference it made.

The enforcement (appear offline to a blocked JID; not-acceptable with
C{<blocked xmlns='urn:xmpp:blocking:errors'/>} on the user's own stanzas
to it; unavailable presence on block, current presence on unblock) is the
privacy runtime's.  The server advertises C{urn:xmpp:blocking} in its
disco#info (XEP-0191 §3.1).
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.modules.privacyrules import BLOCKLIST_CHANGED, PrivacyAccount, PrivacyError, PrivacyProtocolModule
from jabberd.privacy import withBlocked, withoutBlocked
from jabberd.xmlstream import NS_CLIENT, errorReply, iqResult


NS_BLOCKING = "urn:xmpp:blocking"

#: The name of the default list the first block command creates.
BLOCKLIST_NAME = "blocklist"


class BlockingModule(PrivacyProtocolModule):
    """XEP-0191 blocking command; see the module docstring."""

    name = "blocking"
    subject = "blocklist"
    features = (NS_BLOCKING,)

    def __init__(self, server) -> None:
        super().__init__(server)
        # The account whose blocklist a command of ours is changing: its
        # pushes are the command's items, not the difference.
        self._commanding: str | None = None

    def hooks(self):
        return [
            (B.iq("get", B.SELF, NS_BLOCKING, "blocklist"), self.blocklist, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_BLOCKING, "block"), self.block, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_BLOCKING, "unblock"), self.unblock, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_BLOCKING, "blocklist"), self.forbidden, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_BLOCKING, "block"), self.forbidden, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_BLOCKING, "unblock"), self.forbidden, B.PRIORITY_NORMAL),
            (BLOCKLIST_CHANGED, self.changed, B.PRIORITY_NORMAL),
        ]

    @staticmethod
    def _jids(payload: domish.Element) -> list[str]:
        """The prepared JIDs of a command's items, each once, in order; L{PrivacyError} for a bad one."""
        found: dict[str, None] = {}
        for item in payload.elements(NS_BLOCKING, "item"):
            raw = item.getAttribute("jid")
            if raw is None:
                raise PrivacyError("bad-request", "an item needs a 'jid'")
            try:
                found.setdefault(J.parse(raw).full(), None)
            except J.InvalidJID as e:
                raise PrivacyError("jid-malformed", str(e)) from None
        return list(found)

    # -- requests (§3) -------------------------------------------------------------------

    def blocklist(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        """§3.2: the blocked JIDs; the session asked, so it gets the pushes from now on."""
        session = self._session(fromJID)

        def work(acct: PrivacyAccount) -> None:
            if session is not None:
                session.data["blocking"] = True
            reply = iqResult(iq)
            result = reply.addElement((NS_BLOCKING, "blocklist"))
            for jid in acct.blocklist():
                result.addElement("item")["jid"] = jid
            self.server.router.route(reply)

        return self._serve(iq, fromJID, work)

    def block(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        """§3.3: block the JIDs of the items (at least one)."""
        payload = next(iq.elements(NS_BLOCKING, "block"))
        try:
            jids = self._jids(payload)
            if not jids:
                raise PrivacyError("bad-request", "block at least one JID")
        except PrivacyError as e:
            self.server.router.route(errorReply(iq, e.condition, e.text))
            return True
        return self._serve(iq, fromJID, lambda acct: self._edit(acct, iq, lambda items: withBlocked(items, jids), "block", jids))

    def unblock(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        """§3.4, §3.5: unblock the JIDs of the items, or every JID when there are none."""
        payload = next(iq.elements(NS_BLOCKING, "unblock"))
        try:
            jids: list[str] | None = self._jids(payload) or None
        except PrivacyError as e:
            self.server.router.route(errorReply(iq, e.condition, e.text))
            return True
        return self._serve(iq, fromJID, lambda acct: self._edit(acct, iq, lambda items: withoutBlocked(items, jids), "unblock", jids or []))

    def _edit(self, acct: PrivacyAccount, iq: domish.Element, transform, command: str, jids: list[str]) -> Any:
        """Change the default list with C{transform}, creating it if need be; reply, then push the command."""
        assert self.rules is not None
        name = acct.defaultName
        changes: list[tuple]
        if name is None:
            items = transform(())
            if not items:
                changes = []
            else:
                name = self._freeName(acct)
                if len(acct.lists) >= self.rules.maxLists:
                    raise PrivacyError("not-allowed", f"an account keeps at most {self.rules.maxLists} privacy lists")
                changes = [("list", name, items), ("default", name)]
        else:
            old = acct.lists[name]
            items = transform(old)
            changes = [] if items == old else [("list", name, items)]
        if len(items) > self.rules.maxItems:
            raise PrivacyError("not-allowed", f"the blocklist holds at most {self.rules.maxItems} items")

        def reply() -> None:
            self.server.router.route(iqResult(iq))
            self._commanding = acct.bare

        def pushed(result: Any) -> Any:
            self._commanding = None
            if not isinstance(result, Failure):
                self._push(acct.bare, command, jids)
            return result

        if not changes:
            reply()
            return pushed(None)
        return self.rules.commit(acct, changes, then=reply).addBoth(pushed)

    @staticmethod
    def _freeName(acct: PrivacyAccount) -> str:
        name, n = BLOCKLIST_NAME, 1
        while name in acct.lists:
            n += 1
            name = f"{BLOCKLIST_NAME}-{n}"
        return name

    # -- pushes --------------------------------------------------------------------------

    def _push(self, bareJID: str, command: str, jids: list[str]) -> None:
        """Send C{<block/>} or C{<unblock/>} with C{jids} to every resource that asked for the blocklist."""
        for session in list(self.server.sessions.resources(bareJID).values()):
            if not session.data.get("blocking") or session.jid is None:
                continue
            self._pushId += 1
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "set"
            iq["id"] = f"block-push{self._pushId}"
            iq["to"] = session.jid.full()
            payload = iq.addElement((NS_BLOCKING, command))
            for jid in jids:
                payload.addElement("item")["jid"] = jid
            session.deliver(iq)

    def changed(self, bareJID: str, before: list[str], after: list[str]) -> None:
        """The blocklist changed through privacy lists: push what was blocked and unblocked."""
        if bareJID == self._commanding:
            return
        if before and not after:
            self._push(bareJID, "unblock", [])
            return
        old = set(before)
        new = set(after)
        unblocked = [j for j in before if j not in new]
        blocked = [j for j in after if j not in old]
        if unblocked:
            self._push(bareJID, "unblock", unblocked)
        if blocked:
            self._push(bareJID, "block", blocked)
