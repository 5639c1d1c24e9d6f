"""Software Version (XEP-0092) of the server, with and without the operating system."""

from __future__ import annotations

import platform

from twisted.internet import defer
from twisted.trial import unittest

import jabberd
from jabberd.config import ConfigError, fromDict
from jabberd.modules.version import operatingSystem
from tests.modules.test_disco import ServiceTestMixin, error

QUERY = "<query xmlns='jabber:iq:version'/>"


class VersionTests(ServiceTestMixin, unittest.TestCase):
    """The server's software version."""

    @defer.inlineCallbacks
    def test_nameVersionAndOS(self):
        """The domain answers jabberd, the package version and the operating system by default."""
        yield self.startWith(["version"], users=())
        alice = self.bind("alice@localhost/a")
        yield self.assertReply(
            alice,
            f"<iq type='get' id='version_1' to='localhost'>{QUERY}</iq>",
            "<iq type='result' id='version_1' from='localhost' to='alice@localhost/a'><query xmlns='jabber:iq:version'>"
            f"<name>jabberd</name><version>{jabberd.__version__}</version><os>{operatingSystem()}</os></query></iq>",
        )

    @defer.inlineCallbacks
    def test_hideOS(self):
        """With [version] hide_os the reply leaves the operating system out."""
        yield self.startWith(["version"], users=(), version={"hide_os": True})
        alice = self.bind("alice@localhost/a")
        yield self.assertReply(
            alice,
            f"<iq type='get' id='v' to='localhost'>{QUERY}</iq>",
            "<iq type='result' id='v' from='localhost' to='alice@localhost/a'><query xmlns='jabber:iq:version'>"
            f"<name>jabberd</name><version>{jabberd.__version__}</version></query></iq>",
        )

    @defer.inlineCallbacks
    def test_notForAccounts(self):
        """The server does not answer version queries for accounts' bare JIDs: service-unavailable."""
        yield self.startWith(["version"])
        alice = self.bind("alice@localhost/a")
        for to in ("alice@localhost", "bob@localhost"):
            yield self.assertReply(
                alice,
                f"<iq type='get' id='v' to='{to}'>{QUERY}</iq>",
                f"<iq type='error' id='v' from='{to}' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
            )

    def test_operatingSystem(self):
        """The operating system is its name and release, as uname -sr prints them."""
        self.assertEqual(operatingSystem(), f"{platform.system()} {platform.release()}")

    def test_hideOSConfig(self):
        """[version] hide_os defaults to false and must be a boolean."""
        self.assertFalse(fromDict({}).version.hide_os)
        with self.assertRaises(ConfigError) as e:
            fromDict({"version": {"hide_os": "yes"}})
        self.assertEqual(e.exception.problems, ['version.hide_os: expected a boolean, got a string ("yes")'])
