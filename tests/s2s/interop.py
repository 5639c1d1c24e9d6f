"""
The interop conversation, run against each real peer (L{tests.s2s.peers}):
jabberd's C{a.example} with C{b.example} by certificate (SASL EXTERNAL),
jabberd's C{d.example} with C{c.example} by dialback; messages first one
way then the other, the subscription handshake and presence both ways,
vCard, disco and ping both ways.
"""

from __future__ import annotations

import itertools

from twisted.internet import defer

from tests.s2s.peers import shared, world
from tests.s2s.support import LOOPBACK, Node, eventually, inboundMethods, loginRaw, nextMatching, xml

_counter = itertools.count(1)

NS_ROSTER = "jabber:iq:roster"
NS_VCARD = "vcard-temp"
NS_MUC = "http://jabber.org/protocol/muc"


def fresh(name: str) -> str:
    """A user name not used before in this run (the peer keeps its accounts between tests)."""
    return f"{name}{next(_counter)}"


@defer.inlineCallbacks
def startJabberd(test, peer):
    """
    The jabberd node of the interop tests: a.example (CA certificate) and
    d.example (self-signed) on the world's fixed s2s port, with static
    routes to both of C{peer}'s domains.
    """
    w = world()
    node = Node(
        test,
        "a.example",
        "d.example",
        certificate=w.a,
        trust=w.ca.path,
        listen=[f"tcp:{w.jabberdPort}:interface={LOOPBACK}"],
        routes={"b.example": f"{LOOPBACK}:{peer.s2s}", "c.example": f"{LOOPBACK}:{peer.s2s}"},
        queue_max_age=30.0,
    )
    yield node.start(host={"d.example": {"certificate": w.d[0], "key": w.d[1]}})
    return node


class InteropMixin:
    """Mixed into a TestCase with C{peerClass}, C{ours}/C{theirs} domains and the C{method} expected."""

    peerClass: type
    ours = "a.example"
    theirs = "b.example"
    method = "sasl"

    @defer.inlineCallbacks
    def setUp(self):
        self.peer = shared(self.peerClass)
        self.node = yield startJabberd(self, self.peer)

    @defer.inlineCallbacks
    def ourUser(self, name: str):
        client = yield self.node.login(f"{fresh(name)}@{self.ours}")
        return client

    @defer.inlineCallbacks
    def theirUser(self, name: str):
        address = self.peer.register(f"{fresh(name)}@{self.theirs}")
        client = yield loginRaw(self, LOOPBACK, self.peer.c2s, address, "secret", "r")
        return client

    @defer.inlineCallbacks
    def online(self, client):
        """Fetch the roster and send initial presence (waiting for our own presence back)."""
        client.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        yield nextMatching(client, lambda e: e.name == "iq" and e.getAttribute("id") == "roster")
        client.send("<presence/>")
        yield nextMatching(client, lambda e: e.name == "presence" and e.getAttribute("from") == client.jid)

    def assertMethod(self):
        """jabberd authenticated to the peer, and the peer to jabberd, with the expected method."""
        out = self.node.fed.routes.get(self.theirs)
        self.assertEqual(out.stream.pairs.get((self.ours, self.theirs)) if out and out.stream else None, self.method)
        self.assertEqual(inboundMethods(self.node.fed, self.theirs), [self.method])

    def bare(self, client) -> str:
        return client.jid.split("/")[0]

    @defer.inlineCallbacks
    def test_messageOut(self):
        """Our user writes to the peer's user: jabberd connects out and authenticates; the message arrives as sent."""
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        alice.send(f"<message to='{bob.jid}' type='chat' id='m0'><body>one way</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(
            strip(got), f"<message from='{alice.jid}' id='m0' to='{bob.jid}' type='chat'><body>one way</body></message>"
        )
        out = self.node.fed.routes[self.theirs].stream
        self.assertEqual(out.pairs, {(self.ours, self.theirs): self.method})



class ConversationMixin(InteropMixin):
    """Everything else, both ways: needs the peer to connect to jabberd too."""

    @defer.inlineCallbacks
    def test_messagesWeStart(self):
        """Our user writes first (jabberd connects out), the peer's user answers (the peer connects in)."""
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        alice.send(f"<message to='{bob.jid}' type='chat' id='m1'><body>hello from jabberd</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(
            strip(got), f"<message from='{alice.jid}' id='m1' to='{bob.jid}' type='chat'><body>hello from jabberd</body></message>"
        )
        bob.send(f"<message to='{alice.jid}' type='chat' id='m2'><body>hello from {self.peer.name}</body></message>")
        got = yield nextMatching(alice, lambda e: e.name == "message")
        self.assertEqual(strip(got), f"<message from='{bob.jid}' id='m2' to='{alice.jid}' type='chat'><body>hello from {self.peer.name}</body></message>")
        self.assertMethod()

    @defer.inlineCallbacks
    def test_messagesTheyStart(self):
        """The peer's user writes first (the peer connects in), ours answers (jabberd connects out)."""
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        bob.send(f"<message to='{alice.jid}' type='chat' id='m1'><body>hi jabberd</body></message>")
        got = yield nextMatching(alice, lambda e: e.name == "message")
        self.assertEqual(strip(got), f"<message from='{bob.jid}' id='m1' to='{alice.jid}' type='chat'><body>hi jabberd</body></message>")
        alice.send(f"<message to='{bob.jid}' type='chat' id='m2'><body>hi {self.peer.name}</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(strip(got), f"<message from='{alice.jid}' id='m2' to='{bob.jid}' type='chat'><body>hi {self.peer.name}</body></message>")
        self.assertMethod()

    @defer.inlineCallbacks
    def subscribe(self, subscriber, contact):
        """C{subscriber} subscribes to C{contact}, who approves; C{subscriber} then gets C{contact}'s presence."""
        yield self.online(subscriber)
        yield self.online(contact)
        subscriber.send(f"<presence to='{self.bare(contact)}' type='subscribe' id='sub1'/>")
        request = yield nextMatching(contact, lambda e: e.name == "presence" and e.getAttribute("type") == "subscribe")
        # The receiving server may address it to the bare JID or, like
        # ejabberd, to the resource it delivers it to.
        self.assertEqual(request["to"].split("/")[0], self.bare(contact))
        self.assertEqual(strip(request, "to"), f"<presence from='{self.bare(subscriber)}' id='sub1' type='subscribe'/>")
        contact.send(f"<presence to='{self.bare(subscriber)}' type='subscribed' id='sub2'/>")
        approved = yield nextMatching(subscriber, lambda e: e.name == "presence" and e.getAttribute("type") == "subscribed")
        self.assertEqual(approved["to"].split("/")[0], self.bare(subscriber))
        self.assertEqual(strip(approved, "to"), f"<presence from='{self.bare(contact)}' id='sub2' type='subscribed'/>")
        # The roster push may come before the presence (ejabberd) or after it (jabberd, Prosody).
        isPush = lambda e: e.name == "iq" and e.getAttribute("type") == "set" and "subscription='to'" in xml(e)  # noqa: E731
        yield eventually(lambda: any(isPush(e) for e in subscriber.elements))
        push = next(e for e in subscriber.elements if isPush(e))
        item = push.query.item
        self.assertEqual((item["jid"], item["subscription"], item.getAttribute("ask")), (self.bare(contact), "to", None))
        presence = yield nextMatching(
            subscriber, lambda e: e.name == "presence" and e.getAttribute("from") == contact.jid and not e.getAttribute("type")
        )
        self.assertEqual(presence["to"].split("/")[0], self.bare(subscriber))
        contact.send("<presence><show>away</show><status>out</status></presence>")
        presence = yield nextMatching(subscriber, lambda e: e.name == "presence" and e.getAttribute("from") == contact.jid)
        self.assertEqual(
            strip(presence, "to"), f"<presence from='{contact.jid}'><show>away</show><status>out</status></presence>"
        )

    @defer.inlineCallbacks
    def test_subscriptionWeAsk(self):
        """Our user subscribes to the peer's user, who approves: rosters and presence follow."""
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        yield self.subscribe(alice, bob)

    @defer.inlineCallbacks
    def test_subscriptionTheyAsk(self):
        """The peer's user subscribes to ours, who approves: rosters and presence follow."""
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        yield self.subscribe(bob, alice)

    @defer.inlineCallbacks
    def test_vcardDiscoPing(self):
        """Each side reads the other's vCard, asks the other server for disco#info and pings it."""
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        for client, name in ((alice, "Alice A"), (bob, "Bob B")):
            client.send(f"<iq type='set' id='v0'><vCard xmlns='vcard-temp'><FN>{name}</FN></vCard></iq>")
            yield nextMatching(client, lambda e: e.getAttribute("id") == "v0")
        for asker, other, name, server in ((alice, bob, "Bob B", self.theirs), (bob, alice, "Alice A", self.ours)):
            asker.send(f"<iq type='get' id='v1' to='{self.bare(other)}'><vCard xmlns='vcard-temp'/></iq>")
            reply = yield nextMatching(asker, lambda e: e.name == "iq" and e.getAttribute("id") == "v1")
            self.assertEqual((reply["type"], reply["from"]), ("result", self.bare(other)))
            self.assertEqual(str(reply.vCard.FN), name)
            asker.send(f"<iq type='get' id='d1' to='{server}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            reply = yield nextMatching(asker, lambda e: e.name == "iq" and e.getAttribute("id") == "d1")
            self.assertEqual((reply["type"], reply["from"]), ("result", server))
            features = {f["var"] for f in reply.query.elements() if f.name == "feature"}
            self.assertIn("urn:xmpp:ping", features)
            asker.send(f"<iq type='get' id='p1' to='{server}'><ping xmlns='urn:xmpp:ping'/></iq>")
            reply = yield nextMatching(asker, lambda e: e.name == "iq" and e.getAttribute("id") == "p1")
            self.assertEqual(strip(reply), f"<iq from='{server}' id='p1' to='{asker.jid}' type='result'/>")
        self.assertMethod()

    @defer.inlineCallbacks
    def test_remoteOccupant(self):
        """
        The peer's user joins a room of jabberd's MUC service (conference.<ours>,
        an instant room our user made): presence both ways, groupchat both ways.
        """
        room = f"{fresh('room')}@conference.{self.ours}"
        alice = yield self.ourUser("alice")
        bob = yield self.theirUser("bob")
        alice.send(f"<presence to='{room}/alice'><x xmlns='{NS_MUC}'/></presence>")
        yield nextMatching(alice, lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/alice")
        alice.send(f"<iq to='{room}' type='set' id='c1'><query xmlns='{NS_MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
        created = yield nextMatching(alice, lambda e: e.name == "iq" and e.getAttribute("id") == "c1")
        self.assertEqual(created["type"], "result")
        bob.send(f"<presence to='{room}/bob'><x xmlns='{NS_MUC}'/></presence>")
        other = yield nextMatching(bob, lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/alice")
        self.assertEqual((other["to"], other.getAttribute("type")), (bob.jid, None))
        own = yield nextMatching(bob, lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/bob")
        codes = {s["code"] for x in own.elements(f"{NS_MUC}#user", "x") for s in x.elements(f"{NS_MUC}#user", "status")}
        self.assertIn("110", codes)
        yield nextMatching(alice, lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/bob")
        alice.send(f"<message to='{room}' type='groupchat' id='g1'><body>hello {self.peer.name}</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message" and e.getAttribute("id") == "g1")
        self.assertEqual(strip(got), f"<message from='{room}/alice' id='g1' to='{bob.jid}' type='groupchat'><body>hello {self.peer.name}</body></message>")
        bob.send(f"<message to='{room}' type='groupchat' id='g2'><body>hello jabberd</body></message>")
        got = yield nextMatching(alice, lambda e: e.name == "message" and e.getAttribute("id") == "g2")
        self.assertEqual(strip(got), f"<message from='{room}/bob' id='g2' to='{alice.jid}' type='groupchat'><body>hello jabberd</body></message>")


def strip(element, *drop: str) -> str:
    """xml() without the attributes a peer may add on its own (xml:lang) or C{drop}."""
    from tests.harness import xml as canonical

    attributes = dict(element.attributes)
    for key in list(element.attributes):
        if key == ("http://www.w3.org/XML/1998/namespace", "lang") or key in drop:
            del element.attributes[key]
    try:
        return canonical(element)
    finally:
        element.attributes.clear()
        element.attributes.update(attributes)
