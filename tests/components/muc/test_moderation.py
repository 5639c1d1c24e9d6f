"""
Moderation (XEP-0045 §8, §9): kick, voice, moderator status, bans,
membership, admins and owners, the lists, with the permission rules of
the specification, and voice requests.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.components.muc.support import (
    ALICE,
    BOB,
    CAROL,
    NS_ADMIN,
    NS_DATA,
    ROOM,
    MucTestCase,
    error,
    item,
    userX,
)


class RoleTests(MucTestCase):
    """Roles by nickname: kick, voice, moderator (§8.2–§8.5, §9.6–§9.8)."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            self.enter(BOB, "Bob")
            self.enter(CAROL, "Carol")

        return d.addCallback(ready)

    def test_kick(self):
        """A kick: the kicked hears first (110, 307, actor, reason), then the moderator's result, then the room."""
        self.admin(ALICE, "<item nick='Bob' role='none'><reason>Avaunt</reason></item>", id_="kick1")
        kicked = item("none", "none", inner="<actor nick='Alice'/><reason>Avaunt</reason>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>" + userX(kicked, codes=("110", "307")) + "</presence>",
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='kick1'/>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'>"
            + userX(item("none", "none", BOB, inner="<actor nick='Alice'/><reason>Avaunt</reason>"), codes=("307",)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{CAROL}' type='unavailable'>" + userX(kicked, codes=("307",)) + "</presence>",
        )
        self.assertNotIn("Bob", self.room.occupants)

    def test_participantCannotKick(self):
        """A participant may not kick: forbidden."""
        self.admin(BOB, "<item nick='Carol' role='none'/>")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='a1'>"
                    + error("forbidden", "auth", "only moderators change roles", by=None) + "</iq>")

    def test_cannotKickHigherAffiliation(self):
        """A moderator without affiliation cannot kick the owner: not-allowed."""
        self.admin(ALICE, "<item nick='Bob' role='moderator'/>")
        self.pop()
        self.admin(BOB, "<item nick='Alice' role='none'/>", id_="k")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='k'>"
                    + error("not-allowed", "cancel", "you cannot kick someone of a higher affiliation", by=None) + "</iq>")

    def test_unknownNick(self):
        """A role change for a nickname nobody has is item-not-found."""
        self.admin(ALICE, "<item nick='Nobody' role='none'/>")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='error' id='a1'>"
                    + error("item-not-found", "cancel", "nobody is called Nobody", by=None) + "</iq>")

    def test_revokeAndGrantVoice(self):
        """Revoking voice makes a visitor (presence to all), granting it back a participant; the result comes first."""
        self.admin(ALICE, "<item nick='Bob' role='visitor'><reason>hush</reason></item>", id_="v")
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='v'/>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}'>" + userX(item("none", "visitor", BOB, inner="<reason>hush</reason>")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{CAROL}'>" + userX(item("none", "visitor", inner="<reason>hush</reason>")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}'>" + userX(item("none", "visitor", inner="<reason>hush</reason>"), codes=("110",)) + "</presence>",
        )
        self.say(BOB, "can I?")
        self.assertIn("forbidden", self.pop()[0].toXml())
        self.admin(ALICE, "<item nick='Bob' role='participant'/>")
        self.pop()
        self.assertEqual(self.room.occupants["Bob"].role, "participant")

    def test_cannotRevokeAdminVoice(self):
        """Nobody revokes an admin's voice: not-allowed."""
        self.admin(ALICE, "<item affiliation='admin' jid='carol@localhost'/>")
        self.pop()
        self.admin(ALICE, "<item nick='Carol' role='visitor'/>", id_="x")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='error' id='x'>"
                    + error("not-allowed", "cancel", "admins and owners are always moderators", by=None) + "</iq>")

    def test_moderatorStatus(self):
        """An owner makes a participant moderator; a mere moderator cannot make another one (forbidden)."""
        self.admin(ALICE, "<item nick='Bob' role='moderator'/>")
        self.pop()
        self.assertEqual(self.room.occupants["Bob"].role, "moderator")
        self.admin(BOB, "<item nick='Carol' role='moderator'/>", id_="m")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='m'>"
                    + error("forbidden", "auth", "only admins and owners grant or revoke moderator status", by=None) + "</iq>")

    def test_moderatorSeesJIDs(self):
        """Once a moderator, an occupant sees real JIDs in the presence it gets."""
        self.admin(ALICE, "<item nick='Bob' role='moderator'/>")
        self.pop()
        self.send(f"<presence from='{CAROL}' to='{ROOM}/Carol'><show>away</show></presence>")
        self.assertIn(f"jid='{CAROL}'", self.sentTo(BOB)[0])

    def test_roleList(self):
        """A moderator gets the participants with nick, role, affiliation and full JID; a participant is forbidden."""
        self.admin(ALICE, "<item role='participant'/>", type_="get", id_="l")
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='l'><query xmlns='{NS_ADMIN}'>"
            f"<item affiliation='none' jid='{BOB}' nick='Bob' role='participant'/>"
            f"<item affiliation='none' jid='{CAROL}' nick='Carol' role='participant'/></query></iq>"
        )
        self.admin(BOB, "<item role='participant'/>", type_="get", id_="l2")
        self.assertIn("forbidden", self.pop()[0].toXml())

    def test_itemWithRoleAndAffiliation(self):
        """An item changing both a role and an affiliation is a bad-request (§17.4)."""
        self.admin(ALICE, "<item nick='Bob' role='none' affiliation='none' jid='bob@localhost'/>")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='error' id='a1'>"
                    + error("bad-request", "modify", "an item changes a role or an affiliation", by=None) + "</iq>")


class AffiliationTests(MucTestCase):
    """Affiliations by bare JID (§9, §10.3–§10.8)."""

    def setUp(self):
        d = super().setUp()

        def ready(_):
            self.create()
            self.enter(BOB, "Bob")

        return d.addCallback(ready)

    def test_ban(self):
        """A ban removes the user with 301 (outcast, actor, reason) and keeps it out."""
        self.admin(ALICE, "<item affiliation='outcast' jid='bob@localhost'><reason>Treason</reason></item>", id_="ban1")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>"
            + userX(item("outcast", "none", inner="<actor nick='Alice'/><reason>Treason</reason>"), codes=("110", "301")) + "</presence>",
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='ban1'/>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'>"
            + userX(item("outcast", "none", BOB, inner="<actor nick='Alice'/><reason>Treason</reason>"), codes=("301",)) + "</presence>",
        )
        self.join(BOB, "Bob")
        self.assertIn("forbidden", self.pop()[0].toXml())

    def test_banList(self):
        """The ban list has the JIDs and reasons; removing a ban (none) lets the user in again."""
        self.admin(ALICE, "<item affiliation='outcast' jid='eve@localhost'><reason>Spam</reason></item>")
        self.pop()
        self.admin(ALICE, "<item affiliation='outcast'/>", type_="get", id_="l")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='result' id='l'><query xmlns='{NS_ADMIN}'>"
                    "<item affiliation='outcast' jid='eve@localhost'><reason>Spam</reason></item></query></iq>")
        self.admin(ALICE, "<item affiliation='none' jid='eve@localhost'/>")
        self.pop()
        self.enter("eve@localhost/e", "Eve")
        self.assertIn("Eve", self.room.occupants)

    def test_domainBan(self):
        """Banning a domain keeps out every user of it (§9.2)."""
        self.admin(ALICE, "<item affiliation='outcast' jid='evil.example'/>")
        self.pop()
        self.join("mallory@evil.example/m", "M")
        self.assertIn("forbidden", self.pop()[0].toXml())

    def test_banSelf(self):
        """Banning oneself is a conflict."""
        self.admin(ALICE, "<item affiliation='outcast' jid='alice@localhost'/>")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='error' id='a1'>"
                    + error("conflict", "cancel", "you cannot ban yourself", by=None) + "</iq>")

    def test_adminCannotBanOwner(self):
        """An admin cannot ban an owner: not-allowed."""
        self.admin(ALICE, "<item affiliation='admin' jid='bob@localhost'/>")
        self.pop()
        self.admin(BOB, "<item affiliation='outcast' jid='alice@localhost'/>", id_="b")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='b'>"
                    + error("not-allowed", "cancel", "only owners change an admin's or owner's affiliation", by=None) + "</iq>")

    def test_grantMembership(self):
        """Membership shows at once in the member's presence."""
        self.admin(ALICE, "<item affiliation='member' jid='bob@localhost' nick='Bob'/>", id_="m")
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='m'/>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}'>" + userX(item("member", "participant", BOB)) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}'>" + userX(item("member", "participant"), codes=("110",)) + "</presence>",
        )

    def test_revokeMembershipInMembersOnlyRoom(self):
        """Losing membership in a members-only room removes the user with 321."""
        self.admin(ALICE, "<item affiliation='member' jid='bob@localhost'/>")
        self.configure({"muc#roomconfig_membersonly": "1"})
        self.pop()
        self.admin(ALICE, "<item affiliation='none' jid='bob@localhost'/>", id_="r")
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='r'/>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>"
            + userX(item("none", "none", inner="<actor nick='Alice'/>"), codes=("110", "321")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'>"
            + userX(item("none", "none", BOB, inner="<actor nick='Alice'/>"), codes=("321",)) + "</presence>",
        )
        self.assertNotIn("Bob", self.room.occupants)

    def test_becomingMembersOnlyRemovesNonMembers(self):
        """A room made members-only removes its non-members with 322, then says 104."""
        self.configure({"muc#roomconfig_membersonly": "1"})
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='cfg'/>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>" + userX(item("none", "none"), codes=("110", "322")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'>" + userX(item("none", "none", BOB), codes=("322",)) + "</presence>",
            f"<message from='{ROOM}' to='{ALICE}' type='groupchat' id='id1'><x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>",
        )

    def test_memberList(self):
        """Admins get the member list; in a semi-anonymous room a participant does not."""
        self.admin(ALICE, "<item affiliation='member' jid='carol@localhost' nick='Carol'/>")
        self.pop()
        self.admin(ALICE, "<item affiliation='member'/>", type_="get", id_="l")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='result' id='l'><query xmlns='{NS_ADMIN}'>"
                    "<item affiliation='member' jid='carol@localhost' nick='Carol'/></query></iq>")
        self.admin(BOB, "<item affiliation='member'/>", type_="get", id_="l2")
        self.expect(f"<iq from='{ROOM}' to='{BOB}' type='error' id='l2'>"
                    + error("forbidden", "auth", "you may not see this list", by=None) + "</iq>")

    def test_ownerOnlyForAdminList(self):
        """Only owners grant admin status (forbidden for an admin) or read the admin list in a semi-anonymous room."""
        self.admin(ALICE, "<item affiliation='admin' jid='bob@localhost'/>")
        self.pop()
        self.admin(BOB, "<item affiliation='admin' jid='carol@localhost'/>", id_="x")
        self.assertIn("forbidden", self.pop()[0].toXml())
        self.admin(BOB, "<item affiliation='admin'/>", type_="get", id_="y")
        self.assertIn("forbidden", self.pop()[0].toXml())

    def test_adminBecomesModerator(self):
        """A new admin in the room becomes a moderator at once."""
        self.admin(ALICE, "<item affiliation='admin' jid='bob@localhost'/>")
        self.pop()
        self.assertEqual((self.room.occupants["Bob"].affiliation, self.room.occupants["Bob"].role), ("admin", "moderator"))

    def test_ownersAndLastOwner(self):
        """An owner adds another; the last owner cannot step down (conflict), one of two can."""
        self.admin(ALICE, "<item affiliation='none' jid='alice@localhost'/>", id_="last")
        self.expect(f"<iq from='{ROOM}' to='{ALICE}' type='error' id='last'>"
                    + error("conflict", "cancel", "a room needs an owner", by=None) + "</iq>")
        self.admin(ALICE, "<item affiliation='owner' jid='bob@localhost'/>")
        self.pop()
        self.admin(ALICE, "<item affiliation='admin' jid='alice@localhost'/>")
        self.pop()
        self.assertEqual(self.room.owners(), ["bob@localhost"])

    def test_wholeRequestOrNothing(self):
        """A request with one refused item changes nothing (§9.2)."""
        self.admin(ALICE, "<item affiliation='member' jid='carol@localhost'/><item affiliation='outcast' jid='alice@localhost'/>")
        self.assertIn("conflict", self.pop()[0].toXml())
        self.assertEqual(self.room.affiliationOf("carol@localhost"), "none")

    def test_newMemberOfMembersOnlyRoomInvited(self):
        """Adding a member to a members-only room sends the member an invitation (§9.5)."""
        self.configure({"muc#roomconfig_membersonly": "1", "muc#roomconfig_passwordprotectedroom": "1",
                        "muc#roomconfig_roomsecret": "pw"})
        self.pop()
        self.resetIDs()
        self.admin(ALICE, "<item affiliation='member' jid='carol@localhost'/>", id_="m")
        self.expect(
            f"<iq from='{ROOM}' to='{ALICE}' type='result' id='m'/>",
            f"<message from='{ROOM}' to='carol@localhost' id='id1'><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<invite from='alice@localhost'/><password>pw</password></x></message>",
        )

    def test_fullJIDCountsAsBare(self):
        """An affiliation item naming a full JID applies to its bare JID."""
        self.admin(ALICE, "<item affiliation='member' jid='carol@localhost/somewhere'/>")
        self.pop()
        self.assertEqual(self.room.affiliationOf("carol@localhost"), "member")

    def test_serviceAdmin(self):
        """A service administrator is owner of every room and cannot be banned."""
        self.config = None
        self.service.admins = frozenset({"root@localhost"})
        self.assertEqual(self.room.affiliationOf("root@localhost"), "owner")
        self.admin(ALICE, "<item affiliation='outcast' jid='root@localhost'/>")
        self.assertIn("not-allowed", self.pop()[0].toXml())


class VoiceRequestTests(MucTestCase):
    """Requesting and approving voice (§7.13, §8.6)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create(fields="<field var='muc#roomconfig_moderatedroom'><value>1</value></field>")
        self.enter(BOB, "Bob")

    def test_requestAndApprove(self):
        """A visitor's request reaches the moderators as a form; the submitted approval gives voice."""
        self.send(f"<message from='{BOB}' to='{ROOM}' id='vr'><x xmlns='{NS_DATA}' type='submit'>"
                  "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"
                  "<field var='muc#role'><value>participant</value></field></x></message>")
        sent = self.pop()
        self.assertEqual([e["to"] for e in sent], [ALICE])
        form = sent[0].toXml()
        for needle in ("muc#jid", BOB, "muc#roomnick", "muc#request_allow"):
            self.assertIn(needle, form)
        self.send(f"<message from='{ALICE}' to='{ROOM}' id='ok'><x xmlns='{NS_DATA}' type='submit'>"
                  "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"
                  "<field var='muc#role'><value>participant</value></field>"
                  f"<field var='muc#jid'><value>{BOB}</value></field>"
                  "<field var='muc#roomnick'><value>Bob</value></field>"
                  "<field var='muc#request_allow'><value>true</value></field></x></message>")
        self.pop()
        self.assertEqual(self.room.occupants["Bob"].role, "participant")

