"""
The Router: the one place that decides where a stanza goes.

It looks only at the C{to} domain.  A hosted domain means local delivery
(full JIDs straight to the bound session, everything else to the modules
through the event bus); a registered domain (a component, later an s2s
link) gets the stanza handed over; anything else goes to the remote
handler, which bounces it until federation is configured.  What nobody
handles gets the RFC 6120 error, and errors are never answered with errors.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.bus import EventBus
from jabberd.sessions import SessionManager
from jabberd.xmlstream import errorReply

Deliver = Callable[[domish.Element], None]

# Filters run before delivery; a handler returning True has consumed the
# stanza (dropped or bounced it).  Privacy lists and blocking hook here.
OUTBOUND_FILTER = ("filter", "outbound")  # (stanza, fromJID, toJID) sender is local
INBOUND_FILTER = ("filter", "inbound")  # (stanza, fromJID, toJID) recipient is local


class Router:
    """Routes stanzas by their C{to} domain; see the module docstring."""

    log = Logger()

    def __init__(self, hosts: set[str], bus: EventBus, sessions: SessionManager) -> None:
        self.hosts = hosts
        self.bus = bus
        self.sessions = sessions
        self.domains: dict[str, Deliver] = {}
        self.remote: Callable[[domish.Element, str], None] = self._noRemote

    # -- registration -------------------------------------------------------

    def registerDomain(self, domain: str, deliver: Deliver) -> None:
        """Send every stanza for C{domain} (and names under it) to C{deliver}."""
        self.domains[domain] = deliver

    def unregisterDomain(self, domain: str) -> None:
        """Stop routing C{domain}; its stanzas bounce again."""
        self.domains.pop(domain, None)

    # -- routing ------------------------------------------------------------

    def route(self, stanza: domish.Element) -> None:
        """Deliver C{stanza} according to its C{to}; errors go back to C{from}."""
        to = stanza.getAttribute("to")
        sender = stanza.getAttribute("from")
        try:
            fromJID = J.parse(sender) if sender else None
        except J.InvalidJID:
            self.log.debug("dropping stanza with a malformed 'from'")
            return
        try:
            toJID = J.parse(to) if to else None
        except J.InvalidJID as e:
            if fromJID is not None and stanza.getAttribute("type") not in ("error", "result"):
                reply = errorReply(stanza, "jid-malformed", str(e))
                reply["from"] = fromJID.host  # the server answers: 'to' named nobody
                self.route(reply)
            return
        if toJID is None:
            # Only server-originated stanzas can lack both; nothing to do.
            self.log.debug("dropping stanza without 'to': {s}", s=stanza.toXml)
            return
        domain = toJID.host
        if fromJID is not None and fromJID.host in self.hosts:
            if self.bus.fire(OUTBOUND_FILTER, stanza, fromJID, toJID):
                return
        if domain in self.hosts:
            if self.bus.fire(INBOUND_FILTER, stanza, fromJID, toJID):
                return
            self._local(stanza, fromJID, toJID)
            return
        deliver = self._domainHandler(domain)
        if deliver is not None:
            deliver(stanza)
        else:
            self.remote(stanza, domain)

    def serves(self, domain: str) -> bool:
        """Whether C{domain} is ours: a hosted domain, or one registered (a component, names under it)."""
        return domain in self.hosts or self._domainHandler(domain) is not None

    def _domainHandler(self, domain: str) -> Deliver | None:
        deliver = self.domains.get(domain)
        if deliver is not None or not self.domains:
            return deliver
        # A component serves names under its domain too (rooms at muc.host).
        dot = domain.find(".")
        while dot != -1:
            deliver = self.domains.get(domain[dot + 1 :])
            if deliver is not None:
                return deliver
            dot = domain.find(".", dot + 1)
        return None

    def _local(self, stanza: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> None:
        name = stanza.name
        if toJID.user is None:
            self._toHost(stanza, fromJID, toJID)
        elif toJID.resource is not None:
            session = self.sessions.get(toJID.userhost(), toJID.resource)
            if name == "message":
                if self.bus.fire(B.message("full"), stanza, fromJID, toJID, session):
                    return
                if session is not None:
                    session.deliver(stanza)
                else:
                    self._unhandledMessage(stanza)
            elif name == "presence":
                if not self.bus.fire(B.presence("inbound"), stanza, fromJID, toJID) and session is not None:
                    session.deliver(stanza)
            elif session is not None:
                session.deliver(stanza)
            elif stanza.getAttribute("type") in ("get", "set"):
                self.bounce(stanza, "service-unavailable")
        elif name == "iq":
            self._iq(stanza, fromJID, toJID)
        elif name == "message":
            if not self.bus.fire(B.message("bare"), stanza, fromJID, toJID):
                self._unhandledMessage(stanza)
        elif name == "presence":
            self.bus.fire(B.presence("inbound"), stanza, fromJID, toJID)

    def _toHost(self, stanza: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> None:
        name = stanza.name
        if name == "iq":
            self._iq(stanza, fromJID, toJID)
        elif name == "message":
            if not self.bus.fire(B.message("host"), stanza, fromJID, toJID):
                self._unhandledMessage(stanza)
        elif name == "presence":
            self.bus.fire(B.presence("host"), stanza, fromJID, toJID)

    def _iq(self, stanza: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> None:
        type_ = stanza.getAttribute("type")
        if type_ not in ("get", "set"):
            # Results and errors for an account or the server: the modules that
            # sent the request watch for them; nobody else wants them.
            self.bus.fire(("iq-response", toJID.userhost()), stanza, fromJID, toJID)
            return
        payload = None
        for child in stanza.elements():
            payload = child
            break
        if payload is None:
            self.bounce(stanza, "bad-request", "iq without payload")
            return
        if toJID.user is None:
            target = B.HOST
        elif fromJID is not None and fromJID.user == toJID.user and fromJID.host == toJID.host:
            target = B.SELF
        else:
            target = B.BARE
        key = B.iq(type_, target, payload.uri, payload.name)
        if not self.bus.fire(key, stanza, fromJID, toJID):
            self.bounce(stanza, "service-unavailable")

    def _unhandledMessage(self, stanza: domish.Element) -> None:
        if stanza.getAttribute("type") not in ("error", "groupchat", "headline"):
            self.bounce(stanza, "service-unavailable")

    # -- errors -------------------------------------------------------------

    def bounce(self, stanza: domish.Element, condition: str, text: str | None = None, **kw) -> None:
        """Answer C{stanza} with an error, unless it is itself an error (no loops)."""
        if stanza.getAttribute("type") == "error" or not stanza.getAttribute("from"):
            return
        if stanza.name == "iq" and stanza.getAttribute("type") == "result":
            return
        self.route(errorReply(stanza, condition, text, **kw))

    def _noRemote(self, stanza: domish.Element, domain: str) -> None:
        self.bounce(stanza, "remote-server-not-found", f"no route to {domain}")
