"""
In-band registration (XEP-0077) over real loopback sockets: off by default,
registering before authentication, then logging in with the new account,
changing one's password and removing one's account.
"""

from __future__ import annotations

import base64

from twisted.internet import defer
from twisted.trial import unittest

from tests.c2s.test_stream import StreamErrorMixin
from tests.harness import NS_SASL, NS_STANZA_ERRORS, condition, xml

NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"


def register(id: str, username: str, password: str, to: str = "") -> str:
    toAttr = f" to='{to}'" if to else ""
    return (
        f"<iq type='set' id='{id}'{toAttr}><query xmlns='{NS_REGISTER}'>"
        f"<username>{username}</username><password>{password}</password></query></iq>"
    )


def plainAuth(username: str, password: str) -> str:
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


class RegistrationMixin(StreamErrorMixin):
    @defer.inlineCallbacks
    def secured(self, host: str = "localhost"):
        """A stream to C{host} under TLS, not authenticated: (client, features)."""
        client = yield self.connect()
        yield self.openStream(client, host)
        features = yield self.starttls(client, to=host)
        return client, features

    @defer.inlineCallbacks
    def canLogin(self, username: str, password: str) -> defer.Deferred:
        client, _ = yield self.secured()
        client.send(plainAuth(username, password))
        answer = yield client.next()
        return answer.name == "success"


class RegistrationDisabledTests(RegistrationMixin, unittest.TestCase):
    """Without `registration = true` nobody registers in band."""

    def setUp(self):
        return self.startServer()

    @defer.inlineCallbacks
    def test_notAdvertised(self):
        """The iq-register stream feature is not offered."""
        client, features = yield self.secured()
        self.assertIsNone(next(features.elements(NS_FEATURE, "register"), None))

    @defer.inlineCallbacks
    def test_formIsServiceUnavailable(self):
        """Asking for the form before authentication gets service-unavailable."""
        client, _ = yield self.secured()
        client.send(f"<iq type='get' id='f1'><query xmlns='{NS_REGISTER}'/></iq>")
        reply = yield client.next()
        self.assertEqual(
            xml(reply),
            "<iq id='f1' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )

    @defer.inlineCallbacks
    def test_registerIsServiceUnavailable(self):
        """Registering gets service-unavailable and creates no account."""
        client, _ = yield self.secured()
        client.send(register("r1", "mallory", "secret"))
        reply = yield client.next()
        self.assertEqual((reply["type"], condition(reply, NS_STANZA_ERRORS)), ("error", "service-unavailable"))
        exists = yield self.server.accounts.exists("localhost", "mallory")
        self.assertFalse(exists)


class RegistrationTests(RegistrationMixin, unittest.TestCase):
    """`[host."localhost"] registration = true`; other.test keeps it off."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(hosts=["localhost", "other.test"], host={"localhost": {"registration": True}})
        yield self.addUser("alice@localhost", "secret")

    @defer.inlineCallbacks
    def test_advertisedAfterTLS(self):
        """The iq-register feature is offered next to SASL once TLS is on."""
        client, features = yield self.secured()
        self.assertIsNotNone(next(features.elements(NS_FEATURE, "register"), None))

    @defer.inlineCallbacks
    def test_form(self):
        """The form asks for a username and a password."""
        client, _ = yield self.secured()
        client.send(f"<iq type='get' id='f1'><query xmlns='{NS_REGISTER}'/></iq>")
        reply = yield client.next()
        self.assertEqual(
            xml(reply),
            "<iq id='f1' type='result'><query xmlns='jabber:iq:register'>"
            "<instructions>Choose a username and password.</instructions><username/><password/></query></iq>",
        )

    @defer.inlineCallbacks
    def test_registerThenLogin(self):
        """Register romeo before authenticating, then log in as romeo on the same stream and bind."""
        client, _ = yield self.secured()
        client.send(register("r1", "Romeo", "wherefore"))
        reply = yield client.next()
        self.assertEqual(xml(reply), "<iq id='r1' type='result'/>")
        client.send(plainAuth("romeo", "wherefore"))
        success = yield client.next()
        self.assertEqual(success.name, "success")
        client.restart()
        yield self.openStream(client)
        jid = yield self.bindResource(client, "garden")
        self.assertEqual(jid, "romeo@localhost/garden")

    @defer.inlineCallbacks
    def test_takenName(self):
        """Registering an existing username gets conflict and leaves its password alone."""
        client, _ = yield self.secured()
        client.send(register("r2", "alice", "stolen"))
        reply = yield client.next()
        self.assertEqual((reply["type"], reply["id"], condition(reply, NS_STANZA_ERRORS), reply.error["type"]), ("error", "r2", "conflict", "cancel"))
        ok = yield self.canLogin("alice", "secret")
        self.assertTrue(ok)

    @defer.inlineCallbacks
    def test_missingPassword(self):
        """An empty password gets not-acceptable (XEP-0077 §3.1)."""
        client, _ = yield self.secured()
        client.send(register("r3", "juliet", ""))
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "not-acceptable")

    @defer.inlineCallbacks
    def test_invalidUsername(self):
        """A username that is no valid localpart gets jid-malformed."""
        client, _ = yield self.secured()
        client.send(register("r4", "jul iet", "pw"))
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "jid-malformed")

    @defer.inlineCallbacks
    def test_oneAccountPerStream(self):
        """A second registration on the same stream gets not-acceptable (XEP-0077 §3.1.1)."""
        client, _ = yield self.secured()
        client.send(register("r5", "tybalt", "pw"))
        reply = yield client.next()
        self.assertEqual(reply["type"], "result")
        client.send(register("r6", "mercutio", "pw"))
        reply = yield client.next()
        self.assertEqual((reply["id"], condition(reply, NS_STANZA_ERRORS)), ("r6", "not-acceptable"))
        exists = yield self.server.accounts.exists("localhost", "mercutio")
        self.assertFalse(exists)

    @defer.inlineCallbacks
    def test_perHost(self):
        """other.test, without registration, refuses with service-unavailable."""
        client, features = yield self.secured("other.test")
        self.assertIsNone(next(features.elements(NS_FEATURE, "register"), None))
        client.send(register("r7", "romeo", "pw"))
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "service-unavailable")

    @defer.inlineCallbacks
    def test_notBeforeTLS(self):
        """Registration before STARTTLS is a stanza before negotiation: not-authorized stream error."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(register("r8", "romeo", "pw"))
        yield self.assertStreamError(client, "not-authorized")

    @defer.inlineCallbacks
    def test_formForAccount(self):
        """A logged-in user asking for the form is told it is registered, with its username."""
        client, _ = yield self.login("alice@localhost")
        client.send(f"<iq type='get' id='g1'><query xmlns='{NS_REGISTER}'/></iq>")
        reply = yield client.next()
        self.assertEqual(
            xml(reply),
            "<iq from='alice@localhost' id='g1' to='alice@localhost/res' type='result'><query xmlns='jabber:iq:register'>"
            "<registered/><username>alice</username><password/></query></iq>",
        )

    @defer.inlineCallbacks
    def test_changePassword(self):
        """A logged-in user changes the password; the new one logs in, the old one no longer does."""
        client, _ = yield self.login("alice@localhost")
        client.send(register("c1", "alice", "newsecret", to="localhost"))
        reply = yield client.next()
        self.assertEqual(xml(reply), "<iq from='localhost' id='c1' to='alice@localhost/res' type='result'/>")
        ok = yield self.canLogin("alice", "newsecret")
        self.assertTrue(ok)
        ok = yield self.canLogin("alice", "secret")
        self.assertFalse(ok)

    @defer.inlineCallbacks
    def test_changePasswordUsernameIsPrepared(self):
        """The username in a password change is compared after nodeprep (ALICE is alice)."""
        client, _ = yield self.login("alice@localhost")
        client.send(register("c2", "ALICE", "newsecret"))
        reply = yield client.next()
        self.assertEqual(reply["type"], "result")

    @defer.inlineCallbacks
    def test_changeOtherUsersPassword(self):
        """Naming another username in a password change gets bad-request and changes nothing."""
        yield self.addUser("bob@localhost", "builder")
        client, _ = yield self.login("alice@localhost")
        client.send(register("c3", "bob", "hijacked"))
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "bad-request")
        ok = yield self.canLogin("bob", "builder")
        self.assertTrue(ok)

    @defer.inlineCallbacks
    def test_emptyNewPassword(self):
        """An empty new password is refused with bad-request; the old one still works (XEP-0077 §3.3)."""
        client, _ = yield self.login("alice@localhost")
        client.send(register("c4", "alice", ""))
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "bad-request")
        ok = yield self.canLogin("alice", "secret")
        self.assertTrue(ok)

    @defer.inlineCallbacks
    def test_removeAccount(self):
        """<remove/> deletes the account: result, then not-authorized on every session; no more logins."""
        client, _ = yield self.login("alice@localhost", resource="one")
        other, _ = yield self.login("alice@localhost", resource="two")
        client.send(f"<iq type='set' id='u1'><query xmlns='{NS_REGISTER}'><remove/></query></iq>")
        reply = yield client.next()
        self.assertEqual(xml(reply), "<iq from='alice@localhost' id='u1' to='alice@localhost/one' type='result'/>")
        yield self.assertStreamError(client, "not-authorized")
        yield self.assertStreamError(other, "not-authorized")
        exists = yield self.server.accounts.exists("localhost", "alice")
        self.assertFalse(exists)
        ok = yield self.canLogin("alice", "secret")
        self.assertFalse(ok)

    @defer.inlineCallbacks
    def test_removeWithOtherChildren(self):
        """<remove/> next to other fields gets bad-request (XEP-0077 §3.2) and deletes nothing."""
        client, _ = yield self.login("alice@localhost")
        client.send(f"<iq type='set' id='u2'><query xmlns='{NS_REGISTER}'><remove/><username>alice</username></query></iq>")
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "bad-request")
        exists = yield self.server.accounts.exists("localhost", "alice")
        self.assertTrue(exists)


class RemovalWithoutRegistrationTests(RegistrationMixin, unittest.TestCase):
    """A host without in-band registration does not allow in-band removal either."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "secret")

    @defer.inlineCallbacks
    def test_removeNotAllowed(self):
        """<remove/> gets not-allowed and the account stays."""
        client, _ = yield self.login("alice@localhost")
        client.send(f"<iq type='set' id='u1'><query xmlns='{NS_REGISTER}'><remove/></query></iq>")
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "not-allowed")
        exists = yield self.server.accounts.exists("localhost", "alice")
        self.assertTrue(exists)

    @defer.inlineCallbacks
    def test_changePasswordAllowed(self):
        """Changing one's own password works without registration enabled."""
        client, _ = yield self.login("alice@localhost")
        client.send(register("c1", "alice", "other"))
        reply = yield client.next()
        self.assertEqual(reply["type"], "result")
