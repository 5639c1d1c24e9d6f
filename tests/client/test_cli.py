"""
The command line driven as a user drives it: separate processes
(C{python -m jabberd.client}), the password in the environment, output
read from stdout and stderr, and the exit codes scripts rely on.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.client import Client, ClientOptions
from jabberd.client.vcard import NS_VCARD
from tests.client.support import LOOPBACK, ProsodyTestCase, freePort, loginJabberd, runCLI, startCLI
from tests.client.test_prosody import fresh
from tests.harness import ServerMixin

ID = re.compile(r" id='([^']+)'")


def withoutId(line: str) -> tuple[str, str | None]:
    """(the line with its id replaced by ID, the id) for exact comparisons."""
    match = ID.search(line)
    return ID.sub(" id='ID'", line, count=1), match.group(1) if match else None


class JabberdCLI(ServerMixin, unittest.TestCase):
    """Runs the command line against jabberd's server."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        for user in ("alice", "bob", "carol"):
            yield self.addUser(f"{user}@localhost", "secret")

    def args(self, jid: str, *rest: str, trust: bool = True) -> list[str]:
        base = ["--jid", jid, "--host", LOOPBACK, "--port", str(self.server.port("c2s")), "--timeout", "10"]
        if trust:
            base += ["--trust", self.certificatePath()]
        return base + list(rest)

    def cli(self, jid: str, *rest: str, **kw):
        return runCLI(self, self.args(jid, *rest, trust=kw.pop("trust", True)), **kw)

    @defer.inlineCallbacks
    def listener(self, jid: str, *rest: str):
        """A `listen -v` process, once it is logged in and listening."""
        process = startCLI(self, self.args(jid, "-v", "listen", *rest))
        yield process.waitStderr(f"listening as {jid}")
        return process


class SendListenTests(JabberdCLI):
    """send in one process, listen in another."""

    @defer.inlineCallbacks
    def test_sendThenListen(self):
        """bob listens; alice sends one message; bob's process prints exactly that stanza and exits 0 after --count 1."""
        bob = yield self.listener("bob@localhost/cli", "--no-presence", "--count", "1")
        out, err, code = yield self.cli("alice@localhost/sh", "send", "bob@localhost/cli", "-m", "hello from the shell")
        self.assertEqual((out, err, code), ("", "", 0))
        out, err, code = yield bob.ended
        line, stanzaId = withoutId(out)
        self.assertEqual(
            (line, code),
            ("<message from='alice@localhost/sh' to='bob@localhost/cli' type='chat' id='ID'><body>hello from the shell</body></message>\n", 0),
        )
        self.assertEqual(
            err,
            "jabberd-client: connecting as bob@localhost/cli\n"
            "jabberd-client: logged in as bob@localhost/cli with SCRAM-SHA-256-PLUS, channel binding tls-exporter\n"
            "jabberd-client: listening as bob@localhost/cli\n",
        )

    @defer.inlineCallbacks
    def test_stdinLinesToTwoRecipients(self):
        """Each line of stdin becomes one headline to each recipient, in order."""
        bob = yield self.listener("bob@localhost/cli", "--no-presence", "--count", "2")
        carol = yield self.listener("carol@localhost/cli", "--no-presence", "--count", "2")
        out, err, code = yield self.cli(
            "alice@localhost/sh", "send", "bob@localhost/cli", "carol@localhost/cli", "--type", "headline", stdin=b"line one\nline two\n"
        )
        self.assertEqual((out, err, code), ("", "", 0))
        for name, process in (("bob", bob), ("carol", carol)):
            out, _, code = yield process.ended
            lines = [withoutId(line)[0] for line in out.splitlines()]
            self.assertEqual(
                (lines, code),
                (
                    [
                        f"<message from='alice@localhost/sh' to='{name}@localhost/cli' type='headline' id='ID'><body>line one</body></message>",
                        f"<message from='alice@localhost/sh' to='{name}@localhost/cli' type='headline' id='ID'><body>line two</body></message>",
                    ],
                    0,
                ),
            )

    @defer.inlineCallbacks
    def test_listenJSON(self):
        """listen --json prints one JSON object per stanza; a line break in the body stays inside the line."""
        bob = yield self.listener("bob@localhost/cli", "--no-presence", "--count", "1", "--json")
        yield self.cli("alice@localhost/sh", "send", "bob@localhost/cli", "--type", "normal", "--subject", "hi", "-m", "two\nlines")
        out, _, code = yield bob.ended
        self.assertEqual(out.count("\n"), 1)
        record = json.loads(out)
        stanzaId = record.pop("id")
        self.assertEqual(
            record,
            {
                "stanza": "message",
                "from": "alice@localhost/sh",
                "to": "bob@localhost/cli",
                "type": "normal",
                "subject": "hi",
                "body": "two\nlines",
                "xml": "<message from='alice@localhost/sh' to='bob@localhost/cli' type='normal' "
                f"id='{stanzaId}'><subject>hi</subject><body>two&#10;lines</body></message>",
            },
        )
        self.assertEqual(code, 0)

    @defer.inlineCallbacks
    def test_interruptedListenExitsZero(self):
        """Ctrl-C ends listen cleanly: exit 0, no error line, the server ends the session; its own presence (with caps) was printed."""
        bob = yield self.listener("bob@localhost/cli")
        yield bob.waitLines(1)
        bob.interrupt()
        out, err, code = yield bob.ended
        caps = Client("bob@localhost", "x", ClientOptions(identityType="bot")).caps.element().toXml()
        self.assertEqual((out, code), (f"<presence from='bob@localhost/cli' to='bob@localhost/cli'>{caps}</presence>\n", 0))
        self.assertNotIn("error", err)
        self.assertIsNone(self.server.sessions.get("bob@localhost", "cli"))

    @defer.inlineCallbacks
    def test_bounceExitsOne(self):
        """A message the server bounces (no such account, RFC 6121 §8.5.1) makes send exit 1 and say why."""
        out, err, code = yield self.cli("alice@localhost/sh", "send", "nobody@localhost", "-m", "hello?")
        self.assertEqual((out, err, code), ("", "jabberd-client: message to nobody@localhost bounced: service-unavailable\n", 1))


class QueryTests(JabberdCLI):
    """ping, disco, roster, presence and vcard as commands."""

    @defer.inlineCallbacks
    def test_pingAndDiscoOfListener(self):
        """ping and disco of a listening client: the round trip, then its identity (client/bot) and features."""
        bob = yield self.listener("bob@localhost/cli", "--no-presence")
        out, err, code = yield self.cli("alice@localhost/sh", "ping", "bob@localhost/cli")
        self.assertEqual((re.sub(r"in [0-9.]+ ms", "in N ms", out), err, code), ("pong from bob@localhost/cli in N ms\n", "", 0))
        out, err, code = yield self.cli("alice@localhost/sh", "disco", "bob@localhost/cli")
        self.assertEqual(
            (out, err, code),
            (
                "identity\tclient\tbot\tjabberd-client\n"
                "feature\thttp://jabber.org/protocol/disco#info\n"
                "feature\thttp://jabber.org/protocol/disco#items\n"
                "feature\turn:xmpp:ping\n"
                "feature\thttp://jabber.org/protocol/caps\n",
                "",
                0,
            ),
        )
        bob.interrupt()
        yield bob.ended

    @defer.inlineCallbacks
    def test_rosterAddListRemove(self):
        """roster add with name and groups, list (tab-separated), remove, list again (empty)."""
        result = yield self.cli("alice@localhost/sh", "roster", "add", "bob@localhost", "--name", "Bob", "--group", "Work", "--group", "Friends")
        self.assertEqual(result, ("", "", 0))
        result = yield self.cli("alice@localhost/sh", "roster")
        self.assertEqual(result, ("bob@localhost\tnone\t-\tBob\tFriends,Work\n", "", 0))
        result = yield self.cli("alice@localhost/sh", "roster", "remove", "bob@localhost")
        self.assertEqual(result, ("", "", 0))
        result = yield self.cli("alice@localhost/sh", "roster", "list")
        self.assertEqual(result, ("", "", 0))

    @defer.inlineCallbacks
    def test_subscriptionAndPresence(self):
        """alice subscribes, bob approves (offline, from the pending request), then alice sees bob online with `presence`."""
        self.assertEqual((yield self.cli("alice@localhost/sh", "roster", "subscribe", "bob@localhost")), ("", "", 0))
        self.assertEqual((yield self.cli("bob@localhost/sh", "roster", "approve", "alice@localhost")), ("", "", 0))
        self.assertEqual((yield self.cli("alice@localhost/sh", "roster")), ("bob@localhost\tto\t-\tbob@localhost\t\n", "", 0))
        self.assertEqual((yield self.cli("bob@localhost/sh", "roster")), ("alice@localhost\tfrom\t-\talice@localhost\t\n", "", 0))
        bob = yield self.listener("bob@localhost/cli", "--priority", "7")
        out, err, code = yield self.cli("alice@localhost/sh", "presence", "--wait", "1")
        self.assertEqual((out, err, code), ("bob@localhost/cli\tavailable\t7\t\n", "", 0))
        bob.interrupt()
        yield bob.ended

    @defer.inlineCallbacks
    def test_vcard(self):
        """vcard prints the fields of a stored vCard, or the element with --xml."""
        alice = yield loginJabberd(self, "alice@localhost/lib")
        vcard = domish.Element((NS_VCARD, "vCard"))
        vcard.addElement("FN", content="Alice Liddell")
        vcard.addElement("N").addElement("GIVEN", content="Alice")
        yield alice.vcard.set(vcard)
        result = yield self.cli("bob@localhost/sh", "vcard", "alice@localhost")
        self.assertEqual(result, ("FN\tAlice Liddell\nN/GIVEN\tAlice\n", "", 0))
        result = yield self.cli("bob@localhost/sh", "vcard", "alice@localhost", "--xml")
        self.assertEqual(result, ("<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><GIVEN>Alice</GIVEN></N></vCard>\n", "", 0))


class ExitCodeTests(JabberdCLI):
    """The documented exit codes, each with its one line on stderr."""

    @defer.inlineCallbacks
    def test_wrongPasswordExitsFour(self):
        """A wrong password: exit 4, one line."""
        result = yield self.cli("alice@localhost/sh", "ping", password="wrong")
        self.assertEqual(result, ("", "jabberd-client: authentication failed: not-authorized (invalid-proof)\n", 4))

    @defer.inlineCallbacks
    def test_unreachablePortExitsThree(self):
        """Nothing listening on the port: exit 3, one line."""
        port = freePort()
        args = ["--jid", "alice@localhost", "--host", LOOPBACK, "--port", str(port), "--trust", self.certificatePath(), "ping"]
        result = yield runCLI(self, args)
        self.assertEqual(result, ("", f"jabberd-client: cannot connect to {LOOPBACK}:{port}: connection refused\n", 3))

    @defer.inlineCallbacks
    def test_untrustedCertificateExitsThree(self):
        """A self-signed server without --trust: exit 3, saying what to do."""
        result = yield self.cli("alice@localhost/sh", "ping", trust=False)
        self.assertEqual(
            result,
            (
                "",
                "jabberd-client: the certificate of localhost is not trusted: self-signed certificate"
                " (give its CA or the certificate itself with trust, or use insecure for a test server)\n",
                3,
            ),
        )

    @defer.inlineCallbacks
    def test_insecure(self):
        """--insecure connects to the self-signed server anyway."""
        out, err, code = yield self.cli("alice@localhost/sh", "--insecure", "ping", trust=False)
        self.assertEqual((out.startswith("pong from localhost in "), err, code), (True, "", 0))

    @defer.inlineCallbacks
    def test_directTLS(self):
        """--direct-tls to the server's TLS port (XEP-0368)."""
        args = ["--jid", "alice@localhost/sh", "--host", LOOPBACK, "--port", str(self.server.port("c2s_tls")), "--direct-tls"]
        out, err, code = yield runCLI(self, args + ["--trust", self.certificatePath(), "-v", "ping"])
        self.assertEqual((out.startswith("pong from localhost in "), code), (True, 0))
        self.assertIn("logged in as alice@localhost/sh with SCRAM-SHA-256-PLUS, channel binding tls-exporter\n", err)

    @defer.inlineCallbacks
    def test_stanzaErrorExitsOne(self):
        """An error reply (ping to a resource that is not online): exit 1 with the condition."""
        result = yield self.cli("alice@localhost/sh", "ping", "alice@localhost/nowhere")
        self.assertEqual(result, ("", "jabberd-client: error reply: service-unavailable\n", 1))

    @defer.inlineCallbacks
    def test_noPasswordExitsTwo(self):
        """No password in the environment, no file, no terminal: exit 2 saying where a password can come from."""
        result = yield self.cli("alice@localhost/sh", "ping", password=None)
        self.assertEqual(
            result, ("", "jabberd-client: error: no password: set $JABBERD_CLIENT_PASSWORD, use --password-file, or run on a terminal\n", 2)
        )

    @defer.inlineCallbacks
    def test_passwordFile(self):
        """--password-file reads the first line of the file."""
        path = os.path.join(tempfile.mkdtemp(), "password")
        with open(path, "w") as f:
            f.write("secret\n")
        out, err, code = yield self.cli("alice@localhost/sh", "--password-file", path, "ping", password=None)
        self.assertEqual((out.startswith("pong from localhost in "), err, code), (True, "", 0))

    @defer.inlineCallbacks
    def test_badJIDExitsTwo(self):
        """A recipient that is no JID even after XEP-0106 escaping: exit 2."""
        out, err, code = yield self.cli("alice@localhost/sh", "send", "a@b@", "-m", "x")
        self.assertEqual((out, code), ("", 2))
        self.assertTrue(err.startswith("jabberd-client: error: recipient 'a@b@' is not a valid JID"), err)

    @defer.inlineCallbacks
    def test_usageErrorExitsTwo(self):
        """A missing argument: exit 2 with one line pointing at --help."""
        result = yield runCLI(self, ["--jid", "alice@localhost", "send"])
        self.assertEqual(result, ("", "jabberd-client: error: the following arguments are required: JID (see jabberd-client --help)\n", 2))

    @defer.inlineCallbacks
    def test_helpDocumentsExitCodes(self):
        """--help lists every exit code."""
        out, err, code = yield runCLI(self, ["--help"])
        self.assertEqual((err, code), ("", 0))
        self.assertIn(
            "exit codes:\n"
            "  0  success\n"
            "  1  the server or the other entity answered with an XMPP error (stanza or stream error)\n"
            "  2  usage error (bad option, bad JID, no password available)\n"
            "  3  connection or TLS failure, or no answer in time\n"
            "  4  authentication failed (wrong password, mechanism refused, server not proven)\n",
            out,
        )


class ProsodyCLITests(ProsodyTestCase):
    """The same command line against Prosody."""

    def args(self, jid: str, *rest: str) -> list[str]:
        return ["--jid", jid, "--host", LOOPBACK, "--port", str(self.prosody.c2s), "--trust", self.prosody.cert, "--timeout", "10", *rest]

    @defer.inlineCallbacks
    def test_sendToBareJID(self):
        """A chat message to the bare JID reaches the listening (available) resource through Prosody."""
        a = self.prosody.register(fresh("clia"), "secret")
        b = self.prosody.register(fresh("clib"), "secret")
        bob = startCLI(self, self.args(b + "/cli", "-v", "listen", "--json"))
        yield bob.waitStderr(f"listening as {b}/cli")
        # Wait for bob's own presence to come back: from then on he is available.
        yield bob.waitStdout(f'"from": "{b}/cli", "xml": "<presence')
        result = yield runCLI(self, self.args(a + "/sh", "send", b, "-m", "via prosody"))
        self.assertEqual(result, ("", "", 0))
        out = yield bob.waitStdout('"stanza": "message"')
        line = next(line for line in out.decode().splitlines() if '"stanza": "message"' in line)
        record = json.loads(line)
        self.assertEqual(
            record,
            {
                "stanza": "message",
                "from": a + "/sh",
                "to": b,
                "type": "chat",
                "id": record["id"],
                "body": "via prosody",
                "xml": f"<message from='{a}/sh' to='{b}' type='chat' id='{record['id']}' xml:lang='en'><body>via prosody</body></message>",
            },
        )
        bob.interrupt()
        _, _, code = yield bob.ended
        self.assertEqual(code, 0)

    @defer.inlineCallbacks
    def test_pingDiscoAndWrongPassword(self):
        """ping and disco of Prosody succeed; a wrong password exits 4."""
        a = self.prosody.register(fresh("clip"), "secret")
        out, err, code = yield runCLI(self, self.args(a, "ping"))
        self.assertEqual((out.startswith("pong from localhost in "), err, code), (True, "", 0))
        out, err, code = yield runCLI(self, self.args(a, "disco", "--info"))
        self.assertEqual((err, code), ("", 0))
        self.assertIn("identity\tserver\tim\tProsody\n", out)
        self.assertIn("feature\turn:xmpp:ping\n", out)
        result = yield runCLI(self, self.args(a, "ping"), password="wrong")
        self.assertEqual(result, ("", "jabberd-client: authentication failed: not-authorized (The response provided by the client doesn't match the one we calculated.)\n", 4))
