"""
Message delivery to local accounts: RFC 6121 §8.5 (§8.5.2 bare JID,
§8.5.3 full JID), read from the in-memory session registry only.

To a bare JID C{user@host} (§8.5.2), by type:

- chat, normal: the "most available" resources, which here means every
  available resource sharing the highest non-negative priority (the
  RFC's option (a)); none → offline handling (below);
- headline: every available resource with a non-negative priority;
  none → dropped (§8.5.2.2.1);
- groupchat: never delivered: service-unavailable (§8.5.2.1.1, §8.5.2.2.1);
- error: dropped.

A resource with a negative priority never receives a bare-JID message, and
a resource that is bound but has not sent available presence counts as not
available (XEP-0160: only non-negative available resources).

To a full JID (§8.5.3): a bound resource gets the message whatever its
type or priority.  When no resource matches (§8.5.3.2.1):

- chat: the bare-JID rules above (other resources, else offline);
- normal, groupchat: service-unavailable (the RFC allows "silently
  ignore" or an error; the error tells the sender nothing was delivered,
  and lets a MUC service drop a ghost occupant);
- headline, error: dropped (headlines are transient by definition).

Offline handling: a chat or normal message with nobody to take it fires
C{message("offline")} C{(message, fromJID, toJID)}; the offline module
(XEP-0160) stores or refuses it.  If nothing handles that (offline storage
disabled) the sender gets service-unavailable.  Whether the account exists
is only asked there: an online account obviously exists, and for an
offline one the store answers "exists?" and "store" in one transaction.
For every other case both answers of §8.5.1 ("no such user": ignore or
service-unavailable) coincide with what is done anyway, so no stanza ever
waits for the database here.

A C{<delay xmlns='urn:xmpp:delay'/>} claiming to come from the recipient's
own server is removed before delivery (XEP-0203 §5: only this server may
say it delayed a stanza, which the offline module does).
"""

from __future__ import annotations

from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.module import Module

NS_DELAY = "urn:xmpp:delay"

#: RFC 6121 §5.2.2: a missing or unknown type means "normal".
MESSAGE_TYPES = frozenset(("chat", "normal", "headline", "groupchat", "error"))

#: The bus key fired for a chat/normal message nobody online can take:
#: C{(message, fromJID, toJID)}; True = stored, dropped or bounced.
OFFLINE = B.message("offline")


def messageType(message: domish.Element) -> str:
    """The message's type, with RFC 6121 §5.2.2's default."""
    t = message.getAttribute("type")
    return t if t in MESSAGE_TYPES else "normal"


def stripForgedDelay(message: domish.Element, host: str) -> None:
    """Remove XEP-0203 delays whose 'from' is C{host}: only we may add those."""
    children = message.children
    for child in children:
        if isinstance(child, domish.Element) and child.name == "delay" and child.uri == NS_DELAY:
            break
    else:
        return
    message.children = [
        c
        for c in children
        if not (isinstance(c, domish.Element) and c.name == "delay" and c.uri == NS_DELAY and c.getAttribute("from") == host)
    ]


class MessagesModule(Module):
    """RFC 6121 §8.5 message delivery rules for local accounts."""

    name = "messages"

    def hooks(self):
        return [
            (B.message("bare"), self.toBare, B.PRIORITY_NORMAL),
            (B.message("full"), self.toFull, B.PRIORITY_NORMAL),
        ]

    def toBare(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
        """A message to C{user@host} (RFC 6121 §8.5.2)."""
        type_ = messageType(message)
        if type_ == "error":
            return True
        if type_ == "groupchat":
            self.server.router.bounce(message, "service-unavailable")
            return True
        self._checkDelay(message, fromJID, toJID)
        return self._toAccount(message, type_, fromJID, toJID)

    def toFull(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID, session) -> bool:
        """A message to C{user@host/resource} (RFC 6121 §8.5.3)."""
        if session is not None:
            self._checkDelay(message, fromJID, toJID)
            session.deliver(message)
            return True
        type_ = messageType(message)
        if type_ == "chat":
            self._checkDelay(message, fromJID, toJID)
            return self._toAccount(message, type_, fromJID, toJID)
        if type_ in ("normal", "groupchat"):
            self.server.router.bounce(message, "service-unavailable")
        return True

    # -- the account's resources ------------------------------------------------

    def _toAccount(self, message: domish.Element, type_: str, fromJID: J.JID | None, toJID: J.JID) -> bool:
        """Deliver a chat, normal or headline message by priority, else offline handling."""
        resources = self.server.sessions.resources(toJID.userhost())
        if type_ == "headline":
            for session in list(resources.values()):
                if session.available and session.priority >= 0:
                    session.deliver(message)
            return True
        top = 0  # negative priorities never take bare-JID messages
        chosen = []
        for session in resources.values():
            if session.available and session.priority >= top:
                if session.priority > top:
                    top = session.priority
                    chosen = []
                chosen.append(session)
        if chosen:
            for session in chosen:
                session.deliver(message)
            return True
        if not self.server.bus.fire(OFFLINE, message, fromJID, toJID):
            self.server.router.bounce(message, "service-unavailable")
        return True

    @staticmethod
    def _checkDelay(message: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> None:
        if fromJID is None or fromJID.user is not None or fromJID.host != toJID.host:
            stripForgedDelay(message, toJID.host)
