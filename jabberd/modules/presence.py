"""
Presence (RFC 6121 §4): broadcast, probes, unavailable, directed presence.

The sender's side: a client's presence without 'to' is broadcast to the
contacts subscribed to it ('from'/'both') and to the account's own
available resources; initial presence also probes the contacts the user is
subscribed to ('to'/'both'), shows the user's other resources to the new
one, delivers pending subscription requests again (§3.1.3) and fires
L{PRESENCE_AVAILABLE<jabberd.bus.PRESENCE_AVAILABLE>} once per session.
Presence with a 'to' is directed presence (tracked, so that its recipients
learn of the sender going offline) or a subscription stanza (handed to the
roster module's state machine).

The recipient's side (C{presence("inbound")}, any origin): subscription
stanzas to the roster module, probes answered for local accounts from the
sessions' last presence, and presence to a bare JID delivered to every
available resource with its 'to' left as it is.

Everything goes through the Router and reads the rosters in memory (the
roster module's), so remote contacts and components need nothing here.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.module import Module
from jabberd.modules.roster import SUBSCRIPTION_TYPES, copyStanza, presenceElement
from jabberd.xmlstream import NS_CLIENT, errorReply

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession
    from jabberd.modules.roster import Account, RosterModule

NS_DELAY = "urn:xmpp:delay"

#: How many accounts' last unavailable presence (for probe answers) is kept.
LAST_UNAVAILABLE_CACHE = 10000

BROADCAST_TYPES = (None, "unavailable")


def _logged(failure) -> None:
    """An errback for work the roster module already logged when it failed."""
    return None


def priorityOf(stanza: domish.Element) -> int:
    """The C{<priority/>} of a presence: an integer clamped to -128..127, default 0 (RFC 6121 §4.7.2.3)."""
    for child in stanza.elements(NS_CLIENT, "priority"):
        try:
            value = int(str(child).strip())
        except ValueError:
            return 0
        return max(-128, min(127, value))
    return 0


class PresenceModule(Module):
    """RFC 6121 §4 presence on top of the roster module's rosters."""

    name = "presence"
    features = ()
    accountFeatures = ()

    def __init__(self, server) -> None:
        super().__init__(server)
        self._lastUnavailable: OrderedDict[str, tuple[domish.Element, float]] = OrderedDict()

    def hooks(self):
        return [
            (B.presence("outbound"), self.outbound, B.PRIORITY_NORMAL),
            (B.presence("directed"), self.directed, B.PRIORITY_NORMAL),
            (B.presence("inbound"), self.inbound, B.PRIORITY_NORMAL),
            # High: before the roster module lets go of the account's roster.
            (B.SESSION_ENDED, self.sessionEnded, B.PRIORITY_HIGH),
        ]

    @property
    def roster(self) -> RosterModule | None:
        return self.server.modules.modules.get("roster")  # type: ignore[return-value]

    # -- the sender's side ------------------------------------------------------

    def outbound(self, stanza: domish.Element, session: ClientSession) -> bool:
        """A client's presence without 'to': a broadcast (§4.2, §4.4, §4.5)."""
        roster = self.roster
        if roster is None:
            return False
        type_ = stanza.getAttribute("type")
        if type_ is None:
            roster.run(session.bareJID, lambda acct: self._available(acct, session, stanza)).addErrback(_logged)
        elif type_ == "unavailable":
            roster.run(session.bareJID, lambda acct: self._unavailable(acct, session, stanza, True)).addErrback(_logged)
        elif type_ not in SUBSCRIPTION_TYPES and type_ not in ("probe", "error"):
            session.send(errorReply(stanza, "bad-request", f"unknown presence type {type_!r}"))
        # Subscription stanzas, probes and errors need a 'to': nothing to do.
        return True

    def _available(self, acct: Account, session: ClientSession, stanza: domish.Element) -> None:
        if self.server.sessions.get(session.bareJID, session.resource) is not session:
            return  # the session ended while its roster was loading
        roster = self.roster
        assert roster is not None and acct.state is not None
        route = self.server.router.route
        initial = not session.available
        session.priority = priorityOf(stanza)
        session.available = True
        session.presence = stanza
        if initial:
            session.interested = True
        bare, items = acct.bare, acct.state.items
        for jid, item in list(items.items()):
            if item.hasFrom:
                route(copyStanza(stanza, to=jid))
        # "an entity is implicitly subscribed to its own presence" (§4.2.2):
        # every available resource, this one included.
        for other in self.server.sessions.available(bare):
            route(copyStanza(stanza, to=other.jid.full()))  # type: ignore[union-attr]
        if not initial:
            return
        # §4.3.1: probes from the bare JID to the contacts we are subscribed to.
        for jid, item in list(items.items()):
            if item.hasTo:
                route(presenceElement("probe", bare, jid))
        full = session.jid.full()  # type: ignore[union-attr]
        for other in self.server.sessions.available(bare):
            if other is not session and other.presence is not None:
                route(copyStanza(other.presence, to=full))
        for request in roster.pendingRequests(acct):
            session.deliver(request)
        announced = session.data.setdefault("presence", {})
        if not announced.get("available"):
            announced["available"] = True
            self.server.bus.notify(B.PRESENCE_AVAILABLE, session)

    def _unavailable(self, acct: Account, session: ClientSession, stanza: domish.Element, reflect: bool) -> None:
        assert acct.state is not None
        route = self.server.router.route
        wasAvailable = session.available
        session.available = False
        session.presence = None
        bare = acct.bare
        sent: set[str] = set()
        if wasAvailable:
            for jid, item in list(acct.state.items.items()):
                if item.hasFrom:
                    route(copyStanza(stanza, to=jid))
                    sent.add(jid)
            others = self.server.sessions.available(bare)
            for other in others:
                route(copyStanza(stanza, to=other.jid.full()))  # type: ignore[union-attr]
            if reflect:
                route(copyStanza(stanza, to=session.jid.full()))  # type: ignore[union-attr]
            if not others:
                self._rememberUnavailable(bare, stanza)
        directed, session.directed = session.directed, None
        for to in sorted(directed or ()):
            if to not in sent:
                route(copyStanza(stanza, to=to))

    def _rememberUnavailable(self, bare: str, stanza: domish.Element) -> None:
        cache = self._lastUnavailable
        cache[bare] = (stanza, self.server.reactor.seconds())
        cache.move_to_end(bare)
        while len(cache) > LAST_UNAVAILABLE_CACHE:
            cache.popitem(last=False)

    def directed(self, stanza: domish.Element, session: ClientSession) -> bool:
        """A client's presence with a 'to': subscription stanza or directed presence (§3, §4.6)."""
        roster = self.roster
        if roster is None:
            return False
        try:
            toJID = J.parse(stanza["to"])
        except J.InvalidJID:
            return False  # the Router answers jid-malformed
        type_ = stanza.getAttribute("type")
        if type_ in SUBSCRIPTION_TYPES:
            roster.outbound(session, stanza, toJID.userhost())
            return True
        if type_ not in (None, "unavailable", "error", "probe"):
            session.send(errorReply(stanza, "bad-request", f"unknown presence type {type_!r}"))
            return True
        # Through the account's queue, so it keeps its place among the
        # client's other presence stanzas while the roster loads.
        roster.run(session.bareJID, lambda acct: self._directed(session, stanza, toJID, type_)).addErrback(_logged)
        return True

    def _directed(self, session: ClientSession, stanza: domish.Element, toJID: J.JID, type_: str | None) -> None:
        if self.server.sessions.get(session.bareJID, session.resource) is not session:
            return
        to = toJID.full()
        if type_ is None:
            if session.directed is None:
                session.directed = set()
            session.directed.add(to)
        elif type_ in ("unavailable", "error") and session.directed:
            session.directed.discard(to)
        self.server.router.route(stanza)

    def sessionEnded(self, session: ClientSession) -> None:
        """A session ended without unavailable presence: say so for it (§4.5.2)."""
        roster = self.roster
        if roster is None or (not session.available and not session.directed):
            return
        stanza = domish.Element((NS_CLIENT, "presence"))
        stanza["from"] = session.jid.full()  # type: ignore[union-attr]
        stanza["type"] = "unavailable"
        roster.run(session.bareJID, lambda acct: self._unavailable(acct, session, stanza, False)).addErrback(_logged)

    # -- the recipient's side -------------------------------------------------

    def inbound(self, stanza: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
        """Presence to a local account from anywhere (§3, §4, §8.5.2)."""
        roster = self.roster
        if roster is None or toJID.user is None:
            return False
        type_ = stanza.getAttribute("type")
        bare = toJID.userhost()
        if type_ in SUBSCRIPTION_TYPES:
            if fromJID is not None:
                # §8.5.3.2: subscription stanzas to a full JID count as to the bare JID.
                roster.inbound(stanza, fromJID.userhost(), bare)
            return True
        if type_ == "probe":
            if fromJID is not None:
                self._probe(roster, stanza, fromJID, toJID)
            return True
        if type_ not in (None, "unavailable", "error"):
            return True  # not a presence type: nothing to deliver
        if toJID.resource is not None:
            return False  # the Router delivers it to that resource, if bound
        # §8.5.2.1.2: every available resource, 'to' left as the bare JID;
        # §8.5.2.2.2: nobody available, silently ignored.
        for session in self.server.sessions.available(bare):
            session.deliver(stanza)
        return True

    def _probe(self, roster: RosterModule, stanza: domish.Element, fromJID: J.JID, toJID: J.JID) -> None:
        """§4.3.2: answer a probe for a local account from its sessions' last presence."""
        contact = toJID.userhost()
        prober = fromJID.userhost()
        replyTo = stanza.getAttribute("from") or prober
        before: frozenset[ClientSession] | None = None

        def answer(acct: Account) -> None:
            assert acct.state is not None
            item = acct.state.items.get(prober)
            allowed = acct.exists and (
                prober == contact
                or (fromJID.user is None and fromJID.host in self.server.hosts)  # the server itself
                or (item is not None and item.hasFrom)
            )
            if not allowed:
                self.server.router.route(presenceElement("unsubscribed", contact, prober))
                return
            subscriber = prober != contact and item is not None and item.hasFrom
            self._answerProbe(toJID, replyTo, before if subscriber else None)

        acct = roster.loaded(contact)
        if acct is not None:
            answer(acct)
            return
        # The answer waits for the contact's roster, behind the contact's own
        # queued work: a session of the contact that becomes available in
        # between broadcasts its initial presence to the prober itself (the
        # same 'from' subscription allows both), so only the sessions
        # available now are answered for; the rest would reach the prober twice.
        before = frozenset(self.server.sessions.available(contact))
        if not self.server.sessions.resources(contact) and fromJID.host in self.server.hosts:
            # The contact is offline and the prober local: the prober's roster,
            # kept in step with the contact's by this server, says whether it
            # may know that; no store read for each offline contact at login.
            proberRoster = roster.cachedRoster(prober)
            if proberRoster is not None:
                item = proberRoster.get(contact)
                if item is not None and item.hasTo:
                    self._answerProbe(toJID, replyTo)
                    return
        roster.run(contact, answer).addErrback(_logged)

    def _answerProbe(self, toJID: J.JID, replyTo: str, before: frozenset[ClientSession] | None = None) -> None:
        """
        Send the prober the presence of the contact's available sessions, or
        unavailable; with C{before} (the sessions available when the probe
        arrived), sessions that became available since are left out: their
        initial presence already went to the prober.
        """
        contact = toJID.userhost()
        route = self.server.router.route
        if toJID.resource is not None:
            session = self.server.sessions.get(contact, toJID.resource)
            sessions = [session] if session is not None and session.available else []
        else:
            sessions = self.server.sessions.available(contact)
        answered = False
        for session in sessions:
            if before is not None and session not in before:
                answered = True  # announced itself since the probe
            elif session.presence is not None:
                route(copyStanza(session.presence, to=replyTo))
                answered = True
        if answered:
            return
        reply = presenceElement("unavailable", toJID.full(), replyTo)
        last = self._lastUnavailable.get(contact) if toJID.resource is None else None
        if last is not None:
            stanza, when = last
            for child in stanza.elements():
                if child.name in ("status", "show") and child.uri == NS_CLIENT:
                    reply.addChild(child)
            delay = reply.addElement((NS_DELAY, "delay"))
            delay["from"] = toJID.host
            delay["stamp"] = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        route(reply)
