"""
Unit-test fixtures for the MUC: the real handlers in a real
L{InProcessComponent}, attached to a router that only records what it is
given, with an in-memory SQLite store and a clock the test moves.

A test reads as a transcript::

    self.send("<presence from='alice@localhost/a' to='room@conference.localhost/Alice'>"
              "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
    self.expect(
        "<presence from='room@conference.localhost/Alice' to='alice@localhost/a'>...</presence>",
        ...
    )

C{expect} compares whole stanzas (attributes in any order, C{xmlns} where
it changes), in order, and fails on anything more or less.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.words.xish import domish

from components import muc
from components.base import InProcessComponent
from jabberd.config import fromDict
from jabberd.store import Store
from tests.fakes import element
from tests.harness import xml

DOMAIN = "conference.localhost"
ROOM = "room@" + DOMAIN
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

ALICE = "alice@localhost/a"
BOB = "bob@localhost/b"
CAROL = "carol@localhost/c"


class RecordingRouter:
    """The part of the core's Router a component uses, recording what is routed."""

    def __init__(self) -> None:
        self.domains: dict[str, Any] = {}
        self.routed: list[domish.Element] = []

    def registerDomain(self, domain: str, deliver: Any) -> None:
        self.domains[domain] = deliver

    def unregisterDomain(self, domain: str) -> None:
        self.domains.pop(domain, None)

    def route(self, stanza: domish.Element) -> None:
        self.routed.append(stanza)

    def bounce(self, stanza: domish.Element, condition: str, text: str | None = None) -> None:
        from jabberd.xmlstream import errorReply

        self.routed.append(errorReply(stanza, condition, text))


def error(condition: str, type_: str, text: str | None = None, by: str | None = ROOM) -> str:
    """The XML of a stanza error, as the room sends it."""
    extra = f"<text xmlns='{STANZAS}' xml:lang='en'>{text}</text>" if text else ""
    byAttr = f" by='{by}'" if by else ""
    return f"<error type='{type_}'{byAttr}><{condition} xmlns='{STANZAS}'/>{extra}</error>"


def userX(*items: str, codes: tuple[str, ...] = (), extra: str = "") -> str:
    """<x xmlns='...muc#user'> with the given items and status codes."""
    status = "".join(f"<status code='{c}'/>" for c in codes)
    return f"<x xmlns='{NS_USER}'>{''.join(items)}{status}{extra}</x>"


def item(affiliation: str, role: str, jid: str | None = None, nick: str | None = None, inner: str = "") -> str:
    attrs = f" affiliation='{affiliation}' role='{role}'"
    if jid:
        attrs += f" jid='{jid}'"
    if nick:
        attrs += f" nick='{nick}'"
    return f"<item{attrs}>{inner}</item>" if inner else f"<item{attrs}/>"


class MucTestCase(unittest.TestCase):
    """A MUC service for C{DOMAIN} driven by stanzas; see the module docstring."""

    #: [muc] settings for this test case (fromDict syntax).
    muc: dict[str, Any] = {}

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = task.Clock()
        self.store = Store("sqlite://", reactor=reactor)
        self.store.start()
        self.addCleanup(self.store.close)
        yield self.startService()

    @defer.inlineCallbacks
    def startService(self, **overrides: Any):
        """(Re)start the MUC service on the same store: rooms come back from it."""
        settings = {**self.muc, **overrides}
        self.config = fromDict({"muc": settings}).muc
        self.router = RecordingRouter()
        self.resetIDs()
        self.service = muc.MUCService(DOMAIN, self.config, store=self.store, clock=self.clock,
                                      newID=lambda: f"id{next(self.ids)}")
        yield self.service.start()
        self.component = InProcessComponent(self.router, DOMAIN, muc.handlers(self.service))
        self.component.startService()
        self.addCleanup(self.component.stopService)

    @defer.inlineCallbacks
    def restartService(self):
        yield self.service.whenIdle()
        self.component.stopService()
        yield self.startService()

    # -- driving ------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """A stanza arrives for the MUC domain (as the Router hands it over)."""
        self.router.domains[DOMAIN](element(text))

    def resetIDs(self) -> None:
        """The ids the room generates start again at id1 (create/enter do this after forgetting the traffic)."""
        self.ids = itertools.count(1)

    def pop(self) -> list[domish.Element]:
        out, self.router.routed = self.router.routed, []
        return out

    def expect(self, *stanzas: str) -> None:
        """Exactly these stanzas were sent since the last check, in this order."""
        got = [xml(e) for e in self.pop()]
        want = [xml(element(s)) for s in stanzas]
        self.assertEqual(got, want)

    def expectUnordered(self, *stanzas: str) -> None:
        got = sorted(xml(e) for e in self.pop())
        want = sorted(xml(element(s)) for s in stanzas)
        self.assertEqual(got, want)

    def sentTo(self, jid: str) -> list[str]:
        """The stanzas sent to C{jid} (canonical XML), removing them from what is left to expect."""
        keep, mine = [], []
        for e in self.router.routed:
            (mine if e.getAttribute("to") == jid else keep).append(e)
        self.router.routed = keep
        return [xml(e) for e in mine]

    # -- common steps ------------------------------------------------------------------------

    def join(self, who: str, nick: str, room: str = ROOM, extra: str = "", payload: str = "", id_: str | None = None) -> None:
        idAttr = f" id='{id_}'" if id_ else ""
        self.send(f"<presence from='{who}' to='{room}/{nick}'{idAttr}>{payload}<x xmlns='{NS_MUC}'>{extra}</x></presence>")

    def create(self, owner: str = ALICE, nick: str = "Alice", room: str = ROOM, fields: str = "") -> None:
        """Create and configure a room (an instant room unless C{fields}), and forget the traffic."""
        self.join(owner, nick, room)
        self.send(f"<iq type='set' id='create' from='{owner}' to='{room}'><query xmlns='{NS_OWNER}'>"
                  f"<x xmlns='{NS_DATA}' type='submit'>{fields}</x></query></iq>")
        self.pop()
        self.resetIDs()

    def enter(self, who: str, nick: str, room: str = ROOM, extra: str = "") -> None:
        """Join and forget the traffic."""
        self.join(who, nick, room, extra)
        self.pop()
        self.resetIDs()

    def configure(self, fields: dict[str, Any], owner: str = ALICE, room: str = ROOM, id_: str = "cfg") -> None:
        body = "".join(
            f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in (value if isinstance(value, list) else [value])) + "</field>"
            for var, value in fields.items()
        )
        self.send(f"<iq type='set' id='{id_}' from='{owner}' to='{room}'><query xmlns='{NS_OWNER}'>"
                  f"<x xmlns='{NS_DATA}' type='submit'>{body}</x></query></iq>")

    def admin(self, who: str, items: str, type_: str = "set", id_: str = "a1", room: str = ROOM) -> None:
        self.send(f"<iq type='{type_}' id='{id_}' from='{who}' to='{room}'><query xmlns='{NS_ADMIN}'>{items}</query></iq>")

    def say(self, who: str, body: str, id_: str = "m1", room: str = ROOM) -> None:
        self.send(f"<message from='{who}' to='{room}' type='groupchat' id='{id_}'><body>{body}</body></message>")

    @property
    def room(self):
        return self.service.rooms["room"]
