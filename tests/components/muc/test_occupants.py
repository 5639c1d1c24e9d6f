"""
Occupants (XEP-0045 §7): entering with every refusal, the presence a
newcomer and the room exchange, status codes, nickname changes, several
sessions under one nickname, leaving, history and the subject on entry.
"""

from __future__ import annotations

from tests.components.muc.support import (
    ALICE,
    BOB,
    CAROL,
    NS_MUC,
    ROOM,
    MucTestCase,
    error,
    item,
    userX,
)


class EnterTests(MucTestCase):
    """Entering a room (§7.2)."""

    def test_createRoom(self):
        """The first to enter creates the room: owner, moderator, 110 and 201, then an empty subject."""
        self.join(ALICE, "Alice", id_="j1")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{ALICE}' id='j1'>"
            + userX(item("owner", "moderator", ALICE), codes=("110", "201")) + "</presence>",
            f"<message from='{ROOM}' to='{ALICE}' type='groupchat' id='id1'><subject/></message>",
        )
        self.assertTrue(self.room.locked)

    def test_exchangeOfPresence(self):
        """A newcomer gets the others' presence, the others its presence, and its self-presence comes last."""
        self.create()
        self.join(BOB, "Bob", id_="j2", payload="<show>away</show>")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{BOB}'>" + userX(item("owner", "moderator")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' id='j2'><show>away</show>"
            + userX(item("none", "participant", BOB)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' id='j2'><show>away</show>"
            + userX(item("none", "participant"), codes=("110",)) + "</presence>",
            f"<message from='{ROOM}' to='{BOB}' type='groupchat' id='id1'><subject/></message>",
        )

    def test_nonAnonymousRoom(self):
        """In a non-anonymous room everyone sees real JIDs, and the newcomer is warned with 100."""
        self.create(fields="<field var='muc#roomconfig_whois'><value>anyone</value></field>")
        self.join(BOB, "Bob")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{BOB}'>" + userX(item("owner", "moderator", ALICE)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}'>" + userX(item("none", "participant", BOB)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}'>" + userX(item("none", "participant", BOB), codes=("100", "110")) + "</presence>",
            f"<message from='{ROOM}' to='{BOB}' type='groupchat' id='id1'><subject/></message>",
        )

    def test_loggedRoom(self):
        """Entering a logged room, the self-presence carries 170."""
        self.create(fields="<field var='muc#roomconfig_enablelogging'><value>1</value></field>")
        self.join(BOB, "Bob")
        self.assertIn(userX(item("none", "participant"), codes=("110", "170")), self.sentTo(BOB)[1])

    def test_nickModified(self):
        """A nickname changed by resourceprep is the one used, with 210 in the self-presence."""
        self.create()
        self.join(BOB, "\uff22ob")
        sent = self.sentTo(BOB)
        self.assertIn(f"from='{ROOM}/Bob'", sent[1])
        self.assertIn(userX(item("none", "participant"), codes=("110", "210")), sent[1])

    def test_noNickname(self):
        """Presence to the room's bare JID is jid-malformed (§7.2.1)."""
        self.create()
        self.send(f"<presence from='{BOB}' to='{ROOM}' id='n'><x xmlns='{NS_MUC}'/></presence>")
        self.expect(f"<presence from='{ROOM}' to='{BOB}' id='n' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("jid-malformed", "modify", "no nickname given") + "</presence>")

    def test_nicknameConflict(self):
        """A nickname in use by another user is refused with conflict (§7.2.9)."""
        self.create()
        self.join(BOB, "Alice", id_="c")
        self.expect(f"<presence from='{ROOM}/Alice' to='{BOB}' id='c' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("conflict", "cancel", "that nickname is in use") + "</presence>")

    def test_passwordRequired(self):
        """A password-protected room refuses a missing or wrong password with not-authorized, and admits the right one."""
        self.create(fields="<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
                           "<field var='muc#roomconfig_roomsecret'><value>cauldron</value></field>")
        self.join(BOB, "Bob", id_="p1")
        self.expect(f"<presence from='{ROOM}/Bob' to='{BOB}' id='p1' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("not-authorized", "auth", "a password is required") + "</presence>")
        self.join(BOB, "Bob", id_="p2", extra="<password>wrong</password>")
        self.expect(f"<presence from='{ROOM}/Bob' to='{BOB}' id='p2' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("not-authorized", "auth", "wrong password") + "</presence>")
        self.join(BOB, "Bob", extra="<password>cauldron</password>")
        self.assertIn("Bob", self.room.occupants)

    def test_membersOnly(self):
        """A members-only room refuses a non-member with registration-required (§7.2.7)."""
        self.create(fields="<field var='muc#roomconfig_membersonly'><value>1</value></field>")
        self.join(BOB, "Bob", id_="m")
        self.expect(f"<presence from='{ROOM}/Bob' to='{BOB}' id='m' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("registration-required", "auth", "this room is for members only") + "</presence>")

    def test_banned(self):
        """An outcast is refused with forbidden (§7.2.8)."""
        self.create()
        self.admin(ALICE, "<item affiliation='outcast' jid='bob@localhost'/>")
        self.pop()
        self.join(BOB, "Bob", id_="b")
        self.expect(f"<presence from='{ROOM}/Bob' to='{BOB}' id='b' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("forbidden", "auth", "you are banned from this room") + "</presence>")

    def test_maxUsers(self):
        """A full room refuses newcomers with service-unavailable of type wait (§7.2.10); an admin still enters."""
        self.create(fields="<field var='muc#roomconfig_maxusers'><value>2</value></field>")
        self.enter(BOB, "Bob")
        self.join(CAROL, "Carol", id_="f")
        self.expect(f"<presence from='{ROOM}/Carol' to='{CAROL}' id='f' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("service-unavailable", "wait", "the room is full") + "</presence>")
        self.admin(ALICE, "<item affiliation='admin' jid='carol@localhost'/>")
        self.pop()
        self.enter(CAROL, "Carol")
        self.assertEqual(sorted(self.room.occupants), ["Alice", "Bob", "Carol"])

    def test_lockedRoom(self):
        """Nobody else enters a room awaiting its configuration: item-not-found (§7.2.11)."""
        self.join(ALICE, "Alice")
        self.pop()
        self.join(BOB, "Bob", id_="l")
        self.expect(f"<presence from='{ROOM}/Bob' to='{BOB}' id='l' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("item-not-found", "cancel", "the room is being configured") + "</presence>")

    def test_presenceWithoutMucExtension(self):
        """§7.2.22: presence without <x/> from a non-occupant is answered with a kick (110, 307, 333)."""
        self.create()
        self.send(f"<presence from='{BOB}' to='{ROOM}/Bob'/>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>"
            + userX(item("none", "none", inner="<reason>You are not in the room.</reason>"), codes=("110", "307", "333"))
            + "</presence>"
        )
        self.assertNotIn("Bob", self.room.occupants)

    def test_presenceDoesNotLeakPassword(self):
        """A refused join's error carries an empty muc <x/>, never the password sent."""
        self.create(fields="<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
                           "<field var='muc#roomconfig_roomsecret'><value>cauldron</value></field>")
        self.join(BOB, "Bob", extra="<password>guess</password>")
        self.assertNotIn("guess", self.sentTo(BOB)[0])


class PresenceTests(MucTestCase):
    """Presence of occupants after entering (§7.6, §7.7, §7.14)."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            self.enter(BOB, "Bob")

        return d.addCallback(ready)

    def test_availabilityChange(self):
        """A new status is reflected to every occupant, the sender included (110)."""
        self.send(f"<presence from='{BOB}' to='{ROOM}/Bob' id='s'><show>xa</show><status>gone</status></presence>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{ALICE}' id='s'><show>xa</show><status>gone</status>"
            + userX(item("none", "participant", BOB)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' id='s'><show>xa</show><status>gone</status>"
            + userX(item("none", "participant"), codes=("110",)) + "</presence>",
        )

    def test_nickChange(self):
        """§7.6: unavailable from the old nick with the new one and 303, then presence from the new nick."""
        self.send(f"<presence from='{BOB}' to='{ROOM}/Robert' id='n'/>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'>"
            + userX(item("none", "participant", BOB, nick="Robert"), codes=("303",)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>"
            + userX(item("none", "participant", nick="Robert"), codes=("110", "303")) + "</presence>",
            f"<presence from='{ROOM}/Robert' to='{ALICE}' id='n'>" + userX(item("none", "participant", BOB)) + "</presence>",
            f"<presence from='{ROOM}/Robert' to='{BOB}' id='n'>" + userX(item("none", "participant"), codes=("110",)) + "</presence>",
        )
        self.assertEqual(sorted(self.room.occupants), ["Alice", "Robert"])

    def test_nickChangeConflict(self):
        """A nickname change to a nickname in use is refused with conflict and changes nothing."""
        self.send(f"<presence from='{BOB}' to='{ROOM}/Alice' id='n'/>")
        self.expect(f"<presence from='{ROOM}/Alice' to='{BOB}' id='n' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("conflict", "cancel", "that nickname is in use") + "</presence>")
        self.assertEqual(sorted(self.room.occupants), ["Alice", "Bob"])

    def test_reservedNickname(self):
        """A nickname reserved by a member (the nick of its member item) is refused to others."""
        self.admin(ALICE, "<item affiliation='member' jid='carol@localhost' nick='Witch'/>")
        self.pop()
        self.join("dave@localhost/d", "Witch", id_="w")
        self.expect(f"<presence from='{ROOM}/Witch' to='dave@localhost/d' id='w' type='error'><x xmlns='{NS_MUC}'/>"
                    + error("conflict", "cancel", "that nickname is reserved") + "</presence>")
        self.enter(CAROL, "Witch")
        self.assertIn("Witch", self.room.occupants)

    def test_leave(self):
        """§7.14: the leaver gets its unavailable (110) first, then the others, with role none."""
        self.send(f"<presence from='{BOB}' to='{ROOM}/Bob' type='unavailable'><status>bye</status></presence>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'><status>bye</status>"
            + userX(item("none", "none"), codes=("110",)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'><status>bye</status>"
            + userX(item("none", "none", BOB)) + "</presence>",
        )
        self.assertNotIn("Bob", self.room.occupants)

    def test_unavailableFromNonOccupantIgnored(self):
        """§17.2.5: unavailable presence from someone not in the room is ignored."""
        self.send(f"<presence from='{CAROL}' to='{ROOM}/Carol' type='unavailable'/>")
        self.expect()

    def test_temporaryRoomVanishesWhenEmpty(self):
        """A temporary room ceases to exist when its last occupant leaves."""
        self.send(f"<presence from='{BOB}' to='{ROOM}/Bob' type='unavailable'/>")
        self.send(f"<presence from='{ALICE}' to='{ROOM}/Alice' type='unavailable'/>")
        self.pop()
        self.assertNotIn("room", self.service.rooms)

    def test_twoSessionsOneNick(self):
        """A second session of the same user joins the same nickname; the room sees one occupant."""
        self.join("bob@localhost/phone", "Bob")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='bob@localhost/phone'>" + userX(item("owner", "moderator")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}'>" + userX(item("none", "participant", "bob@localhost/phone")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}'>" + userX(item("none", "participant"), codes=("110",)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='bob@localhost/phone'>" + userX(item("none", "participant"), codes=("110",)) + "</presence>",
            f"<message from='{ROOM}' to='bob@localhost/phone' type='groupchat' id='id1'><subject/></message>",
        )
        self.say(ALICE, "hi")
        self.assertEqual(sorted(e.getAttribute("to") for e in self.pop()), [ALICE, BOB, "bob@localhost/phone"])

    def test_oneOfTwoSessionsLeaves(self):
        """When one of two sessions leaves, only it gets unavailable; the room sees the remaining one."""
        self.enter("bob@localhost/phone", "Bob")
        self.send(f"<presence from='bob@localhost/phone' to='{ROOM}/Bob' type='unavailable'/>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='bob@localhost/phone' type='unavailable'>"
            + userX(item("none", "none"), codes=("110",)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}'>" + userX(item("none", "participant", BOB)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}'>" + userX(item("none", "participant"), codes=("110",)) + "</presence>",
        )
        self.assertEqual(list(self.room.occupants["Bob"].sessions), [BOB])

    def test_rejoinResynchronises(self):
        """§7.2.1: a join from a session already in the room gets the room again, the room sees nothing new."""
        self.join(BOB, "Bob")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{BOB}'>" + userX(item("owner", "moderator")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}'>" + userX(item("none", "participant"), codes=("110",)) + "</presence>",
            f"<message from='{ROOM}' to='{BOB}' type='groupchat' id='id1'><subject/></message>",
        )

    def test_presenceBroadcastByRole(self):
        """Visitors' presence is not broadcast when the room says so; they still get their own."""
        self.configure({"muc#roomconfig_moderatedroom": "1", "muc#roomconfig_presencebroadcast": ["moderator", "participant"]})
        self.pop()
        self.join(CAROL, "Carol")
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{CAROL}'>" + userX(item("owner", "moderator")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{CAROL}'>" + userX(item("none", "participant")) + "</presence>",
            f"<presence from='{ROOM}/Carol' to='{CAROL}'>" + userX(item("none", "visitor"), codes=("110",)) + "</presence>",
            f"<message from='{ROOM}' to='{CAROL}' type='groupchat' id='id2'><subject/></message>",
        )


class HistoryTests(MucTestCase):
    """Discussion history on entry (§7.2.12, §7.2.13)."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            for n, t in enumerate(("one", "two", "three")):
                self.clock.advance(60)
                self.say(ALICE, t, id_=f"h{n}")
            self.pop()

        return d.addCallback(ready)

    def history(self, extra: str = "") -> list[str]:
        self.join(BOB, "Bob", extra=extra)
        return [s for s in self.sentTo(BOB) if "<body>" in s]

    def test_historyWithDelay(self):
        """History comes after the self-presence and before the subject, each message stamped by the room."""
        self.join(BOB, "Bob")
        sent = self.sentTo(BOB)
        self.assertEqual(len(sent), 6)
        self.assertIn("status code='110'", sent[1])
        self.assertEqual(sent[2], (
            f"<message from='{ROOM}/Alice' id='h0' to='{BOB}' type='groupchat'><body>one</body>"
            f"<delay from='{ROOM}' stamp='1970-01-01T00:01:00Z' xmlns='urn:xmpp:delay'/></message>"))
        self.assertIn("<subject/>", sent[5])

    def test_maxstanzas(self):
        """maxstanzas keeps the newest messages."""
        self.assertEqual(len(self.history("<history maxstanzas='2'/>")), 2)
        self.assertNotIn("one", "".join(self.history("<history maxstanzas='2'/>")))

    def test_maxcharsZero(self):
        """maxchars='0' asks for no history at all."""
        self.assertEqual(self.history("<history maxchars='0'/>"), [])

    def test_maxchars(self):
        """maxchars counts whole stanzas: only those that fit are sent."""
        got = self.history("<history maxchars='250'/>")
        self.assertEqual(len(got), 1)
        self.assertIn("three", got[0])

    def test_seconds(self):
        """seconds limits history to the last seconds."""
        got = self.history("<history seconds='90'/>")
        self.assertEqual(len(got), 2)

    def test_since(self):
        """since limits history to messages from that time on."""
        got = self.history("<history since='1970-01-01T00:02:00Z'/>")
        self.assertEqual(len(got), 2)

    def test_historyLength(self):
        """The room's history length caps what is kept."""
        self.configure({"muc#maxhistoryfetch": "1"})
        self.pop()
        self.assertEqual(len(self.history()), 1)


class SubjectOnEntryTests(MucTestCase):
    """The subject after the history (§7.2.15)."""

    def test_subjectWithSetterAndStamp(self):
        """A newcomer gets the subject from the occupant who set it, stamped with when."""
        self.create()
        self.clock.advance(30)
        self.send(f"<message from='{ALICE}' to='{ROOM}' type='groupchat' id='s'><subject>Spells</subject></message>")
        self.pop()
        self.join(BOB, "Bob")
        self.assertEqual(self.sentTo(BOB)[-1], (
            f"<message from='{ROOM}/Alice' id='id1' to='{BOB}' type='groupchat'><subject>Spells</subject>"
            f"<delay from='{ROOM}' stamp='1970-01-01T00:00:30Z' xmlns='urn:xmpp:delay'/></message>"))

