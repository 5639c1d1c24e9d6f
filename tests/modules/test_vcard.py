"""vcard-temp (XEP-0054) through real sessions: one's own vCard, others', limits, persistence."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.modules.test_disco import ServiceTestMixin, error

VCARD = (
    "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N>"
    "<NICKNAME>al &amp; co</NICKNAME><DESC xml:lang='en'>Curiouser</DESC><x:extra xmlns:x='urn:example:x' x:a='1'>y</x:extra></vCard>"
)


class VCardTests(ServiceTestMixin, unittest.TestCase):
    """Getting and setting vCards."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(["vcard"])
        self.alice = self.bind("alice@localhost/a")
        self.bob = self.bind("bob@localhost/b")

    @defer.inlineCallbacks
    def setVCard(self, session, vcard: str = VCARD, id_: str = "s"):
        yield self.assertReply(
            session,
            f"<iq type='set' id='{id_}'>{vcard}</iq>",
            f"<iq type='result' id='{id_}' from='{session.bareJID}' to='{session.jid.full()}'/>",
        )

    @defer.inlineCallbacks
    def test_ownWithoutVCardIsEmpty(self):
        """Getting one's own vCard before setting any gives an empty <vCard/> (§2.1)."""
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>",
            "<iq type='result' id='v1' from='alice@localhost' to='alice@localhost/a'><vCard xmlns='vcard-temp'/></iq>",
        )

    @defer.inlineCallbacks
    def test_setThenGetOwn(self):
        """A vCard set without 'to' is returned exactly as sent, namespaces and escapes included."""
        yield self.setVCard(self.alice)
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>",
            f"<iq type='result' id='v1' from='alice@localhost' to='alice@localhost/a'>{VCARD}</iq>",
        )

    @defer.inlineCallbacks
    def test_setToOwnBareJID(self):
        """Setting with 'to' one's own bare JID is the same as without 'to'."""
        yield self.assertReply(
            self.alice,
            "<iq type='set' id='s' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>",
            "<iq type='result' id='s' from='alice@localhost' to='alice@localhost/a'/>",
        )
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='g' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
            "<iq type='result' id='g' from='alice@localhost' to='alice@localhost/a'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>",
        )

    @defer.inlineCallbacks
    def test_setReplacesWholeVCard(self):
        """A second set replaces the whole vCard: there are no partial updates (§2.2)."""
        yield self.setVCard(self.alice)
        yield self.setVCard(self.alice, "<vCard xmlns='vcard-temp'><DESC>new</DESC></vCard>")
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='g'><vCard xmlns='vcard-temp'/></iq>",
            "<iq type='result' id='g' from='alice@localhost' to='alice@localhost/a'><vCard xmlns='vcard-temp'><DESC>new</DESC></vCard></iq>",
        )

    @defer.inlineCallbacks
    def test_anotherAccountsVCard(self):
        """Another account's vCard is answered by the server from that bare JID (§2.3)."""
        yield self.setVCard(self.alice)
        yield self.assertReply(
            self.bob,
            "<iq type='get' id='v3' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
            f"<iq type='result' id='v3' from='alice@localhost' to='bob@localhost/b'>{VCARD}</iq>",
        )

    @defer.inlineCallbacks
    def test_anotherAccountWithoutVCard(self):
        """An account without a vCard and a JID without an account give the same service-unavailable (§2.3)."""
        for to in ("alice@localhost", "nobody@localhost"):
            yield self.assertReply(
                self.bob,
                f"<iq type='get' id='v3' to='{to}'><vCard xmlns='vcard-temp'/></iq>",
                f"<iq type='error' id='v3' from='{to}' to='bob@localhost/b'>{error('service-unavailable', 'cancel')}</iq>",
            )

    @defer.inlineCallbacks
    def test_setAnotherAccountsVCardIsForbidden(self):
        """Setting another account's vCard is forbidden and changes nothing (§2.2)."""
        yield self.setVCard(self.alice)
        yield self.assertReply(
            self.bob,
            "<iq type='set' id='x' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>",
            f"<iq type='error' id='x' from='alice@localhost' to='bob@localhost/b'>{error('forbidden', 'auth', 'you can only change your own vCard')}</iq>",
        )
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='g'><vCard xmlns='vcard-temp'/></iq>",
            f"<iq type='result' id='g' from='alice@localhost' to='alice@localhost/a'>{VCARD}</iq>",
        )

    @defer.inlineCallbacks
    def test_vCardForTheDomainIsUnavailable(self):
        """The server has no vCard of its own: a get to the domain is service-unavailable."""
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='d' to='localhost'><vCard xmlns='vcard-temp'/></iq>",
            f"<iq type='error' id='d' from='localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_deletedAccountLosesItsVCard(self):
        """Deleting an account deletes its vCard with it."""
        yield self.setVCard(self.alice)
        yield self.server.accounts.delete("localhost", "alice")
        yield self.assertReply(
            self.bob,
            "<iq type='get' id='v' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
            f"<iq type='error' id='v' from='alice@localhost' to='bob@localhost/b'>{error('service-unavailable', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_persistsAcrossRestart(self):
        """A stored vCard survives a restart of the server."""
        yield self.setVCard(self.alice)
        yield self.restart()
        bob = self.bind("bob@localhost/b2")
        yield self.assertReply(
            bob,
            "<iq type='get' id='v' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
            f"<iq type='result' id='v' from='alice@localhost' to='bob@localhost/b2'>{VCARD}</iq>",
        )


class VCardLimitTests(ServiceTestMixin, unittest.TestCase):
    """[limits] max_vcard_size."""

    LIMIT = 100

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(["vcard"], limits={"max_vcard_size": self.LIMIT})
        self.alice = self.bind("alice@localhost/a")

    def vcardOfSize(self, size: int) -> str:
        shell = "<vCard xmlns='vcard-temp'><DESC></DESC></vCard>"
        return shell.replace("<DESC>", "<DESC>" + "x" * (size - len(shell)))

    @defer.inlineCallbacks
    def test_atTheLimit(self):
        """A vCard of exactly the limit, serialized, is stored."""
        vcard = self.vcardOfSize(self.LIMIT)
        yield self.assertReply(
            self.alice, f"<iq type='set' id='s'>{vcard}</iq>", "<iq type='result' id='s' from='alice@localhost' to='alice@localhost/a'/>"
        )

    @defer.inlineCallbacks
    def test_overTheLimit(self):
        """A vCard one byte over the limit gets not-acceptable and the old vCard stays."""
        yield self.assertReply(
            self.alice,
            "<iq type='set' id='s'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>",
            "<iq type='result' id='s' from='alice@localhost' to='alice@localhost/a'/>",
        )
        vcard = self.vcardOfSize(self.LIMIT + 1)
        yield self.assertReply(
            self.alice,
            f"<iq type='set' id='big'>{vcard}</iq>",
            f"<iq type='error' id='big' from='alice@localhost' to='alice@localhost/a'>"
            f"{error('not-acceptable', 'modify', 'the vCard is larger than 100 bytes')}</iq>",
        )
        yield self.assertReply(
            self.alice,
            "<iq type='get' id='g'><vCard xmlns='vcard-temp'/></iq>",
            "<iq type='result' id='g' from='alice@localhost' to='alice@localhost/a'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>",
        )
