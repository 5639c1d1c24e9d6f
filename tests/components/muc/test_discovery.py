"""
Service discovery of the service and its rooms (XEP-0045 §6), and XEP-0199
ping of both.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.components.muc.support import ALICE, BOB, CAROL, DOMAIN, ROOM, STANZAS, MucTestCase

INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"


class ServiceDiscoveryTests(MucTestCase):
    """The service's disco#info and disco#items (§6.1–§6.3)."""

    def test_serviceInfo(self):
        """The service is a conference/text service speaking MUC."""
        self.send(f"<iq type='get' id='i' from='{BOB}' to='{DOMAIN}'><query xmlns='{INFO}'/></iq>")
        self.expect(
            f"<iq type='result' id='i' from='{DOMAIN}' to='{BOB}'><query xmlns='{INFO}'>"
            "<identity category='conference' type='text' name='Chatrooms'/>"
            f"<feature var='{INFO}'/><feature var='{ITEMS}'/>"
            "<feature var='http://jabber.org/protocol/muc'/><feature var='http://jabber.org/protocol/muc#stable_id'/>"
            "<feature var='urn:xmpp:ping'/></query></iq>"
        )

    def test_publicRoomsListed(self):
        """disco#items lists public rooms, not hidden ones nor rooms awaiting configuration."""
        self.create(fields="<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>")
        self.create(owner=BOB, nick="Bob", room=f"hidden@{DOMAIN}", fields="<field var='muc#roomconfig_publicroom'><value>0</value></field>")
        self.join(CAROL, "Carol", room=f"locked@{DOMAIN}")
        self.pop()
        self.send(f"<iq type='get' id='r' from='{BOB}' to='{DOMAIN}'><query xmlns='{ITEMS}'/></iq>")
        self.expect(f"<iq type='result' id='r' from='{DOMAIN}' to='{BOB}'><query xmlns='{ITEMS}'>"
                    f"<item jid='{ROOM}' name='A Dark Cave'/></query></iq>")

    def test_ping(self):
        """The service answers XEP-0199 pings."""
        self.send(f"<iq type='get' id='p' from='{BOB}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.expect(f"<iq type='result' id='p' from='{DOMAIN}' to='{BOB}'/>")

    def test_unknownRequest(self):
        """A request nobody handles is service-unavailable."""
        self.send(f"<iq type='get' id='v' from='{BOB}' to='{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>")
        self.assertIn("service-unavailable", self.pop()[0].toXml())


class RoomDiscoveryTests(MucTestCase):
    """A room's disco#info (features, muc#roominfo) and items (§6.4, §6.5)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create(fields="<field var='muc#roomconfig_roomname'><value>Cave</value></field>"
                           "<field var='muc#roomconfig_roomdesc'><value>For witches</value></field>"
                           "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
                           "<field var='muc#roomconfig_roomsecret'><value>pw</value></field>")
        self.enter(BOB, "Bob", extra="<password>pw</password>")

    def test_roomInfo(self):
        """The room describes itself with its features and a muc#roominfo form."""
        self.send(f"<iq type='get' id='i' from='{CAROL}' to='{ROOM}'><query xmlns='{INFO}'/></iq>")
        self.expect(
            f"<iq type='result' id='i' from='{ROOM}' to='{CAROL}'><query xmlns='{INFO}'>"
            "<identity category='conference' type='text' name='Cave'/>"
            f"<feature var='{INFO}'/><feature var='{ITEMS}'/>"
            "<feature var='http://jabber.org/protocol/muc'/>"
            "<feature var='http://jabber.org/protocol/muc#self-ping-optimization'/>"
            "<feature var='http://jabber.org/protocol/muc#stable_id'/>"
            "<feature var='muc_open'/><feature var='muc_passwordprotected'/><feature var='muc_public'/>"
            "<feature var='muc_semianonymous'/><feature var='muc_temporary'/><feature var='muc_unmoderated'/>"
            "<feature var='urn:xmpp:ping'/>"
            "<x xmlns='jabber:x:data' type='result'>"
            "<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roominfo</value></field>"
            "<field var='muc#roominfo_description'><value>For witches</value></field>"
            "<field var='muc#roominfo_occupants'><value>2</value></field>"
            "<field var='muc#roominfo_subject'/>"
            "<field var='muc#roominfo_subjectmod'><value>0</value></field>"
            "<field var='muc#maxhistoryfetch'><value>20</value></field>"
            "<field var='muc#roomconfig_roomname'><value>Cave</value></field>"
            "</x></query></iq>"
        )

    def test_lockedRoomDoesNotExist(self):
        """A room awaiting configuration is item-not-found to everyone but its owners."""
        self.join(CAROL, "Carol", room=f"new@{DOMAIN}")
        self.pop()
        self.send(f"<iq type='get' id='i' from='{BOB}' to='new@{DOMAIN}'><query xmlns='{INFO}'/></iq>")
        self.expect(f"<iq type='error' id='i' from='new@{DOMAIN}' to='{BOB}'><query xmlns='{INFO}'/>"
                    f"<error code='404' type='cancel'><item-not-found xmlns='{STANZAS}'/></error></iq>")
        self.send(f"<iq type='get' id='j' from='{CAROL}' to='new@{DOMAIN}'><query xmlns='{INFO}'/></iq>")
        self.assertEqual(self.pop()[0]["type"], "result")

    def test_nonexistentRoom(self):
        """disco#info of a room that does not exist is item-not-found."""
        self.send(f"<iq type='get' id='i' from='{BOB}' to='nope@{DOMAIN}'><query xmlns='{INFO}'/></iq>")
        self.assertIn("item-not-found", self.pop()[0].toXml())

    def test_roomItems(self):
        """A public room lists its occupants' room JIDs."""
        self.send(f"<iq type='get' id='it' from='{CAROL}' to='{ROOM}'><query xmlns='{ITEMS}'/></iq>")
        self.expect(f"<iq type='result' id='it' from='{ROOM}' to='{CAROL}'><query xmlns='{ITEMS}'>"
                    f"<item jid='{ROOM}/Alice'/><item jid='{ROOM}/Bob'/></query></iq>")

    def test_hiddenRoomItemsOnlyForOccupants(self):
        """A hidden room lists its occupants to them only."""
        self.configure({"muc#roomconfig_publicroom": "0"})
        self.pop()
        self.send(f"<iq type='get' id='it' from='{CAROL}' to='{ROOM}'><query xmlns='{ITEMS}'/></iq>")
        self.expect(f"<iq type='result' id='it' from='{ROOM}' to='{CAROL}'><query xmlns='{ITEMS}'/></iq>")
        self.send(f"<iq type='get' id='it' from='{BOB}' to='{ROOM}'><query xmlns='{ITEMS}'/></iq>")
        self.assertEqual(len(list(self.pop()[0].query.elements())), 2)

    def test_reservedNickname(self):
        """x-roomuser-item names a member's reserved nickname, and is empty for others (§7.12)."""
        self.admin(ALICE, "<item affiliation='member' jid='carol@localhost' nick='Witch'/>")
        self.pop()
        self.send(f"<iq type='get' id='n' from='{CAROL}' to='{ROOM}'><query xmlns='{INFO}' node='x-roomuser-item'/></iq>")
        self.expect(f"<iq type='result' id='n' from='{ROOM}' to='{CAROL}'><query xmlns='{INFO}' node='x-roomuser-item'>"
                    "<identity category='conference' type='text' name='Witch'/></query></iq>")
        self.send(f"<iq type='get' id='n' from='{BOB}' to='{ROOM}'><query xmlns='{INFO}' node='x-roomuser-item'/></iq>")
        self.expect(f"<iq type='result' id='n' from='{ROOM}' to='{BOB}'><query xmlns='{INFO}' node='x-roomuser-item'/></iq>")

    def test_trafficNode(self):
        """The muc#traffic node is not supported: feature-not-implemented (§17.3.2)."""
        self.send(f"<iq type='get' id='t' from='{BOB}' to='{ROOM}'>"
                  f"<query xmlns='{INFO}' node='http://jabber.org/protocol/muc#traffic'/></iq>")
        self.assertIn("feature-not-implemented", self.pop()[0].toXml())
