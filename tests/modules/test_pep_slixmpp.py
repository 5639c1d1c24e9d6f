"""
Personal eventing end to end: slixmpp clients with their own XEP-0115,
XEP-0163, XEP-0084, XEP-0223 and XEP-0402 plugins against the real server
over loopback, as modern clients use PEP.

Alice's roster: Bob, Carol and Dave ('both').  Erin is not in it.

- Alice publishes her avatar (XEP-0084): Bob, whose client wants avatar
  metadata (+notify), gets it and fetches the data; Carol, whose client
  does not, gets nothing.
- Alice stores bookmarks (XEP-0402) privately with publish-options:
  her other client gets them, Bob (who wants bookmarks) does not and may
  not read them.
- Bob logs in after Alice published: the last item arrives with his login.
- Dave's client advertises a caps hash that does not match its
  disco#info: the server does not trust it and sends him nothing.
- Alice's OMEMO device list (open access model via publish-options)
  reaches Bob, not Carol (no interest) nor Erin (no subscription), and
  Erin may still read it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from jabberd.store.caps import get_caps_txn
from jabberd.store.roster import RosterItem, apply_changes_txn
from tests.harness import ServerMixin, connectSlixmpp, deferred, slixmppClient
from tests.modules.test_im_slixmpp import waitFor

AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_METADATA = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0223", "xep_0402")


def fromNode(node: str):
    """Matches a pubsub notification about C{node}."""
    return lambda msg: msg["pubsub_event"]["items"]["node"] == node


class PepSlixmppTests(ServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        for user in ("alice", "bob", "carol", "dave", "erin"):
            yield self.addUser(f"{user}@localhost")
        yield self.seed("alice", [RosterItem(f"{c}@localhost", None, "both") for c in ("bob", "carol", "dave")])
        for contact in ("bob", "carol", "dave"):
            yield self.seed(contact, [RosterItem("alice@localhost", None, "both")])
        self.events: dict[str, list] = {}

    def seed(self, user: str, items: list[RosterItem]) -> defer.Deferred:
        changes: list[tuple] = [("item", item, 1) for item in items] + [("version", "seeded", 1, 0)]
        return self.server.store.runInteraction("seed", apply_changes_txn, "localhost", user, changes)

    @defer.inlineCallbacks
    def login(self, full: str, interests: tuple[str, ...] = (), avatars: bool = False, liar: bool = False):
        """
        A slixmpp client logged in with initial presence whose caps ask for
        C{interests} (and avatar metadata with the XEP-0084 plugin); wait
        until the server has verified them.  C{liar}: the caps advertise a
        made-up verification string.
        """
        client = slixmppClient(full, "secret", sslContext=self.clientSSLContext(), plugins=PLUGINS + (("xep_0084",) if avatars else ()))
        self.addCleanup(client.disconnect)
        events = self.events[full] = []
        client.add_event_handler("pubsub_publish", events.append)
        for node in interests:
            client.plugin["xep_0163"].add_interest(node)
        yield connectSlixmpp(client, self.server.port("c2s"))
        yield deferred(client.get_roster())
        caps = client.plugin["xep_0115"]
        yield deferred(caps.update_caps(broadcast=False))
        if liar:
            # Answer disco#info for the made-up string with the real
            # features (+notify included): only the hash gives it away.
            bogus = "bm90IGEgcmVhbCBoYXNoIGF0IGFsbA=="
            node = f"{caps.caps_node}#{bogus}"
            info = yield deferred(client.plugin["xep_0030"].get_info(jid=client.boundjid, local=True))
            for feature in info["features"]:
                client.plugin["xep_0030"].add_feature(feature, node=node)
            client.plugin["xep_0030"].add_identity("client", "bot", node=node)
            caps.broadcast = False
            presence = client.make_presence()
            presence["caps"]["hash"] = "sha-1"
            presence["caps"]["node"] = caps.caps_node
            presence["caps"]["ver"] = bogus
            presence.send()
        else:
            client.send_presence()
        wanted = set(interests) | ({AVATAR_METADATA} if avatars else set())
        yield self.serverKnows(full, wanted, liar)
        return client

    @defer.inlineCallbacks
    def serverKnows(self, full: str, interests: set[str], liar: bool, timeout: float = 10.0):
        """Wait until the server has settled the caps of C{full}'s session."""
        bare, _, resource = full.partition("/")
        capsModule = self.server.modules.modules["caps"]
        waited = 0.0
        while waited < timeout:
            session = self.server.sessions.get(bare, resource)
            if session is not None and session.available:
                state = session.data.get("caps")
                if liar and state is not None and not capsModule._lookups:
                    return
                if not liar and capsModule.interests(session) == frozenset(interests):
                    return
            yield task.deferLater(reactor, 0.02, lambda: None)
            waited += 0.02
        self.fail(f"the server never settled the caps of {full}")

    def quiet(self, seconds: float = 0.3) -> defer.Deferred:
        """Give stray notifications time to arrive."""
        return task.deferLater(reactor, seconds, lambda: None)

    def received(self, full: str, node: str) -> list:
        return [m for m in self.events[full] if m["pubsub_event"]["items"]["node"] == node]

    def publishOptions(self, client, options: dict[str, str]):
        form = client.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
        for var, value in options.items():
            form.add_field(var=var, value=value)
        return form

    @defer.inlineCallbacks
    def test_avatarReachesContactsThatWantIt(self):
        """Alice's avatar metadata notification reaches Bob (avatar +notify) but not Carol; Bob then fetches the data by its id."""
        alice = yield self.login("alice@localhost/home", avatars=True)
        bob = yield self.login("bob@localhost/work", avatars=True)
        yield self.login("carol@localhost/tab")
        avatar = alice.plugin["xep_0084"]
        avatarId = avatar.generate_id(PNG)
        yield deferred(avatar.publish_avatar(PNG))
        arrived = waitFor(bob, "avatar_metadata_publish")
        own = waitFor(alice, "avatar_metadata_publish")
        yield deferred(avatar.publish_avatar_metadata({"id": avatarId, "type": "image/png", "bytes": len(PNG), "width": "16", "height": "16"}))
        message = yield arrived
        yield own
        self.assertEqual(str(message["from"]), "alice@localhost")
        self.assertEqual(message["type"], "headline")
        item = message["pubsub_event"]["items"]["substanzas"][0]
        self.assertEqual(item["id"], avatarId)
        info = item["avatar_metadata"]["items"][0]
        self.assertEqual((info["id"], info["type"], int(info["bytes"])), (avatarId, "image/png", len(PNG)))
        fetched = yield deferred(bob.plugin["xep_0084"].retrieve_avatar("alice@localhost", avatarId))
        self.assertEqual(fetched["pubsub"]["items"]["substanzas"][0]["avatar_data"]["value"], PNG)
        yield self.quiet()
        self.assertEqual(self.events["carol@localhost/tab"], [])
        self.assertEqual([m["pubsub_event"]["items"]["node"] for m in self.events["bob@localhost/work"]], [AVATAR_METADATA])

    @defer.inlineCallbacks
    def test_bookmarksStayPrivate(self):
        """Bookmarks stored with XEP-0223 publish-options reach Alice's other client only; Bob may neither receive nor read them."""
        laptop = yield self.login("alice@localhost/laptop", (BOOKMARKS,))
        phone = yield self.login("alice@localhost/phone")
        bob = yield self.login("bob@localhost/work", (BOOKMARKS,))
        from slixmpp.plugins.xep_0402.stanza import Conference

        private = phone.plugin["xep_0223"]
        self.patch(private, "node_profiles", {BOOKMARKS: {"pubsub#max_items": "max", "pubsub#send_last_published_item": "never"}})
        for room, name in (("orchard@conference.localhost", "The Orchard"), ("balcony@conference.localhost", "Balcony")):
            conference = Conference()
            conference["name"] = name
            conference["autojoin"] = True
            conference["nick"] = "Alice"
            arrived = waitFor(laptop, "pubsub_publish", lambda m, room=room: m["pubsub_event"]["items"]["substanzas"][0]["id"] == room)
            yield deferred(private.store(conference, node=BOOKMARKS, id=room))
            message = yield arrived
            conference = message["pubsub_event"]["items"]["substanzas"][0].xml.find(f"{{{BOOKMARKS}}}conference")
            self.assertEqual((conference.get("name"), conference.findtext(f"{{{BOOKMARKS}}}nick")), (name, "Alice"))
        stored = yield deferred(phone.plugin["xep_0060"].get_items(None, BOOKMARKS))
        self.assertEqual(
            [i["id"] for i in stored["pubsub"]["items"]["substanzas"]],
            ["orchard@conference.localhost", "balcony@conference.localhost"],
        )
        config = self.server.modules.modules["pep"].services.cached("alice@localhost").nodes[BOOKMARKS].config
        self.assertEqual((config.access_model, config.persist_items, config.max_items, config.send_last_published_item), ("whitelist", True, -1, "never"))
        from slixmpp.exceptions import IqError

        try:
            yield deferred(bob.plugin["xep_0060"].get_items("alice@localhost", BOOKMARKS))
        except IqError as e:
            self.assertEqual((e.condition, e.iq["error"]["type"]), ("not-allowed", "cancel"))
        else:
            self.fail("Bob read Alice's bookmarks")
        yield self.quiet()
        self.assertEqual(self.events["bob@localhost/work"], [])

    @defer.inlineCallbacks
    def test_lastItemOnLogin(self):
        """Bob logs in after Alice published: her last device list reaches him with his login, stamped as delayed."""
        alice = yield self.login("alice@localhost/home")
        payload = ET.fromstring("<list xmlns='eu.siacs.conversations.axolotl'><device id='4223'/></list>")
        yield deferred(alice.plugin["xep_0060"].publish(None, DEVICELIST, id="current", payload=payload))
        bob = slixmppClient("bob@localhost/late", "secret", sslContext=self.clientSSLContext(), plugins=PLUGINS)
        self.addCleanup(bob.disconnect)
        bob.plugin["xep_0163"].add_interest(DEVICELIST)
        arrived = waitFor(bob, "pubsub_publish", fromNode(DEVICELIST), timeout=10)
        yield connectSlixmpp(bob, self.server.port("c2s"))
        yield deferred(bob.plugin["xep_0115"].update_caps(broadcast=False))
        bob.send_presence()
        message = yield arrived
        self.assertEqual(message["pubsub_event"]["items"]["substanzas"][0]["id"], "current")
        stamp = message.xml.find("{urn:xmpp:delay}delay").get("stamp")
        self.assertLessEqual(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc), datetime.now(timezone.utc))

    @defer.inlineCallbacks
    def test_wrongCapsHashNotTrusted(self):
        """Dave's caps do not hash to what his client answers: he gets no notification and nothing is cached, while Bob gets his."""
        alice = yield self.login("alice@localhost/home")
        bob = yield self.login("bob@localhost/work", (DEVICELIST,))
        yield self.login("dave@localhost/liar", (DEVICELIST,), liar=True)
        session = self.server.sessions.get("dave@localhost", "liar")
        self.assertEqual(self.server.modules.modules["caps"].interests(session), frozenset())
        stored = yield self.server.store.runInteraction("caps", get_caps_txn, "sha-1", "bm90IGEgcmVhbCBoYXNoIGF0IGFsbA==")
        self.assertIsNone(stored)
        arrived = waitFor(bob, "pubsub_publish", fromNode(DEVICELIST))
        payload = ET.fromstring("<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>")
        yield deferred(alice.plugin["xep_0060"].publish(None, DEVICELIST, id="current", payload=payload))
        yield arrived
        yield self.quiet()
        self.assertEqual(self.events["dave@localhost/liar"], [])

    @defer.inlineCallbacks
    def test_omemoDeviceList(self):
        """An OMEMO device list published with access_model=open reaches Bob (interested, subscribed), not Carol (not interested) nor Erin (not subscribed); Erin may read it."""
        alice = yield self.login("alice@localhost/home")
        bob = yield self.login("bob@localhost/work", (DEVICELIST,))
        yield self.login("carol@localhost/tab")
        erin = yield self.login("erin@localhost/x", (DEVICELIST,))
        arrived = waitFor(bob, "pubsub_publish", fromNode(DEVICELIST))
        payload = ET.fromstring("<list xmlns='eu.siacs.conversations.axolotl'><device id='4223'/><device id='31415'/></list>")
        options = self.publishOptions(alice, {"pubsub#access_model": "open"})
        yield deferred(alice.plugin["xep_0060"].publish(None, DEVICELIST, id="current", payload=payload, options=options))
        message = yield arrived
        devices = message["pubsub_event"]["items"]["substanzas"][0].xml.find("{eu.siacs.conversations.axolotl}list")
        self.assertEqual([d.get("id") for d in devices], ["4223", "31415"])
        read = yield deferred(erin.plugin["xep_0060"].get_items("alice@localhost", DEVICELIST))
        devices = read["pubsub"]["items"]["substanzas"][0].xml.find("{eu.siacs.conversations.axolotl}list")
        self.assertEqual([d.get("id") for d in devices], ["4223", "31415"])
        yield self.quiet()
        self.assertEqual((self.events["carol@localhost/tab"], self.events["erin@localhost/x"]), ([], []))

