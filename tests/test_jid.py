"""JIDs (RFC 7622 with the stringprep profiles of RFC 6122): preparation, limits and the bounded cache."""

from __future__ import annotations

from twisted.trial import unittest

from jabberd import jid as J


class PrepTests(unittest.TestCase):
    """Each part gets its own profile."""

    def test_nodeprepFoldsCase(self):
        """nodeprep case-folds the localpart: JULIET is juliet."""
        self.assertEqual(J.parse("JULIET@example.com").user, "juliet")

    def test_nodeprepUnicode(self):
        """Non-ASCII localparts are case-folded and NFKC-normalised: Ǆ (U+01C4) becomes dž."""
        self.assertEqual(J.parse("\u01c4@example.com").user, "d\u017e")

    def test_nodeprepProhibited(self):
        """The characters nodeprep forbids (" & ' / : < > @ and space) make a JID invalid."""
        for char in "\"&'/:<> ":
            with self.assertRaises(J.InvalidJID, msg=repr(char)):
                J.prepNode(f"ju{char}liet")

    def test_nameprepDomain(self):
        """The domain is nameprep'd (lowercased) and a trailing dot removed."""
        j = J.parse("romeo@Example.COM.")
        self.assertEqual(j.host, "example.com")
        self.assertEqual(J.parse("\u00c9XAMPLE.com").host, "\u00e9xample.com")

    def test_finalDotOnce(self):
        """One final dot is stripped, ASCII or the ideographic and fullwidth forms nameprep maps to it; two are an empty label (found by bench/fuzz_atheris.py)."""
        for domain in ("example.com.", "example.com\u3002", "example.com\uff0e", "example.com\uff61"):
            self.assertEqual(J.parse(f"romeo@{domain}").host, "example.com", repr(domain))
        for domain in ("example.com..", "example.com\u3002.", "example.com.\u3002", "Ll.."):
            with self.assertRaises(J.InvalidJID, msg=repr(domain)):
                J.parse(domain)

    def test_domainNotAHostname(self):
        """Domain labels with characters a hostname cannot have are invalid."""
        for domain in ("exa mple.com", "ex_ample.com", "a@b@c", "-lead.com", "host..com"):
            with self.assertRaises(J.InvalidJID, msg=domain):
                J.parse(domain)

    def test_ipLiterals(self):
        """IPv4 addresses and IPv6 literals in brackets are domains; a bracketed non-address is not."""
        self.assertEqual(J.parse("a@127.0.0.1").host, "127.0.0.1")
        self.assertEqual(J.parse("a@[::1]").host, "[::1]")
        with self.assertRaises(J.InvalidJID):
            J.parse("a@[not-an-address]")

    def test_resourceprepKeepsCase(self):
        """resourceprep keeps case and spaces but maps compatibility characters (fullwidth, soft hyphen)."""
        self.assertEqual(J.parse("a@b/Home Phone").resource, "Home Phone")
        self.assertEqual(J.parse("a@b/\uff28\uff4f\uff4d\uff45\u00ad").resource, "Home")

    def test_resourceMayContainSlashAndAt(self):
        """Everything after the first slash is the resource, @ and / included."""
        j = J.parse("a@b/c@d/e")
        self.assertEqual((j.user, j.host, j.resource), ("a", "b", "c@d/e"))

    def test_resourceprepProhibited(self):
        """resourceprep forbids bidi marks such as U+200E."""
        with self.assertRaises(J.InvalidJID):
            J.parse("a@b/left\u200eright")

    def test_full(self):
        """A prepared JID prints as user@host/resource."""
        self.assertEqual(J.parse("Juliet@Capulet.lit/Balcony").full(), "juliet@capulet.lit/Balcony")


class EmptyPartTests(unittest.TestCase):
    """RFC 7622 §3.1: a part that is present must not be empty."""

    def test_emptyLocalpart(self):
        """'@host' is invalid."""
        self.assertRaises(J.InvalidJID, J.parse, "@example.com")

    def test_emptyDomain(self):
        """'user@' and '' are invalid."""
        self.assertRaises(J.InvalidJID, J.parse, "user@")
        self.assertRaises(J.InvalidJID, J.parse, "")

    def test_emptyResource(self):
        """'host/' is invalid."""
        self.assertRaises(J.InvalidJID, J.parse, "user@example.com/")

    def test_emptyAfterPreparation(self):
        """A resource that maps to nothing (a soft hyphen alone) is empty, hence invalid."""
        self.assertRaises(J.InvalidJID, J.parse, "user@example.com/\u00ad")


class LengthTests(unittest.TestCase):
    """RFC 7622 §3: each part is at most 1023 octets once prepared."""

    def test_localpartLimit(self):
        """A 1023-byte localpart is valid; 1024 bytes is not."""
        self.assertEqual(len(J.parse("u" * 1023 + "@example.com").user), 1023)
        self.assertRaises(J.InvalidJID, J.parse, "u" * 1024 + "@example.com")

    def test_limitCountsBytes(self):
        """The limit is in UTF-8 octets: 512 two-byte characters (1024 bytes) are too many."""
        self.assertEqual(J.prepNode("\u00e9" * 511), "\u00e9" * 511)
        self.assertRaises(J.InvalidJID, J.prepNode, "\u00e9" * 512)

    def test_domainLimit(self):
        """A domainpart over 1023 bytes is invalid."""
        self.assertRaises(J.InvalidJID, J.parse, "u@" + "a" * 1024)

    def test_resourceLimit(self):
        """A 1023-byte resource is valid; 1024 bytes is not."""
        self.assertEqual(len(J.parse("u@h/" + "r" * 1023).resource), 1023)
        self.assertRaises(J.InvalidJID, J.parse, "u@h/" + "r" * 1024)

    def test_hugeInputRejectedCheaply(self):
        """A megabyte of input is rejected before any stringprep runs."""
        self.assertRaises(J.InvalidJID, J.parse, "x" * 10**6)


class CacheTests(unittest.TestCase):
    """One bounded cache, never Twisted's unbounded internJID."""

    def test_sameObjectForSameText(self):
        """Parsing the same text twice returns the cached JID."""
        self.assertIs(J.parse("cache@example.com/r"), J.parse("cache@example.com/r"))

    def test_bounded(self):
        """Parsing more distinct JIDs than the cache holds never grows it past its bound."""
        J.parse.cache_clear()
        for i in range(J.CACHE_SIZE + 500):
            J.parse(f"user{i}@example.com")
        info = J.parse.cache_info()
        self.assertEqual(info.maxsize, J.CACHE_SIZE)
        self.assertEqual(info.currsize, J.CACHE_SIZE)

    def test_invalidNotCached(self):
        """Invalid input is not cached (an attacker's garbage takes no cache room)."""
        J.parse.cache_clear()
        for i in range(100):
            with self.assertRaises(J.InvalidJID):
                J.parse(f"bad user{i}@example.com")
        self.assertEqual(J.parse.cache_info().currsize, 0)

    def test_bare(self):
        """bare() drops the resource and goes through the cache."""
        self.assertIs(J.bare(J.parse("a@b/c")), J.parse("a@b"))
