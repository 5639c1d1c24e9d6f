"""Entity Time (XEP-0202) of the server, from the injected reactor's clock, in the XEP-0082 format."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.modules.entitytime import xep82DateTime
from tests.fakes import SettableClock
from tests.modules.test_disco import ServiceTestMixin, error

TIME = "<time xmlns='urn:xmpp:time'/>"

#: 2006-12-19T17:58:35Z, the time of XEP-0202's example.
EXAMPLE = 1166551115


class EntityTimeTests(ServiceTestMixin, unittest.TestCase):
    """The server's time."""

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = SettableClock(EXAMPLE)
        yield self.startWith(["entitytime"], clock=self.clock)
        self.alice = self.bind("alice@localhost/a")

    @defer.inlineCallbacks
    def test_serverTime(self):
        """The domain answers its clock's time in UTC with the zone offset +00:00."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='time_1' to='localhost'>{TIME}</iq>",
            "<iq type='result' id='time_1' from='localhost' to='alice@localhost/a'>"
            "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2006-12-19T17:58:35Z</utc></time></iq>",
        )

    @defer.inlineCallbacks
    def test_followsTheClock(self):
        """The answer is the reactor's time when asked, not when the server started."""
        self.clock.advance(3600 * 24 + 0.75)
        got = yield self.ask(self.alice, f"<iq type='get' id='t' to='localhost'>{TIME}</iq>")
        self.assertEqual(str(got.time.utc), "2006-12-20T17:58:35Z")

    @defer.inlineCallbacks
    def test_notForAccounts(self):
        """The server does not answer time queries for accounts' bare JIDs: service-unavailable."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='t' to='bob@localhost'>{TIME}</iq>",
            f"<iq type='error' id='t' from='bob@localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )

    def test_format(self):
        """XEP-0082 dateTime: UTC, 'Z', whole seconds (fractions are cut, not rounded)."""
        self.assertEqual(xep82DateTime(0), "1970-01-01T00:00:00Z")
        self.assertEqual(xep82DateTime(EXAMPLE + 0.999), "2006-12-19T17:58:35Z")
