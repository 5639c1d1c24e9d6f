"""
Messages (XEP-0045 §7.4, §7.5, §8.1): groupchat to everyone, the subject,
private messages, and the rate limit per occupant.
"""

from __future__ import annotations

from tests.components.muc.support import ALICE, BOB, CAROL, NS_USER, ROOM, MucTestCase, error


class GroupchatTests(MucTestCase):
    """Messages to all occupants."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            self.enter(BOB, "Bob")

        return d.addCallback(ready)

    def test_broadcast(self):
        """A message is reflected to every occupant from the sender's room JID, with the client's id."""
        self.send(f"<message from='{BOB}' to='{ROOM}' type='groupchat' id='m1' xml:lang='en'>"
                  "<body>Harpier cries</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        self.expect(
            f"<message from='{ROOM}/Bob' to='{ALICE}' type='groupchat' id='m1' xml:lang='en'><body>Harpier cries</body>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            f"<message from='{ROOM}/Bob' to='{BOB}' type='groupchat' id='m1' xml:lang='en'><body>Harpier cries</body>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        )

    def test_idGeneratedWhenMissing(self):
        """Without a client id the room makes one, the same for every copy."""
        self.send(f"<message from='{BOB}' to='{ROOM}' type='groupchat'><body>x</body></message>")
        self.assertEqual({e["id"] for e in self.pop()}, {"id1"})

    def test_forgedDelayRemoved(self):
        """A delay claiming to come from the room is removed: only the room stamps history."""
        self.send(f"<message from='{BOB}' to='{ROOM}' type='groupchat' id='f'><body>x</body>"
                  f"<delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='2002-10-13T23:58:37Z'/></message>")
        self.assertNotIn("delay", "".join(e.toXml() for e in self.pop()))

    def test_nonOccupant(self):
        """Someone not in the room gets not-acceptable (§7.4)."""
        self.send(f"<message from='{CAROL}' to='{ROOM}' type='groupchat' id='n'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}' to='{CAROL}' type='error' id='n'><body>x</body>"
                    + error("not-acceptable", "modify", "you are not in the room") + "</message>")

    def test_visitorHasNoVoice(self):
        """A visitor in a moderated room gets forbidden and nothing is reflected."""
        self.configure({"muc#roomconfig_moderatedroom": "1"})
        self.enter(CAROL, "Carol")
        self.send(f"<message from='{CAROL}' to='{ROOM}' type='groupchat' id='v'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}' to='{CAROL}' type='error' id='v'><body>x</body>"
                    + error("forbidden", "auth", "visitors cannot speak in a moderated room") + "</message>")

    def test_nonexistentRoom(self):
        """A message to a room that does not exist gets item-not-found (§17.1.3)."""
        self.send(f"<message from='{BOB}' to='nowhere@conference.localhost' type='groupchat' id='x'><body>x</body></message>")
        self.expect(f"<message from='nowhere@conference.localhost' to='{BOB}' type='error' id='x'><body>x</body>"
                    + error("item-not-found", "cancel", by="nowhere@conference.localhost") + "</message>")

    def test_normalMessageToRoom(self):
        """A message to the room that is not groupchat (nor an invitation or form) is a bad-request."""
        self.send(f"<message from='{BOB}' to='{ROOM}' id='c' type='chat'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}' to='{BOB}' type='error' id='c'><body>x</body>"
                    + error("bad-request", "modify", "messages to all occupants are of type groupchat") + "</message>")


class SubjectTests(MucTestCase):
    """Changing the subject (§8.1)."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            self.enter(BOB, "Bob")

        return d.addCallback(ready)

    def test_moderatorChangesSubject(self):
        """A moderator's subject goes to everyone from its room JID."""
        self.send(f"<message from='{ALICE}' to='{ROOM}' type='groupchat' id='s'><subject>Fire Burn</subject></message>")
        self.expect(
            f"<message from='{ROOM}/Alice' to='{ALICE}' type='groupchat' id='s'><subject>Fire Burn</subject></message>",
            f"<message from='{ROOM}/Alice' to='{BOB}' type='groupchat' id='s'><subject>Fire Burn</subject></message>",
        )
        self.assertEqual(self.room.subject, "Fire Burn")

    def test_participantMayNot(self):
        """A participant may not change the subject by default: forbidden, the subject kept."""
        self.send(f"<message from='{BOB}' to='{ROOM}' type='groupchat' id='s'><subject>Mine</subject></message>")
        self.expect(f"<message from='{ROOM}' to='{BOB}' type='error' id='s'><subject>Mine</subject>"
                    + error("forbidden", "auth", "you may not change the subject") + "</message>")
        self.assertIsNone(self.room.subject)

    def test_participantMayWhenAllowed(self):
        """With muc#roomconfig_changesubject a participant changes the subject."""
        self.configure({"muc#roomconfig_changesubject": "1"})
        self.pop()
        self.send(f"<message from='{BOB}' to='{ROOM}' type='groupchat' id='s'><subject>Mine</subject></message>")
        self.assertEqual(len(self.pop()), 2)
        self.assertEqual((self.room.subject, self.room.subjectNick), ("Mine", "Bob"))

    def test_subjectWithBodyIsAMessage(self):
        """A message with a subject and a body is an ordinary message, not a subject change."""
        self.send(f"<message from='{BOB}' to='{ROOM}' type='groupchat' id='s'><subject>T</subject><body>b</body></message>")
        self.assertEqual(len(self.pop()), 2)
        self.assertIsNone(self.room.subject)

    def test_emptySubjectClears(self):
        """An empty subject clears it."""
        self.send(f"<message from='{ALICE}' to='{ROOM}' type='groupchat' id='s'><subject>T</subject></message>")
        self.send(f"<message from='{ALICE}' to='{ROOM}' type='groupchat' id='s2'><subject/></message>")
        self.pop()
        self.assertEqual(self.room.subject, "")


class PrivateMessageTests(MucTestCase):
    """Private messages between occupants (§7.5)."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            self.enter(BOB, "Bob")
            self.enter("bob@localhost/phone", "Bob")

        return d.addCallback(ready)

    def test_deliveredToEverySession(self):
        """A private message reaches every session of the recipient, from the sender's room JID, with <x/>."""
        self.send(f"<message from='{ALICE}' to='{ROOM}/Bob' type='chat' id='p'><body>psst</body></message>")
        self.expect(
            f"<message from='{ROOM}/Alice' to='{BOB}' type='chat' id='p'><body>psst</body><x xmlns='{NS_USER}'/></message>",
            f"<message from='{ROOM}/Alice' to='bob@localhost/phone' type='chat' id='p'><body>psst</body><x xmlns='{NS_USER}'/></message>",
        )

    def test_groupchatTypeRefused(self):
        """A private message of type groupchat is a bad-request."""
        self.send(f"<message from='{ALICE}' to='{ROOM}/Bob' type='groupchat' id='g'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}/Bob' to='{ALICE}' type='error' id='g'><body>x</body>"
                    + error("bad-request", "modify", "a private message is not of type groupchat") + "</message>")

    def test_unknownOccupant(self):
        """A private message to a nickname nobody has is item-not-found."""
        self.send(f"<message from='{ALICE}' to='{ROOM}/Nobody' type='chat' id='u'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}/Nobody' to='{ALICE}' type='error' id='u'><body>x</body>"
                    + error("item-not-found", "cancel", "no such occupant") + "</message>")

    def test_nonOccupant(self):
        """Someone outside the room cannot send private messages through it: not-acceptable."""
        self.send(f"<message from='{CAROL}' to='{ROOM}/Bob' type='chat' id='o'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}/Bob' to='{CAROL}' type='error' id='o'><body>x</body>"
                    + error("not-acceptable", "modify", "only occupants may send private messages") + "</message>")

    def test_allowPM(self):
        """muc#roomconfig_allowpm: moderators only refuses a participant (forbidden), lets a moderator."""
        self.configure({"muc#roomconfig_allowpm": "moderators"})
        self.pop()
        self.send(f"<message from='{BOB}' to='{ROOM}/Alice' type='chat' id='a'><body>x</body></message>")
        self.expect(f"<message from='{ROOM}/Alice' to='{BOB}' type='error' id='a'><body>x</body>"
                    + error("forbidden", "auth", "you may not send private messages in this room") + "</message>")
        self.send(f"<message from='{ALICE}' to='{ROOM}/Bob' type='chat' id='b'><body>x</body></message>")
        self.assertEqual(len(self.pop()), 2)


class RateLimitTests(MucTestCase):
    """The message rate per occupant."""

    muc = {"message_rate": 1.0, "message_burst": 2}

    def test_burstThenRefused(self):
        """Beyond the burst a message gets policy-violation (wait); after a while the occupant may speak again."""
        self.create()
        self.say(ALICE, "1", "a")
        self.say(ALICE, "2", "b")
        self.pop()
        self.say(ALICE, "3", "c")
        self.expect(f"<message from='{ROOM}' to='{ALICE}' type='error' id='c'><body>3</body>"
                    + error("policy-violation", "wait", "you are sending messages too fast") + "</message>")
        self.clock.advance(1)
        self.say(ALICE, "4", "d")
        self.assertEqual([e["type"] for e in self.pop()], ["groupchat"])
