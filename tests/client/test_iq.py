"""
IQ tracking in the client: ids nobody can guess, and an answer counts only
when it comes from the entity that was asked (RFC 6120 §8.1.2.1), so a
third party cannot forge a roster or disco result.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish
from tx_xmpp.generic import parseXml

from jabberd import jid as J
from jabberd.client import Client


class IQTrackingTests(unittest.TestCase):
    """Drive the client's stream manager over a StringTransport."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.client = Client("alice@localhost/a", "x", reactor=self.clock)
        self.xs = xmlstream.XmlStream(xmlstream.Authenticator())
        self.xs.makeConnection(StringTransport())
        manager = self.client.manager
        manager.jid = J.parse("alice@localhost/a")
        manager._connected(self.xs)
        manager._authd(self.xs)
        self.client._connected = True

    def ask(self, to: str | None):
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        if to:
            iq["to"] = to
        iq.addElement(("urn:xmpp:ping", "ping"))
        d = self.client.request(iq)
        return d, iq["id"]

    def answer(self, stanzaId: str, sender: str | None) -> None:
        attrs = f" from='{sender}'" if sender else ""
        self.xs.dispatch(parseXml(f"<iq xmlns='jabber:client' type='result' id='{stanzaId}'{attrs}/>".encode()))

    def test_idsAreUnpredictable(self) -> None:
        """Request ids are random tokens, not a counter."""
        (_, first), (_, second) = self.ask("bob@localhost/b"), self.ask("bob@localhost/b")
        self.assertNotEqual(first, second)
        self.assertRegex(first, r"^c[0-9a-f]{16}$")

    def test_answerFromWhomWeAsked(self) -> None:
        """A result from bob/b answers a request to bob/b."""
        d, stanzaId = self.ask("bob@localhost/b")
        self.answer(stanzaId, "bob@localhost/b")
        self.assertEqual(self.successResultOf(d)["id"], stanzaId)

    def test_forgedAnswerIgnored(self) -> None:
        """A result with the right id from mallory is ignored; bob's real answer still counts."""
        d, stanzaId = self.ask("bob@localhost/b")
        self.answer(stanzaId, "mallory@localhost/m")
        self.assertNoResult(d)
        self.answer(stanzaId, "bob@localhost/b")
        self.successResultOf(d)

    def test_ownServerAnswers(self) -> None:
        """A request without 'to' is answered by our server: no 'from', our bare JID or our domain."""
        for sender in (None, "alice@localhost", "localhost"):
            d, stanzaId = self.ask(None)
            self.answer(stanzaId, sender)
            self.successResultOf(d)

    def test_otherUserCannotAnswerForServer(self) -> None:
        """Another user cannot answer a request meant for our own account."""
        d, stanzaId = self.ask(None)
        self.answer(stanzaId, "bob@localhost")
        self.assertNoResult(d)

    def test_timeout(self) -> None:
        """An unanswered request fails after the request timeout (time comes from the injected clock)."""
        d, _ = self.ask("bob@localhost/b")
        self.clock.advance(30)
        self.failureResultOf(d, xmlstream.TimeoutError)
