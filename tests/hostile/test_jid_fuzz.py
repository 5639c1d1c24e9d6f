"""
JID edge cases with hypothesis over the stringprep profiles (RFC 3920
Appendixes A-C, which RFC 7622 §3 keeps for compatibility through
jabberd/jid.py), then hostile JIDs over real streams.

Invariants of the profiles: preparation is idempotent; a prepared part is
at most 1023 bytes of UTF-8; the prohibited characters of each profile are
refused, never passed through; the bidi rule (RFC 3454 §6) holds for every
accepted part; and nothing but L{InvalidJID} ever escapes the parser.
Over a real stream: a malformed 'to' gets the stanza error jid-malformed
(from a client and from a component), a malformed 'from' the stream error
invalid-from, and the server keeps serving.
"""

from __future__ import annotations

import stringprep
import time
import unicodedata

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.trial import unittest

from jabberd import jid as J
from jabberd.components import handshakeDigest
from jabberd.xmlstream import NS_COMPONENT
from tests.harness import condition, rawConnect
from tests.hostile import fuzzing
from tests.hostile.base import HostileMixin
from tests.hostile.test_fuzz import collect

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

PROPERTIES = settings(
    max_examples=300,
    deadline=1000,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

#: RFC 3920 Appendix A.5: nodeprep's own additions to the prohibited characters.
NODE_EXTRA = set("\"&'/:<>@")

#: Tables every profile prohibits (RFC 3454 C.1.2 to C.9); nodeprep adds C.1.1 (ASCII space).
COMMON_TABLES = [
    stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22, stringprep.in_table_c3,
    stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7,
    stringprep.in_table_c8, stringprep.in_table_c9,
]

PREPS = {"node": J.prepNode, "domain": J.prepDomain, "resource": J.prepResource}


def prepared(prep, text: str) -> str | None:
    """C{prep(text)}, or None when it is refused (only InvalidJID may say so)."""
    try:
        return prep(text)
    except J.InvalidJID:
        return None


def prohibited(char: str, part: str) -> bool:
    """Whether C{char} may never appear in a prepared C{part}."""
    if part == "node" and (char in NODE_EXTRA or stringprep.in_table_c11(char)):
        return True
    if part == "domain" and not char.isalnum() and char not in ".-":
        return char.isascii()  # STD 3 host name rules for the ASCII range
    return any(table(char) for table in COMMON_TABLES)


def bidiOK(text: str) -> bool:
    """RFC 3454 §6: with any RandALCat character, no LCat one, and RandALCat at both ends."""
    classes = [unicodedata.bidirectional(c) for c in text]
    if not any(c in ("R", "AL") for c in classes):
        return True
    return "L" not in classes and classes[0] in ("R", "AL") and classes[-1] in ("R", "AL")


class StringprepPropertyTests(unittest.TestCase):
    """nodeprep, nameprep and resourceprep, as jabberd/jid.py applies them."""

    @PROPERTIES
    @given(st.sampled_from(sorted(PREPS)), fuzzing.jidParts(20))
    def test_idempotent(self, part, text):
        """A prepared part prepares to itself."""
        once = prepared(PREPS[part], text)
        assume(once is not None)
        self.assertEqual(PREPS[part](once), once)

    @PROPERTIES
    @given(st.sampled_from(sorted(PREPS)), fuzzing.jidParts(20))
    def test_noProhibitedOutput(self, part, text):
        """No accepted part contains a character its profile prohibits, and each satisfies the bidi rule."""
        result = prepared(PREPS[part], text)
        assume(result is not None and not result.startswith("["))
        for char in result if part != "domain" else result.replace(".", ""):
            self.assertFalse(prohibited(char, part), f"{part} {result!r} contains {char!r}")
        for label in (result.split(".") if part == "domain" else [result]):
            self.assertTrue(bidiOK(label), f"{part} {result!r} breaks the bidi rule")

    @PROPERTIES
    @given(st.sampled_from(sorted(PREPS)), fuzzing.jidParts(8), st.sampled_from(sorted(NODE_EXTRA) + ["\x00", "\x7f", "\ue000", "\ufff9", "\u2ff0", "\u200e", "\U000f0000"]))
    def test_prohibitedRefused(self, part, text, bad):
        """A part holding a prohibited character (after mapping) is refused, wherever the character is."""
        assume(prohibited(bad, part))
        for candidate in (bad + text, text + bad, text[: len(text) // 2] + bad + text[len(text) // 2 :]):
            self.assertIsNone(prepared(PREPS[part], candidate), f"{part} accepted {candidate!r}")

    @PROPERTIES
    @given(st.sampled_from(sorted(PREPS)), st.sampled_from(["a", "\u00e9", "\u4e2d", "\U0001f600"]), st.integers(300, 1100))
    @example("node", "a", 1023)
    @example("node", "a", 1024)
    @example("resource", "\u00e9", 511)
    @example("resource", "\u00e9", 512)
    @example("resource", "\u4e2d", 341)
    @example("resource", "\u4e2d", 342)
    @example("domain", "a", 975)
    @example("domain", "a", 976)
    def test_lengthLimit(self, part, char, count):
        """A part is accepted exactly when its prepared form is at most 1023 bytes of UTF-8 (and its characters are allowed)."""
        text = char * count
        dots = 0
        if part == "domain":
            text = ".".join(text[i : i + 20] for i in range(0, len(text), 20))
            dots = text.count(".")
        result = prepared(PREPS[part], text)
        single = prepared(PREPS[part], char)
        if single is None:
            self.assertIsNone(result)
            return
        size = len(single.encode("utf-8")) * count + dots
        if size <= J.MAX_PART_BYTES:
            self.assertIsNotNone(result, f"{part} of {count} x {char!r} refused at {size} bytes")
            self.assertEqual(len(result.encode("utf-8")), size)
        else:
            self.assertIsNone(result, f"{part} of {count} x {char!r} accepted at {size} bytes")

    @PROPERTIES
    @given(fuzzing.jids())
    def test_parseOnlyInvalidJID(self, text):
        """Any string: a JID whose parts are each prepared, or InvalidJID, quickly; the full form parses back to the same JID."""
        start = time.monotonic()
        try:
            j = J.parse(text)
        except J.InvalidJID:
            return
        finally:
            self.assertLess(time.monotonic() - start, 0.5)
        again = J.parse(j.full())
        self.assertEqual((again.user, again.host, again.resource), (j.user, j.host, j.resource))
        for value in (j.user, j.host, j.resource):
            if value is not None:
                self.assertLessEqual(len(value.encode("utf-8")), J.MAX_PART_BYTES)


def escape(text: str) -> str:
    """For an attribute value: XML escapes, and characters XML cannot carry written as nothing else would parse."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


def xmlSafe(text: str) -> bool:
    """Characters an XML 1.0 document may contain (otherwise the stream itself is not-well-formed)."""
    return all(c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000" for c in text)


def malformedJIDs(count: int) -> list[str]:
    """C{count} generated strings a real stream can carry that are not valid JIDs."""

    def invalid(text: str) -> bool:
        return prepared(J.parse, text) is None

    return collect(fuzzing.jids().filter(lambda t: bool(t) and xmlSafe(t) and invalid(t) and "\r" not in t and "\t" not in t and "\n" not in t), count)


class HostileJIDStreamTests(HostileMixin, unittest.TestCase):
    """Malformed JIDs in 'to' and 'from' over real streams."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(
            components={"listen": ["tcp:0:interface=127.0.0.1"], "secrets": {"muc.localhost": "s3cret"}},
            muc={"enabled": False},
        )
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_malformedToFromClient(self):
        """40 generated malformed 'to' JIDs from a bound client: each message and iq answered with jid-malformed; the stream lives on."""
        alice, jid = yield self.login("alice@localhost")
        for i, bad in enumerate(malformedJIDs(40)):
            kind = ("message", "iq")[i % 2]
            extra = " type='get'><ping xmlns='urn:xmpp:ping'/></iq>" if kind == "iq" else "><body>x</body></message>"
            alice.send(f"<{kind} to='{escape(bad)}' id='j{i}'{extra}")
            reply = yield alice.next()
            self.assertEqual((reply.name, reply["type"], reply["id"], reply["to"], condition(reply, STANZAS)),
                             (kind, "error", f"j{i}", jid, "jid-malformed"), repr(bad))
        self.assertFalse(alice.lost)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_malformedFromFromClient(self):
        """A malformed 'from' on a bound client's stanza ends its stream with invalid-from; others are served."""
        for bad in malformedJIDs(3):
            alice, _ = yield self.login("alice@localhost")
            alice.send(f"<message from='{escape(bad)}' to='alice@localhost' id='f'><body>x</body></message>")
            yield self.assertStreamError(alice, "invalid-from")
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_malformedToFromComponent(self):
        """A component's stanzas to 20 generated malformed JIDs are answered with jid-malformed; the component stays connected."""
        component = yield rawConnect(self.server.port("component"))
        self.addCleanup(component.disconnect)
        component.send(fuzzing.COMPONENT_OPEN.format(domain="muc.localhost"))
        header = yield component.nextHeader()
        component.send(f"<handshake>{handshakeDigest(header['id'], 's3cret')}</handshake>")
        yield component.next()
        for i, bad in enumerate(malformedJIDs(20)):
            component.send(f"<message from='room@muc.localhost' to='{escape(bad)}' id='c{i}'><body>x</body></message>")
            reply = yield component.next()
            self.assertEqual((reply.uri, reply["type"], reply["id"], reply["to"], condition(reply, STANZAS)),
                             (NS_COMPONENT, "error", f"c{i}", "room@muc.localhost", "jid-malformed"), repr(bad))
        self.assertIn("muc.localhost", self.server.components.connected)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_malformedStreamTo(self):
        """A stream header whose 'to' is a malformed domain gets a stream error (host-unknown or improper-addressing), never a crash."""
        for bad in malformedJIDs(5):
            client = yield self.connect()
            client.send(
                "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
                f" to='{escape(bad)}' version='1.0'>"
            )
            error = yield client.waitElement("error")
            self.assertIn(condition(error, "urn:ietf:params:xml:ns:xmpp-streams"), ("host-unknown", "improper-addressing"), repr(bad))
            yield client.waitClosed()
        yield self.assertServed()
