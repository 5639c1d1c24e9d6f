"""
End to end with a real third-party client: slixmpp's own plugins for
service discovery (XEP-0030, XEP-0128), vcard-temp (XEP-0054), ping (XEP-0199),
software version (XEP-0092), entity time (XEP-0202), last activity
(XEP-0012) and private storage (XEP-0049) against the real server over
real loopback sockets.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.internet import defer
from twisted.trial import unittest

import jabberd
from tests.harness import ServerMixin, connectSlixmpp, deferred, slixmppClient

#: The modules under test, and only those: the test does not depend on the others.
MODULES = ["disco", "entitytime", "last", "ping", "private", "vcard", "version"]

PLUGINS = ("xep_0030", "xep_0128", "xep_0054", "xep_0199", "xep_0092", "xep_0202", "xep_0012", "xep_0049")


class ServicesWithSlixmppTests(ServerMixin, unittest.TestCase):
    """Alice and Bob use the small services through slixmpp."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(
            modules={"enabled": MODULES},
            host={"localhost": {"contact_addresses": {"admin-addresses": ["xmpp:admin@localhost"]}}},
        )
        yield self.addUser("alice@localhost", "wonderland")
        yield self.addUser("bob@localhost", "builder")
        self.alice = yield self.connect("alice@localhost/a", "wonderland")

    @defer.inlineCallbacks
    def connect(self, jid: str, password: str):
        client = slixmppClient(jid, password, sslContext=self.clientSSLContext(), plugins=PLUGINS)
        self.addCleanup(client.disconnect)
        yield connectSlixmpp(client, self.server.port("c2s"))
        return client

    @defer.inlineCallbacks
    def test_discoOfTheServer(self):
        """slixmpp's disco#info of the domain shows identity server/im, every loaded feature and the contact form."""
        iq = yield deferred(self.alice["xep_0030"].get_info(jid="localhost"))
        info = iq["disco_info"]
        self.assertEqual(info["identities"], {("server", "im", None, "jabberd")})
        self.assertEqual(
            sorted(info["features"]),
            [
                "http://jabber.org/protocol/disco#info",
                "http://jabber.org/protocol/disco#items",
                "jabber:iq:last",
                "jabber:iq:private",
                "jabber:iq:version",
                "urn:xmpp:ping",
                "urn:xmpp:time",
                "vcard-temp",
            ],
        )
        (form,) = [f for f in info.iterables if f.plugin_attrib == "form"]
        self.assertEqual(form["type"], "result")
        self.assertEqual(form.get_values(), {"FORM_TYPE": ["http://jabber.org/network/serverinfo"], "admin-addresses": ["xmpp:admin@localhost"]})
        items = yield deferred(self.alice["xep_0030"].get_items(jid="localhost"))
        self.assertEqual(items["disco_items"]["items"], set())

    @defer.inlineCallbacks
    def test_vcardBetweenTwoAccounts(self):
        """Alice publishes her vCard; Bob fetches it from her bare JID, and Alice reads her own back."""
        vcard = self.alice["xep_0054"].make_vcard()
        vcard["FN"] = "Alice Liddell"
        vcard["NICKNAME"] = "alice"
        vcard["DESC"] = "Curiouser & curiouser"
        yield deferred(self.alice["xep_0054"].publish_vcard(vcard))
        bob = yield self.connect("bob@localhost/b", "builder")
        iq = yield deferred(bob["xep_0054"].get_vcard("alice@localhost"))
        self.assertEqual(str(iq["from"]), "alice@localhost")
        self.assertEqual((iq["vcard_temp"]["FN"], iq["vcard_temp"]["NICKNAME"], iq["vcard_temp"]["DESC"]), ("Alice Liddell", ["alice"], "Curiouser & curiouser"))
        own = yield deferred(self.alice["xep_0054"].get_vcard("alice@localhost"))
        self.assertEqual(own["vcard_temp"]["FN"], "Alice Liddell")

    @defer.inlineCallbacks
    def test_vcardOfAccountWithoutOne(self):
        """Fetching the vCard of an account that has none is a service-unavailable error."""
        from slixmpp.exceptions import IqError

        with self.assertRaises(IqError) as e:
            yield deferred(self.alice["xep_0054"].get_vcard("bob@localhost"))
        self.assertEqual(e.exception.condition, "service-unavailable")

    @defer.inlineCallbacks
    def test_pingServer(self):
        """slixmpp pings the server and gets its pong (a round-trip time)."""
        rtt = yield deferred(self.alice["xep_0199"].ping("localhost", timeout=5))
        self.assertGreaterEqual(rtt, 0)

    @defer.inlineCallbacks
    def test_pingAccount(self):
        """slixmpp pings another account's bare JID and the server pongs for it."""
        rtt = yield deferred(self.alice["xep_0199"].ping("bob@localhost", timeout=5))
        self.assertGreaterEqual(rtt, 0)

    @defer.inlineCallbacks
    def test_version(self):
        """slixmpp reads the server's software name and version."""
        result = yield deferred(self.alice["xep_0092"].get_version("localhost"))
        version = result["software_version"]
        self.assertEqual((version["name"], version["version"]), ("jabberd", jabberd.__version__))

    @defer.inlineCallbacks
    def test_entityTime(self):
        """slixmpp reads the server's time: XEP-0082 UTC, close to the test's own clock."""
        iq = yield deferred(self.alice["xep_0202"].get_entity_time("localhost"))
        # slixmpp 1.17's get_utc and get_tzo cannot parse XEP-0082 values
        # (even XEP-0202's own example: it appends a second 'Z' to <utc> and
        # parses <tzo> with a date format): read the texts.
        self.assertEqual(iq["entity_time"]._get_sub_text("tzo"), "+00:00")
        text = iq["entity_time"]._get_sub_text("utc")
        utc = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        self.assertLess(abs(utc - datetime.now(timezone.utc)), timedelta(seconds=5))

    @defer.inlineCallbacks
    def test_lastActivityOfTheServer(self):
        """slixmpp reads the server's uptime in seconds."""
        iq = yield deferred(self.alice["xep_0012"].get_last_activity("localhost"))
        self.assertGreaterEqual(iq["last_activity"]["seconds"], 0)

    @defer.inlineCallbacks
    def test_privateStorage(self):
        """slixmpp stores private XML and retrieves it in a later session."""
        from slixmpp.xmlstream import ElementBase

        class Prefs(ElementBase):
            name = "prefs"
            namespace = "urn:example:prefs"
            plugin_attrib = "prefs"
            interfaces = {"nick"}
            sub_interfaces = interfaces

        self.alice["xep_0049"].register(Prefs)
        prefs = Prefs()
        prefs["nick"] = "Hamlet"
        yield deferred(self.alice["xep_0049"].store(prefs))
        iq = yield deferred(self.alice["xep_0049"].retrieve("prefs"))
        self.assertEqual(iq["private"]["prefs"]["nick"], "Hamlet")
