"""
XEP-0106 JID escaping, checked against every table and example of the
specification (§3 mappings, §4.3 exceptions, §5 examples).
"""

from __future__ import annotations

from twisted.trial import unittest

from jabberd import jid as J
from jabberd.client.escaping import escape, escapeAddress, jidFromURI, unescape, unescapeAddress

#: §3.1 / §3.2: unescaped character -> escaped sequence.
MAPPING = [
    (" ", "\\20"),
    ('"', "\\22"),
    ("&", "\\26"),
    ("'", "\\27"),
    ("/", "\\2f"),
    (":", "\\3a"),
    ("<", "\\3c"),
    (">", "\\3e"),
    ("@", "\\40"),
    ("\\", "\\5c"),
]

#: §5.1 "JID Examples": user input, escaped JID (client display = input).
JID_EXAMPLES = [
    ("space cadet@example.com", "space\\20cadet@example.com"),
    ('call me "ishmael"@example.com', "call\\20me\\20\\22ishmael\\22@example.com"),
    ("at&t guy@example.com", "at\\26t\\20guy@example.com"),
    ("d'artagnan@example.com", "d\\27artagnan@example.com"),
    ("/.fanboy@example.com", "\\2f.fanboy@example.com"),
    ("::foo::@example.com", "\\3a\\3afoo\\3a\\3a@example.com"),
    ("<foo>@example.com", "\\3cfoo\\3e@example.com"),
    ("user@host@example.com", "user\\40host@example.com"),
    ("c:\\net@example.com", "c\\3a\\net@example.com"),
    ("c:\\\\net@example.com", "c\\3a\\\\net@example.com"),
    ("c:\\cool stuff@example.com", "c\\3a\\cool\\20stuff@example.com"),
    ("c:\\5commas@example.com", "c\\3a\\5c5commas@example.com"),
]

WILD_MAILBOX = "here's_a_wild_&_/cr%zy/_address@example.com"
WILD_JID = "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address@example.com"


class MappingTests(unittest.TestCase):
    """The two tables of §3: each disallowed character and its escape."""

    def test_escapeEachCharacter(self) -> None:
        """Each disallowed character inside a localpart becomes its \\hex sequence (§3.1 table)."""
        for char, escaped in MAPPING:
            if char == "\\":
                continue  # a lone backslash stays; see test_backslash
            self.assertEqual(escape(f"a{char}b"), f"a{escaped}b")

    def test_backslash(self) -> None:
        """A backslash is escaped only where it starts an escape sequence (§4.1 rule 7)."""
        self.assertEqual(escape("a\\b"), "a\\b")
        self.assertEqual(escape("a\\5cb"), "a\\5c5cb")

    def test_unescapeEachSequence(self) -> None:
        """Each \\hex sequence unescapes to its character (§3.2 table)."""
        for char, escaped in MAPPING:
            self.assertEqual(unescape(f"a{escaped}b"), f"a{char}b")

    def test_spaceNotFirstOrLast(self) -> None:
        """\\20 may be neither first nor last in an escaped localpart, so such input is refused (§3.1 note)."""
        self.assertRaises(ValueError, escape, " cadet")
        self.assertRaises(ValueError, escape, "cadet ")

    def test_escapingExample(self) -> None:
        """§3.1: "d'artagnan@musketeers.lit" is sent as "d\\27artagnan@musketeers.lit"."""
        self.assertEqual(escapeAddress("d'artagnan@musketeers.lit"), "d\\27artagnan@musketeers.lit")

    def test_unescapingExample(self) -> None:
        """§3.2: "tréville\\40musketeers.lit@smtp.gascon.fr" is shown as "tréville@musketeers.lit@smtp.gascon.fr"."""
        self.assertEqual(
            unescapeAddress("tr\u00e9ville\\40musketeers.lit@smtp.gascon.fr"),
            "tr\u00e9ville@musketeers.lit@smtp.gascon.fr",
        )


class ExceptionTests(unittest.TestCase):
    """§4.3: partial and unknown sequences are left alone both ways."""

    def test_partialSequence(self) -> None:
        """"\\2plus\\2is\\4" is not modified by escaping or unescaping."""
        self.assertEqual(escape("\\2plus\\2is\\4"), "\\2plus\\2is\\4")
        self.assertEqual(unescape("\\2plus\\2is\\4"), "\\2plus\\2is\\4")

    def test_invalidSequence1(self) -> None:
        """"foo\\bar" is not modified (to "fooºr")."""
        self.assertEqual(escape("foo\\bar"), "foo\\bar")
        self.assertEqual(unescape("foo\\bar"), "foo\\bar")

    def test_invalidSequence2(self) -> None:
        """"foob\\41r" is not modified (to "foobAr")."""
        self.assertEqual(escape("foob\\41r"), "foob\\41r")
        self.assertEqual(unescape("foob\\41r"), "foob\\41r")

    def test_escapedBackslashSequence(self) -> None:
        """"c:\\5commas@example.com" escapes to "c\\3a\\5c5commas@example.com" and back."""
        self.assertEqual(escapeAddress("c:\\5commas@example.com"), "c\\3a\\5c5commas@example.com")
        self.assertEqual(unescapeAddress("c\\3a\\5c5commas@example.com"), "c:\\5commas@example.com")


class ExampleTests(unittest.TestCase):
    """§5: native JIDs, email, SIP, IM/PRES, IMPS, LDAP and IRC addresses."""

    def test_jidExamples(self) -> None:
        """All twelve rows of the §5.1 table: input -> escaped JID -> the same input on display."""
        for typed, escaped in JID_EXAMPLES:
            self.assertEqual(escapeAddress(typed), escaped, typed)
            self.assertEqual(unescapeAddress(escaped), typed, escaped)

    def test_escapedExamplesAreValidJIDs(self) -> None:
        """Every escaped example is a valid JID on the wire (that is the point of escaping)."""
        for _, escaped in JID_EXAMPLES:
            self.assertEqual(J.parse(escaped).full(), escaped)
        self.assertEqual(J.parse(WILD_JID).full(), WILD_JID)

    def test_email(self) -> None:
        """§5.2: the wild email address escapes to its JID and displays as the mailbox."""
        self.assertEqual(escapeAddress(WILD_MAILBOX), WILD_JID)
        self.assertEqual(unescapeAddress(WILD_JID), WILD_MAILBOX)

    def test_mailtoURI(self) -> None:
        """§5.2: a mailto: URI is decoded and its headers dropped before escaping."""
        uri = "mailto:here%27s_a_wild_%26_%2Fcr%zy%2F_address@example.com?subject=that%20is%20crazy%21"
        self.assertEqual(jidFromURI(uri), WILD_JID)

    def test_sipURI(self) -> None:
        """§5.3: a sip: URI becomes the same JID."""
        self.assertEqual(jidFromURI("sip:here%27s_a_wild_%26_%2Fcr%zy%2F_address@example.com"), WILD_JID)

    def test_imAndPresURIs(self) -> None:
        """§5.4: im: and pres: URIs become the same JID."""
        self.assertEqual(jidFromURI("im:here%27s_a_wild_%26_%2Fcr%zy%2F_address@example.com"), WILD_JID)
        self.assertEqual(jidFromURI("pres:here%27s_a_wild_%26_%2Fcr%zy%2F_address@example.com"), WILD_JID)

    def test_impsURI(self) -> None:
        """§5.5: the wv: URI with quotes and angle brackets escapes as the spec shows, and displays decoded."""
        uri = "wv:here%27s_a_wild_%26_%2Fcr%zy%2F_address_for%3A%3Cwv%3E%28%22IMPS%22%29@example.com"
        escaped = "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address_for\\3a\\3cwv\\3e(\\22IMPS\\22)@example.com"
        self.assertEqual(jidFromURI(uri), escaped)
        self.assertEqual(unescapeAddress(escaped), "here's_a_wild_&_/cr%zy/_address_for:<wv>(\"IMPS\")@example.com")

    def test_impsBackslashes(self) -> None:
        """§5.5: <wv:\\3and\\2is\\5cool@example.com> becomes \\5c3and\\2is\\5c5cool@example.com, shown as typed."""
        self.assertEqual(jidFromURI("wv:\\3and\\2is\\5cool@example.com"), "\\5c3and\\2is\\5c5cool@example.com")
        self.assertEqual(unescapeAddress("\\5c3and\\2is\\5c5cool@example.com"), "\\3and\\2is\\5cool@example.com")

    def test_ldapDistinguishedName(self) -> None:
        """§5.6: the LDAP DN (with its \\E9 left alone) escapes as the spec shows, and back."""
        dn = "CN=D'Artagnan Saint-Andr\\E9,O=Example & Company, Inc.,DC=example,DC=com@st.example.com"
        escaped = "CN=D\\27Artagnan\\20Saint-Andr\\E9,O=Example\\20\\26\\20Company,\\20Inc.,DC=example,DC=com@st.example.com"
        self.assertEqual(escapeAddress(dn), escaped)
        self.assertEqual(unescapeAddress(escaped), dn)

    def test_irc(self) -> None:
        """§5.7: the IRC address with every disallowed character escapes as the spec shows, and back."""
        irc = "somenick!user\"&'/:<>\\3address@example.com"
        escaped = "somenick!user\\22\\26\\27\\2f\\3a\\3c\\3e\\5c3address@example.com"
        self.assertEqual(escapeAddress(irc), escaped)
        self.assertEqual(unescapeAddress(escaped), irc)
