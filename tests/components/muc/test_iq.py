"""
IQs to occupants (XEP-0045 §6.7, §17.4) and the XEP-0410 self-ping.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.components.muc.support import ALICE, BOB, CAROL, ROOM, MucTestCase, error

NS_PING = "urn:xmpp:ping"


class SelfPingTests(MucTestCase):
    """XEP-0410: the room answers an occupant's ping to its own nickname."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_joined(self):
        """A joined client pinging its own room JID gets a result from the room."""
        self.send(f"<iq type='get' id='s2c1' from='{BOB}' to='{ROOM}/Bob'><ping xmlns='{NS_PING}'/></iq>")
        self.expect(f"<iq type='result' id='s2c1' from='{ROOM}/Bob' to='{BOB}'/>")

    def test_notJoined(self):
        """A client that is not (or no longer) joined gets not-acceptable."""
        self.send(f"<iq type='get' id='s2c1' from='{CAROL}' to='{ROOM}/Carol'><ping xmlns='{NS_PING}'/></iq>")
        self.expect(f"<iq type='error' id='s2c1' from='{ROOM}/Carol' to='{CAROL}'>"
                    + error("not-acceptable", "modify", "you are not in the room") + "</iq>")


class RelayTests(MucTestCase):
    """Requests to another occupant go through the room, revealing no real JID."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_relayAndAnswer(self):
        """The request reaches the occupant from the asker's room JID with the room's id; the answer comes back."""
        self.send(f"<iq type='get' id='v1' from='{BOB}' to='{ROOM}/Alice'><query xmlns='jabber:iq:version'/></iq>")
        self.expect(f"<iq type='get' id='id1' from='{ROOM}/Bob' to='{ALICE}'><query xmlns='jabber:iq:version'/></iq>")
        self.send(f"<iq type='result' id='id1' from='{ALICE}' to='{ROOM}/Bob'><query xmlns='jabber:iq:version'>"
                  "<name>x</name></query></iq>")
        self.expect(f"<iq type='result' id='v1' from='{ROOM}/Alice' to='{BOB}'><query xmlns='jabber:iq:version'>"
                    "<name>x</name></query></iq>")

    def test_answerOnlyFromTheAsked(self):
        """An answer with the room's id from anyone else is ignored."""
        self.send(f"<iq type='get' id='v1' from='{BOB}' to='{ROOM}/Alice'><query xmlns='jabber:iq:version'/></iq>")
        self.pop()
        self.send(f"<iq type='result' id='id1' from='{CAROL}' to='{ROOM}/Bob'/>")
        self.expect()

    def test_vcardToBareJID(self):
        """A vCard request goes to the occupant's bare JID, where the server answers it."""
        self.send(f"<iq type='get' id='vc' from='{BOB}' to='{ROOM}/Alice'><vCard xmlns='vcard-temp'/></iq>")
        self.expect(f"<iq type='get' id='id1' from='{ROOM}/Bob' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        self.send(f"<iq type='result' id='id1' from='alice@localhost' to='{ROOM}/Bob'><vCard xmlns='vcard-temp'/></iq>")
        self.expect(f"<iq type='result' id='vc' from='{ROOM}/Alice' to='{BOB}'><vCard xmlns='vcard-temp'/></iq>")

    def test_discoFromNonOccupant(self):
        """A non-occupant's disco request to an occupant is bad-request (§6.7)."""
        self.send(f"<iq type='get' id='d' from='{CAROL}' to='{ROOM}/Alice'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        self.expect(f"<iq type='error' id='d' from='{ROOM}/Alice' to='{CAROL}'>"
                    + error("bad-request", "modify", "only occupants query occupants", by=None) + "</iq>")

    def test_unknownOccupant(self):
        """A request to a nickname nobody has is item-not-found."""
        self.send(f"<iq type='get' id='u' from='{BOB}' to='{ROOM}/Nobody'><query xmlns='jabber:iq:version'/></iq>")
        self.assertIn("item-not-found", self.pop()[0].toXml())
