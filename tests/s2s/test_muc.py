"""
The in-process MUC service (conference.<host>) across federation: a user
on another server joins a room here and gets its presence and messages.
The room's domain is one of ours, so it sends on the same outgoing stream
as the host, authenticated for conference.a.example by its own dialback
request (sender multiplexing, XEP-0220 §5), and the peer's stream to the
room's domain is accepted like one to a host.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.s2s.support import Node, inboundMethods, nextMatching, xml

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"


class RemoteOccupantTests(unittest.TestCase):
    """bob@b.example (another jabberd) in room@conference.a.example."""

    @defer.inlineCallbacks
    def setUp(self):
        self.a = Node(self, "a.example")
        self.b = Node(self, "b.example")
        self.a.configure(routes=self.b.route())
        self.b.configure(routes=self.a.route("a.example", "conference.a.example"))
        yield self.a.start()
        yield self.b.start()

    @defer.inlineCallbacks
    def test_remoteUserJoinsAndChats(self):
        """
        A remote user joins a room here (an instant room a local user made):
        the occupant's presence then its own (110), and groupchat both ways,
        all from the room across the link.
        """
        alice = yield self.a.login("alice@a.example")
        alice.send(f"<presence to='room@conference.a.example/alice'><x xmlns='{NS_MUC}'/></presence>")
        yield nextMatching(alice, lambda e: e.name == "presence" and e.getAttribute("from") == "room@conference.a.example/alice")
        alice.send(
            "<iq to='room@conference.a.example' type='set' id='c1'><query xmlns='http://jabber.org/protocol/muc#owner'>"
            "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
        )
        created = yield nextMatching(alice, lambda e: e.name == "iq")
        self.assertEqual(created["type"], "result")
        bob = yield self.b.login("bob@b.example")
        bob.send(f"<presence to='room@conference.a.example/bob'><x xmlns='{NS_MUC}'/></presence>")
        other = yield nextMatching(bob, lambda e: e.name == "presence", timeout=10)
        self.assertEqual((other["from"], other["to"], other.getAttribute("type")), ("room@conference.a.example/alice", "bob@b.example/r", None))
        own = yield nextMatching(bob, lambda e: e.name == "presence", timeout=10)
        self.assertEqual((own["from"], own["to"]), ("room@conference.a.example/bob", "bob@b.example/r"))
        statuses = {s["code"] for s in next(own.elements(NS_MUC_USER, "x")).elements(NS_MUC_USER, "status")}
        self.assertIn("110", statuses)
        joined = yield nextMatching(alice, lambda e: e.name == "presence" and e.getAttribute("from") == "room@conference.a.example/bob")
        self.assertIsNone(joined.getAttribute("type"))
        alice.send("<message to='room@conference.a.example' type='groupchat' id='g1'><body>hello remote bob</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message" and e.getAttribute("id") == "g1", timeout=10)
        self.assertEqual(
            xml(got),
            "<message from='room@conference.a.example/alice' id='g1' to='bob@b.example/r' type='groupchat'><body>hello remote bob</body></message>",
        )
        bob.send("<message to='room@conference.a.example' type='groupchat' id='g2'><body>hi from b</body></message>")
        got = yield nextMatching(alice, lambda e: e.name == "message" and e.getAttribute("id") == "g2", timeout=10)
        self.assertEqual(
            xml(got),
            "<message from='room@conference.a.example/bob' id='g2' to='alice@a.example/r' type='groupchat'><body>hi from b</body></message>",
        )
        # One outgoing stream from a.example to b.example carries the room's domain, by dialback.
        outgoing = [s for s in self.a.fed.streams if type(s).__name__ == "OutboundStream" and s.remote == "b.example"]
        self.assertEqual([s.pairs.get(("conference.a.example", "b.example")) for s in outgoing], ["dialback"])
        self.assertEqual(inboundMethods(self.b.fed, "conference.a.example"), ["dialback"])
