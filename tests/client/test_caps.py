"""
XEP-0115 entity capabilities: the verification string against the
specification's simple (§5.2) and complex (§5.3) examples, the §5.4
ill-formed cases, the bounded cache, and our own advertised value.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.trial import unittest
from twisted.words.xish import domish
from tx_xmpp.disco import DiscoInfo
from tx_xmpp.generic import parseXml

from jabberd.client import Client, ClientOptions
from jabberd.client.caps import CapsCache, IllFormedInfo, verificationString

SIMPLE = """
<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>
"""

# §5.3 verbatim (the query of the example's iq).
COMPLEX = """
<query xmlns='http://jabber.org/protocol/disco#info'
       node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'>
      <value>urn:xmpp:dataforms:softwareinfo</value>
    </field>
    <field var='ip_version' type='text-multi' >
      <value>ipv4</value>
      <value>ipv6</value>
    </field>
    <field var='os'>
      <value>Mac</value>
    </field>
    <field var='os_version'>
      <value>10.5.1</value>
    </field>
    <field var='software'>
      <value>Psi</value>
    </field>
    <field var='software_version'>
      <value>0.11</value>
    </field>
  </x>
</query>
"""


def query(xml: str) -> domish.Element:
    return parseXml(xml.encode("utf-8"))


class VerificationStringTests(unittest.TestCase):
    """The §5.1 generation method."""

    def test_simpleExample(self) -> None:
        """§5.2: Exodus 0.9.1 hashes to QgayPKawpkPSDYmwT/WM94uAlu0=."""
        self.assertEqual(verificationString(query(SIMPLE)), "QgayPKawpkPSDYmwT/WM94uAlu0=")

    def test_complexExample(self) -> None:
        """§5.3: Psi 0.11 with two languages and a software-info form hashes to q07IKJEyjvHSyhy//CH0CxmKi8w=."""
        self.assertEqual(verificationString(query(COMPLEX)), "q07IKJEyjvHSyhy//CH0CxmKi8w=")

    def test_orderDoesNotMatter(self) -> None:
        """The children in reverse order give the same string: everything is sorted."""
        original = query(COMPLEX)
        reordered = domish.Element((original.uri, "query"))
        for child in reversed(list(original.elements())):
            reordered.addChild(child)
        self.assertEqual(verificationString(reordered), "q07IKJEyjvHSyhy//CH0CxmKi8w=")

    def test_otherHash(self) -> None:
        """With hash='sha-256' the same S is hashed with SHA-256."""
        s = (
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<"
            "http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
        )
        expected = base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
        self.assertEqual(verificationString(query(SIMPLE), "sha-256"), expected)

    def test_unknownHash(self) -> None:
        """A hash we do not know is refused rather than guessed."""
        self.assertRaises(ValueError, verificationString, query(SIMPLE), "md4")

    def test_duplicateIdentity(self) -> None:
        """§5.4 3.3: two identical identities make the response ill-formed."""
        bad = SIMPLE.replace("<feature", "<identity category='client' name='Exodus 0.9.1' type='pc'/><feature", 1)
        self.assertRaises(IllFormedInfo, verificationString, query(bad))

    def test_duplicateFeature(self) -> None:
        """§5.4 3.4: a feature listed twice makes the response ill-formed."""
        bad = SIMPLE.replace("</query>", "<feature var='http://jabber.org/protocol/muc'/></query>")
        self.assertRaises(IllFormedInfo, verificationString, query(bad))

    def test_duplicateFormType(self) -> None:
        """§5.4 3.5: two forms with one FORM_TYPE make the response ill-formed."""
        form = COMPLEX[COMPLEX.index("<x ") : COMPLEX.index("</x>") + 4]
        bad = COMPLEX.replace("</query>", form + "</query>")
        self.assertRaises(IllFormedInfo, verificationString, query(bad))

    def test_formWithoutHiddenFormTypeIgnored(self) -> None:
        """§5.4 3.6: a form whose FORM_TYPE is not hidden is left out of the hash."""
        extra = "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value></field></x>"
        self.assertEqual(verificationString(query(SIMPLE.replace("</query>", extra + "</query>"))), "QgayPKawpkPSDYmwT/WM94uAlu0=")


class CacheTests(unittest.TestCase):
    """The verified-caps cache stays bounded."""

    def test_leastRecentlyUsedDropped(self) -> None:
        """With room for two, reading A then adding C drops B, not A."""
        cache = CapsCache(maxEntries=2)
        a, b, c = DiscoInfo(), DiscoInfo(), DiscoInfo()
        cache.put("sha-1", "A", a)
        cache.put("sha-1", "B", b)
        self.assertIs(cache.get("sha-1", "A"), a)
        cache.put("sha-1", "C", c)
        self.assertEqual((len(cache), cache.get("sha-1", "B"), cache.get("sha-1", "A"), cache.get("sha-1", "C")), (2, None, a, c))


class OwnCapsTests(unittest.TestCase):
    """What our client advertises."""

    def test_ownVerificationString(self) -> None:
        """Our <c/> carries the SHA-1 of exactly our identity and features, sorted."""
        client = Client("alice@example.com", "x", ClientOptions(name="jabberd-client"))
        s = (
            "client/pc//jabberd-client<"
            "http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<"
            "http://jabber.org/protocol/disco#items<urn:xmpp:ping<"
        )
        expected = base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()
        c = client.caps.element()
        self.assertEqual(
            c.toXml(),
            f"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://pypi.org/project/jabberd/#client' ver='{expected}'/>",
        )

    def test_botIdentity(self) -> None:
        """A client configured as a bot says client/bot, and its hash changes with it."""
        pc = Client("alice@example.com", "x").caps.ver
        bot = Client("alice@example.com", "x", ClientOptions(identityType="bot"))
        self.assertEqual([(i.category, i.type) for i in bot.disco.ownInfo() if hasattr(i, "category")], [("client", "bot")])
        self.assertNotEqual(bot.caps.ver, pc)
