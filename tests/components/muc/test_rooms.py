"""
Rooms (XEP-0045 §10): instant and reserved creation, the configuration
form, changes and their notices, destruction, persistence in the store
(surviving a restart), temporary rooms, and the service limits on rooms.
"""

from __future__ import annotations

from twisted.internet import defer

from components.muc import store as S
from tests.components.muc.support import (
    ALICE,
    BOB,
    CAROL,
    NS_DATA,
    NS_OWNER,
    NS_USER,
    ROOM,
    MucTestCase,
    error,
    item,
    userX,
)


class CreationTests(MucTestCase):
    """Instant and reserved rooms (§10.1)."""

    def test_instantRoom(self):
        """An empty submitted form accepts the defaults and unlocks the room."""
        self.join(ALICE, "Alice")
        self.pop()
        self.send(f"<iq type='set' id='create1' from='{ALICE}' to='{ROOM}'><query xmlns='{NS_OWNER}'>"
                  f"<x xmlns='{NS_DATA}' type='submit'/></query></iq>")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='result' id='create1'/>")
        self.assertFalse(self.room.locked)

    def test_reservedRoom(self):
        """The owner gets the form with every muc#roomconfig field, fills it in, and the room takes it."""
        self.join(ALICE, "Alice")
        self.pop()
        self.send(f"<iq type='get' id='c1' from='{ALICE}' to='{ROOM}'><query xmlns='{NS_OWNER}'/></iq>")
        reply = self.pop()[0]
        form = next(reply.query.elements(NS_DATA, "x"))
        fields = [f.getAttribute("var") for f in form.elements(NS_DATA, "field")]
        self.assertEqual(fields, [
            "FORM_TYPE", "muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_lang",
            "muc#roomconfig_enablelogging", "muc#roomconfig_changesubject", "muc#roomconfig_allowinvites",
            "muc#roomconfig_allowpm", "muc#roomconfig_maxusers", "muc#roomconfig_presencebroadcast",
            "muc#roomconfig_getmemberlist", "muc#roomconfig_publicroom", "muc#roomconfig_persistentroom",
            "muc#roomconfig_moderatedroom", "muc#roomconfig_membersonly", "muc#roomconfig_passwordprotectedroom",
            "muc#roomconfig_roomsecret", "muc#roomconfig_whois", "muc#maxhistoryfetch",
            "muc#roomconfig_roomadmins", "muc#roomconfig_roomowners",
        ])
        self.configure({
            "FORM_TYPE": "http://jabber.org/protocol/muc#roomconfig",
            "muc#roomconfig_roomname": "A Dark Cave",
            "muc#roomconfig_roomdesc": "The place for all good witches!",
            "muc#roomconfig_lang": "en",
            "muc#roomconfig_changesubject": "1",
            "muc#roomconfig_maxusers": "10",
            "muc#roomconfig_publicroom": "0",
            "muc#roomconfig_persistentroom": "1",
            "muc#roomconfig_moderatedroom": "1",
            "muc#roomconfig_whois": "anyone",
            "muc#maxhistoryfetch": "50",
            "muc#roomconfig_allowpm": "participants",
            "muc#roomconfig_roomadmins": ["wiccarocks@shakespeare.lit", "hecate@shakespeare.lit"],
        }, id_="create2")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='result' id='create2'/>")
        c = self.room.config
        self.assertEqual(
            (c.name, c.description, c.language, c.changeSubject, c.maxUsers, c.public, c.persistent, c.moderated,
             c.whois, c.historyLength, c.allowPM),
            ("A Dark Cave", "The place for all good witches!", "en", True, 10, False, True, True, "anyone", 50, "participants"),
        )
        self.assertEqual(self.room.affiliated("admin"), ["hecate@shakespeare.lit", "wiccarocks@shakespeare.lit"])
        self.assertFalse(self.room.locked)

    def test_unacceptableConfiguration(self):
        """A password-protected room without a password is not-acceptable, and nothing changes."""
        self.join(ALICE, "Alice")
        self.pop()
        self.configure({"muc#roomconfig_passwordprotectedroom": "1"}, id_="x")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='error' id='x'>"
                    + error("not-acceptable", "modify", "a password-protected room needs a password", by=None) + "</iq>")
        self.assertTrue(self.room.locked)

    def test_maxUsersAboveServiceLimit(self):
        """A room may not admit more than the service's max_occupants."""
        self.create()
        self.configure({"muc#roomconfig_maxusers": "5000"}, id_="x")
        self.assertIn("not-acceptable", self.pop()[0].toXml())

    def test_cancelInitialConfiguration(self):
        """Cancelling the initial configuration destroys the room (§10.1.3)."""
        self.join(ALICE, "Alice")
        self.pop()
        self.send(f"<iq type='set' id='c' from='{ALICE}' to='{ROOM}'><query xmlns='{NS_OWNER}'>"
                  f"<x xmlns='{NS_DATA}' type='cancel'/></query></iq>")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{ALICE}' type='unavailable'>"
            + userX(item("none", "none"), extra=f"<destroy xmlns='{NS_USER}'/>") + "</presence>",
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='c'/>",
        )
        self.assertNotIn("room", self.service.rooms)

    def test_creatorLeavesLockedRoom(self):
        """A room nobody configured vanishes when its creator leaves."""
        self.join(ALICE, "Alice")
        self.send(f"<presence from='{ALICE}' to='{ROOM}/Alice' type='unavailable'/>")
        self.assertNotIn("room", self.service.rooms)

    def test_nonOwnerCannotConfigure(self):
        """Asking for or submitting the form takes an owner: forbidden."""
        self.create()
        self.enter(BOB, "Bob")
        self.send(f"<iq type='get' id='g' from='{BOB}' to='{ROOM}'><query xmlns='{NS_OWNER}'/></iq>")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='g'>"
                    + error("forbidden", "auth", "only owners configure the room", by=None) + "</iq>")
        self.configure({"muc#roomconfig_roomname": "Mine"}, owner=BOB, id_="s")
        self.assertIn("forbidden", self.pop()[0].toXml())

    def test_ownerIqToNonexistentRoom(self):
        """muc#owner to a room that does not exist is item-not-found."""
        self.send(f"<iq type='get' id='g' from='{BOB}' to='none@conference.localhost'><query xmlns='{NS_OWNER}'/></iq>")
        self.expect(f"<iq from='none@conference.localhost' to='{BOB}' type='error' id='g'>"
                    + error("item-not-found", "cancel", by="none@conference.localhost") + "</iq>")


class ConfigurationChangeTests(MucTestCase):
    """Later changes and their notices (§10.2)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_noticeCodes(self):
        """Logging on gives 170, non-anonymous 172; other changes 104."""
        self.configure({"muc#roomconfig_enablelogging": "1", "muc#roomconfig_whois": "anyone"})
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='cfg'/>",
            *(f"<message from='{ROOM}' to='{who}' type='groupchat' id='id1'>" + userX(codes=("170", "172")) + "</message>"
              for who in (ALICE, BOB)),
        )
        self.configure({"muc#roomconfig_enablelogging": "0", "muc#roomconfig_whois": "moderators", "muc#roomconfig_roomname": "N"})
        sent = self.pop()
        self.assertEqual([s.getAttribute("code") for s in sent[1].x.elements(NS_USER, "status")], ["104", "171", "173"])

    def test_cancelKeepsConfiguration(self):
        """Cancelling a later configuration leaves the room as it was."""
        self.send(f"<iq type='set' id='c' from='{ALICE}' to='{ROOM}'><query xmlns='{NS_OWNER}'>"
                  f"<x xmlns='{NS_DATA}' type='cancel'/></query></iq>")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='result' id='c'/>")
        self.assertIn("room", self.service.rooms)

    def test_unmoderatingGivesVoice(self):
        """When a room stops being moderated its visitors become participants."""
        self.configure({"muc#roomconfig_moderatedroom": "1"})
        self.enter(CAROL, "Carol")
        self.assertEqual(self.room.occupants["Carol"].role, "visitor")
        self.configure({"muc#roomconfig_moderatedroom": "0"})
        self.pop()
        self.assertEqual(self.room.occupants["Carol"].role, "participant")


class DestroyTests(MucTestCase):
    """Destroying a room (§10.9)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_destroy(self):
        """Each occupant gets one unavailable with <destroy/>, reason and alternate venue; the owner the result."""
        self.send(f"<iq type='set' id='begone' from='{ALICE}' to='{ROOM}'><query xmlns='{NS_OWNER}'>"
                  "<destroy jid='coven@conference.localhost'><reason>Macbeth doth come.</reason></destroy></query></iq>")
        destroy = (f"<destroy xmlns='{NS_USER}' jid='coven@conference.localhost'>"
                   "<reason>Macbeth doth come.</reason></destroy>")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{ALICE}' type='unavailable'>" + userX(item("none", "none"), extra=destroy) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>" + userX(item("none", "none"), extra=destroy) + "</presence>",
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='begone'/>",
        )
        self.assertNotIn("room", self.service.rooms)

    def test_nonOwnerCannotDestroy(self):
        """Only an owner destroys: forbidden."""
        self.send(f"<iq type='set' id='d' from='{BOB}' to='{ROOM}'><query xmlns='{NS_OWNER}'><destroy/></query></iq>")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='d'>"
                    + error("forbidden", "auth", "only owners configure or destroy the room", by=None) + "</iq>")


class PersistenceTests(MucTestCase):
    """Persistent rooms in the store (own tables, own migrations)."""

    @defer.inlineCallbacks
    def test_persistentRoomSurvivesRestart(self):
        """A persistent room keeps its configuration, subject and affiliations across a restart of the service."""
        self.create(fields="<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
                           "<field var='muc#roomconfig_roomname'><value>Cave</value></field>")
        self.admin(ALICE, "<item affiliation='member' jid='bob@localhost' nick='Bob'/>"
                          "<item affiliation='outcast' jid='eve@localhost'><reason>spam</reason></item>")
        self.send(f"<message from='{ALICE}' to='{ROOM}' type='groupchat' id='s'><subject>Spells</subject></message>")
        self.pop()
        yield self.restartService()
        room = self.service.rooms["room"]
        self.assertEqual((room.config.name, room.config.persistent, room.subject, room.subjectNick), ("Cave", True, "Spells", "Alice"))
        self.assertEqual({j: (a.affiliation, a.nick, a.reason) for j, a in room.affiliations.items()}, {
            "alice@localhost": ("owner", None, None),
            "bob@localhost": ("member", "Bob", None),
            "eve@localhost": ("outcast", None, "spam"),
        })
        self.assertFalse(room.locked)
        self.assertEqual(room.occupants, {})

    @defer.inlineCallbacks
    def test_emptyPersistentRoomStays(self):
        """An empty persistent room stays; making it temporary forgets it."""
        self.create(fields="<field var='muc#roomconfig_persistentroom'><value>1</value></field>")
        self.send(f"<presence from='{ALICE}' to='{ROOM}/Alice' type='unavailable'/>")
        self.assertIn("room", self.service.rooms)
        self.configure({"muc#roomconfig_persistentroom": "0"})
        self.pop()
        self.assertNotIn("room", self.service.rooms)
        yield self.service.whenIdle()
        stored = yield self.store.runInteraction("t", S.load_rooms_txn, "conference.localhost")
        self.assertEqual(stored, [])

    @defer.inlineCallbacks
    def test_temporaryRoomNotStored(self):
        """A temporary room never reaches the store."""
        self.create()
        yield self.restartService()
        self.assertEqual(self.service.rooms, {})

    @defer.inlineCallbacks
    def test_destroyedRoomForgotten(self):
        """Destroying a persistent room deletes it from the store."""
        self.create(fields="<field var='muc#roomconfig_persistentroom'><value>1</value></field>")
        self.send(f"<iq type='set' id='d' from='{ALICE}' to='{ROOM}'><query xmlns='{NS_OWNER}'><destroy/></query></iq>")
        yield self.restartService()
        self.assertEqual(self.service.rooms, {})


class CreationLimitTests(MucTestCase):
    """Who may create rooms, and how many."""

    muc = {"max_rooms": 2, "max_rooms_per_user": 1, "room_creators": ["localhost"]}

    def test_roomsPerUser(self):
        """An account that owns max_rooms_per_user rooms cannot create another: resource-constraint."""
        self.create()
        self.join(ALICE, "Alice", room="second@conference.localhost")
        self.expect(f"<presence from='second@conference.localhost/Alice' to='{ALICE}' type='error'>"
                    f"<x xmlns='http://jabber.org/protocol/muc'/>"
                    + error("resource-constraint", "wait", "you own as many rooms as you may", by="second@conference.localhost")
                    + "</presence>")

    def test_roomsPerService(self):
        """A service holding max_rooms rooms creates no more."""
        self.create()
        self.create(owner=BOB, nick="Bob", room="two@conference.localhost")
        self.join(CAROL, "Carol", room="three@conference.localhost")
        self.assertIn("this service holds as many rooms as it may", self.pop()[0].toXml())

    def test_restrictedCreation(self):
        """Only the listed domains (or JIDs) create rooms: not-allowed for others (§10.1.1)."""
        self.join("mallory@elsewhere.example/m", "M")
        self.assertIn("not-allowed", self.pop()[0].toXml())
        self.assertEqual(self.service.rooms, {})

