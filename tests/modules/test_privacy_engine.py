"""
The privacy rule engine (L{jabberd.privacy}): compiled lists decide like
XEP-0016 §2.1-§2.2 says a list is walked, for every item type, action and
stanza kind, and the XEP-0191 blocklist is the right view of a list.

The compiled index is also checked against a plain walk over the items,
the definition in the spec, on many generated lists and JIDs.
"""

from __future__ import annotations

import random

from twisted.trial import unittest

from jabberd import jid as J
from jabberd.privacy import (
    ALL,
    IQ,
    K_IQ,
    K_MESSAGE,
    K_OTHER,
    K_PRESENCE_IN,
    K_PRESENCE_OUT,
    MESSAGE,
    PRESENCE_IN,
    PRESENCE_OUT,
    CompiledList,
    PrivacyItem,
    blockedJIDs,
    inboundKind,
    outboundKind,
    withBlocked,
    withoutBlocked,
)
from jabberd.store.roster import RosterItem
from tests.fakes import element

ALL_KINDS = (K_MESSAGE, K_IQ, K_PRESENCE_IN, K_PRESENCE_OUT, K_OTHER)


def deny(order: int, type_: str | None = None, value: str | None = None, kinds: int = ALL) -> PrivacyItem:
    return PrivacyItem(order, False, type_, value, kinds)


def allow(order: int, type_: str | None = None, value: str | None = None, kinds: int = ALL) -> PrivacyItem:
    return PrivacyItem(order, True, type_, value, kinds)


def j(text: str) -> J.JID:
    return J.parse(text)


def walk(items, kind, jid, roster):
    """XEP-0016 as written: the first item in 'order' that applies to the kind and matches the JID decides."""
    for item in sorted(items, key=lambda i: i.order):
        if not item.appliesTo(kind):
            continue
        if item.type is None:
            return item
        if item.type == "jid":
            # Every part the value names must be the stanza's (§2.1's four forms).
            v = J.parse(item.value)
            if v.host == jid.host and v.user in (None, jid.user) and v.resource in (None, jid.resource):
                return item
        else:
            r = (roster or {}).get(jid.userhost())
            if item.type == "subscription" and (r.subscription if r else "none") == item.value:
                return item
            if item.type == "group" and r is not None and item.value in r.groups:
                return item
    return None


class JIDMatchingTests(unittest.TestCase):
    """XEP-0016 §2.1: the four forms a 'jid' item's value may take."""

    def test_fullJIDMatchesOnlyThatResource(self):
        """An item user@domain/resource matches only that full JID."""
        lst = CompiledList("l", [deny(1, "jid", "tybalt@example.com/pda")])
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com/pda")))
        self.assertTrue(lst.allows(K_MESSAGE, j("tybalt@example.com/phone")))
        self.assertTrue(lst.allows(K_MESSAGE, j("tybalt@example.com")))
        self.assertTrue(lst.allows(K_MESSAGE, j("example.com/pda")))

    def test_bareJIDMatchesAnyResource(self):
        """An item user@domain matches the bare JID and every resource of it, nobody else."""
        lst = CompiledList("l", [deny(1, "jid", "tybalt@example.com")])
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com")))
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com/pda")))
        self.assertTrue(lst.allows(K_MESSAGE, j("benvolio@example.com")))
        self.assertTrue(lst.allows(K_MESSAGE, j("example.com")))

    def test_domainResourceMatchesOnlyThatResource(self):
        """An item domain/resource matches that JID and no user@domain/resource (the forms are exact)."""
        lst = CompiledList("l", [deny(1, "jid", "example.com/pda")])
        self.assertFalse(lst.allows(K_MESSAGE, j("example.com/pda")))
        self.assertTrue(lst.allows(K_MESSAGE, j("example.com")))
        self.assertTrue(lst.allows(K_MESSAGE, j("example.com/other")))
        # user@domain/resource matches the domain/resource form (§2.1 item 3).
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com/pda")))
        self.assertTrue(lst.allows(K_MESSAGE, j("tybalt@example.com/phone")))

    def test_domainMatchesEverythingAtIt(self):
        """An item domain matches the domain, every user@domain and every domain/resource, not subdomains."""
        lst = CompiledList("l", [deny(1, "jid", "example.com")])
        for blocked in ("example.com", "a@example.com", "a@example.com/r", "example.com/r"):
            self.assertFalse(lst.allows(K_MESSAGE, j(blocked)), blocked)
        self.assertTrue(lst.allows(K_MESSAGE, j("a@muc.example.com")))
        self.assertTrue(lst.allows(K_MESSAGE, j("a@example.org")))

    def test_valuesArePrepared(self):
        """Item values and stanza JIDs meet in their prepared form (case folding of localpart and domain)."""
        lst = CompiledList("l", [deny(1, "jid", J.parse("Tybalt@Example.COM").full())])
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com/x")))


class RosterItemTests(unittest.TestCase):
    """Group and subscription items read the user's roster."""

    roster = {
        "juliet@example.com": RosterItem("juliet@example.com", None, "both", groups=("Friends",)),
        "nurse@example.com": RosterItem("nurse@example.com", None, "to", groups=("Friends", "Staff")),
        "paris@example.org": RosterItem("paris@example.org", None, "from", groups=("Enemies",)),
        "tybalt@example.com": RosterItem("tybalt@example.com", None, "none", ask=True, groups=("Enemies",)),
    }

    def test_group(self):
        """A group item matches every contact in that roster group, whatever the resource, and nobody else."""
        lst = CompiledList("l", [deny(1, "group", "Enemies")])
        self.assertFalse(lst.allows(K_MESSAGE, j("paris@example.org/x"), self.roster))
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com"), self.roster))
        self.assertTrue(lst.allows(K_MESSAGE, j("juliet@example.com"), self.roster))
        self.assertTrue(lst.allows(K_MESSAGE, j("stranger@example.net"), self.roster))

    def test_contactInSeveralGroups(self):
        """A contact in several groups matches an item for any of them."""
        lst = CompiledList("l", [deny(1, "group", "Staff")])
        self.assertFalse(lst.allows(K_MESSAGE, j("nurse@example.com"), self.roster))

    def test_subscriptionValuesAreExact(self):
        """'both', 'to', 'from' and 'none' each match only that subscription; 'none' also matches strangers."""
        expected = {
            "both": {"juliet@example.com"},
            "to": {"nurse@example.com"},
            "from": {"paris@example.org"},
            "none": {"tybalt@example.com", "stranger@example.net"},
        }
        for value, denied in expected.items():
            lst = CompiledList("l", [deny(1, "subscription", value)])
            for who in list(self.roster) + ["stranger@example.net"]:
                self.assertEqual(lst.allows(K_MESSAGE, j(who), self.roster), who not in denied, (value, who))

    def test_needsRoster(self):
        """Only lists with group or subscription items for a kind need the roster for it."""
        lst = CompiledList("l", [deny(1, "jid", "a@b"), deny(2, "group", "G", MESSAGE)])
        self.assertTrue(lst.needsRoster(K_MESSAGE))
        self.assertFalse(lst.needsRoster(K_IQ))
        self.assertFalse(CompiledList("l", [deny(1, "jid", "a@b")]).needsRoster(K_MESSAGE))

    def test_changedRosterIsSeen(self):
        """A check reads the roster it is given: a contact moved out of a denied group is allowed at once (rule 9)."""
        lst = CompiledList("l", [deny(1, "group", "Enemies")])
        roster = dict(self.roster)
        self.assertFalse(lst.allows(K_MESSAGE, j("paris@example.org"), roster))
        roster["paris@example.org"] = RosterItem("paris@example.org", None, "from", groups=("Friends",))
        self.assertTrue(lst.allows(K_MESSAGE, j("paris@example.org"), roster))


class OrderAndActionTests(unittest.TestCase):
    """XEP-0016 business rules 5-7: ascending order, first match wins, no match allows."""

    def test_noFallThroughAllows(self):
        """Without a fall-through item, what no item matches is allowed."""
        lst = CompiledList("l", [deny(1, "jid", "tybalt@example.com")])
        self.assertTrue(lst.allows(K_MESSAGE, j("juliet@example.com")))
        self.assertIsNone(lst.match(K_MESSAGE, j("juliet@example.com")))

    def test_fallThroughDecidesTheRest(self):
        """A fall-through item decides everything no earlier item matched."""
        lst = CompiledList("l", [allow(1, "jid", "juliet@example.com"), deny(2)])
        self.assertTrue(lst.allows(K_MESSAGE, j("juliet@example.com/balcony")))
        self.assertFalse(lst.allows(K_MESSAGE, j("tybalt@example.com")))
        self.assertFalse(lst.allows(K_OTHER, j("example.net")))

    def test_orderNotPositionDecides(self):
        """Items are processed by their 'order', not by where they appear."""
        items = [deny(20, "jid", "juliet@example.com"), allow(10, "jid", "example.com")]
        self.assertTrue(CompiledList("l", items).allows(K_MESSAGE, j("juliet@example.com")))
        items = [deny(5, "jid", "juliet@example.com"), allow(10, "jid", "example.com")]
        self.assertFalse(CompiledList("l", items).allows(K_MESSAGE, j("juliet@example.com")))

    def test_earlierItemOfAnotherTypeWins(self):
        """A subscription item before a JID item decides first, and the other way round."""
        roster = {"juliet@example.com": RosterItem("juliet@example.com", None, "both")}
        items = [allow(1, "subscription", "both"), deny(2, "jid", "juliet@example.com")]
        self.assertTrue(CompiledList("l", items).allows(K_MESSAGE, j("juliet@example.com"), roster))
        items = [deny(1, "jid", "juliet@example.com"), allow(2, "subscription", "both")]
        self.assertFalse(CompiledList("l", items).allows(K_MESSAGE, j("juliet@example.com"), roster))

    def test_matchReturnsTheDecidingItem(self):
        """match() names the item that decided, so callers can tell a blocklist item apart."""
        items = [allow(3, "jid", "a@example.com"), deny(7, "jid", "example.com"), allow(9)]
        lst = CompiledList("l", items)
        self.assertEqual(lst.match(K_MESSAGE, j("b@example.com")), items[1])
        self.assertEqual(lst.match(K_MESSAGE, j("a@example.com")), items[0])
        self.assertEqual(lst.match(K_MESSAGE, j("c@example.org")), items[2])


class StanzaKindTests(unittest.TestCase):
    """Which items take part in which checks: the child elements of an item."""

    def test_messageOnly(self):
        """An item with <message/> denies received messages only."""
        lst = CompiledList("l", [deny(1, "jid", "t@x", MESSAGE)])
        self.assertEqual([lst.allows(k, j("t@x")) for k in ALL_KINDS], [False, True, True, True, True])

    def test_iqOnly(self):
        """An item with <iq/> denies received iqs only."""
        lst = CompiledList("l", [deny(1, "jid", "t@x", IQ)])
        self.assertEqual([lst.allows(k, j("t@x")) for k in ALL_KINDS], [True, False, True, True, True])

    def test_presenceInOnly(self):
        """An item with <presence-in/> denies received presence notifications only (not subscriptions)."""
        lst = CompiledList("l", [deny(1, "jid", "t@x", PRESENCE_IN)])
        self.assertEqual([lst.allows(k, j("t@x")) for k in ALL_KINDS], [True, True, False, True, True])

    def test_presenceOutOnly(self):
        """An item with <presence-out/> denies sent presence notifications only."""
        lst = CompiledList("l", [deny(1, "jid", "t@x", PRESENCE_OUT)])
        self.assertEqual([lst.allows(k, j("t@x")) for k in ALL_KINDS], [True, True, True, False, True])

    def test_noChildrenDeniesEverything(self):
        """An item without children denies every kind, subscriptions and sent stanzas included (§2.13)."""
        lst = CompiledList("l", [deny(1, "jid", "t@x")])
        self.assertEqual([lst.allows(k, j("t@x")) for k in ALL_KINDS], [False] * 5)

    def test_allFourChildrenIsNotEverything(self):
        """Naming all four kinds leaves subscription stanzas and sent messages alone (only no children does that)."""
        lst = CompiledList("l", [deny(1, "jid", "t@x", MESSAGE | IQ | PRESENCE_IN | PRESENCE_OUT)])
        self.assertEqual([lst.allows(k, j("t@x")) for k in ALL_KINDS], [False, False, False, False, True])

    def test_kindSpecificFallThrough(self):
        """A fall-through item limited to one kind leaves the other kinds allowed."""
        lst = CompiledList("l", [allow(1, "jid", "friend@x"), deny(2, kinds=PRESENCE_IN)])
        self.assertFalse(lst.allows(K_PRESENCE_IN, j("other@y")))
        self.assertTrue(lst.allows(K_MESSAGE, j("other@y")))
        self.assertTrue(lst.allows(K_PRESENCE_IN, j("friend@x")))

    def test_stanzaKinds(self):
        """Stanzas map to kinds: notifications are presence without a type or unavailable; the rest is 'other'."""
        cases = {
            "<message/>": (K_MESSAGE, K_OTHER),
            "<message type='error'/>": (K_MESSAGE, K_OTHER),
            "<iq type='get'/>": (K_IQ, K_OTHER),
            "<iq type='result'/>": (K_IQ, K_OTHER),
            "<presence/>": (K_PRESENCE_IN, K_PRESENCE_OUT),
            "<presence type='unavailable'/>": (K_PRESENCE_IN, K_PRESENCE_OUT),
            "<presence type='subscribe'/>": (K_OTHER, K_OTHER),
            "<presence type='probe'/>": (K_OTHER, K_OTHER),
            "<presence type='error'/>": (K_OTHER, K_OTHER),
        }
        for xml, (inbound, outbound) in cases.items():
            stanza = element(xml)
            self.assertEqual((inboundKind(stanza), outboundKind(stanza)), (inbound, outbound), xml)


class CompiledEqualsWalkTests(unittest.TestCase):
    """The index decides exactly as the walk over the items the spec describes."""

    def test_randomLists(self):
        """On generated lists and JIDs the compiled decision equals the plain walk, for every kind."""
        rng = random.Random(16)
        users, hosts, resources = ["a", "b", None], ["x.example", "y.example"], ["r", "s", None]
        groups = ["G1", "G2"]

        def someJID():
            u, h, r = rng.choice(users), rng.choice(hosts), rng.choice(resources)
            return J.parse((f"{u}@" if u else "") + h + (f"/{r}" if r else ""))

        roster = {}
        for u in ("a", "b"):
            for h in hosts:
                if rng.random() < 0.7:
                    bare = f"{u}@{h}"
                    roster[bare] = RosterItem(bare, None, rng.choice(["none", "to", "from", "both"]), groups=tuple(g for g in groups if rng.random() < 0.5))
        for _ in range(300):
            items = []
            for order in rng.sample(range(100), rng.randint(0, 8)):
                type_ = rng.choice(["jid", "jid", "group", "subscription", None])
                value = {"jid": lambda: someJID().full(), "group": lambda: rng.choice(groups), "subscription": lambda: rng.choice(["none", "to", "from", "both"]), None: lambda: None}[type_]()
                kinds = rng.choice([ALL, ALL, MESSAGE, IQ, PRESENCE_IN, PRESENCE_OUT, MESSAGE | PRESENCE_OUT])
                items.append(PrivacyItem(order, rng.random() < 0.5, type_, value, kinds))
            lst = CompiledList("l", items)
            for _ in range(20):
                who = someJID()
                for kind in ALL_KINDS:
                    self.assertEqual(lst.match(kind, who, roster), walk(items, kind, who, roster), (items, who, kind))


class BlocklistViewTests(unittest.TestCase):
    """XEP-0191 §5: the blocklist as the default list's "jid, deny, everything" items."""

    def test_blockedJIDsAreJidDenyAllItems(self):
        """Only items of type jid, action deny and no children are blocked JIDs, in list order, each once."""
        items = [
            deny(4, "jid", "b@x"),
            deny(1, "jid", "a@x"),
            deny(2, "jid", "m@x", MESSAGE),
            allow(3, "jid", "c@x"),
            deny(5, "group", "G"),
            deny(6, "jid", "a@x"),
            deny(7),
        ]
        self.assertEqual(blockedJIDs(items), ["a@x", "b@x"])
        self.assertEqual(CompiledList("l", items).blockedJIDs(), ["a@x", "b@x"])

    def test_blockPutsNewItemsFirstKeepingOrders(self):
        """Blocking adds items before the others, in the room below the first order, and leaves the rest unchanged."""
        items = (allow(10, "jid", "friend@x"), deny(20))
        self.assertEqual(
            withBlocked(items, ["a@x", "b@x"]),
            (deny(8, "jid", "a@x"), deny(9, "jid", "b@x"), allow(10, "jid", "friend@x"), deny(20)),
        )

    def test_blockRenumbersWhenThereIsNoRoom(self):
        """Without room below the first item the whole list is renumbered from 0, in the same sequence."""
        items = (allow(0, "jid", "friend@x", MESSAGE), deny(7))
        self.assertEqual(
            withBlocked(items, ["a@x"]),
            (deny(0, "jid", "a@x"), allow(1, "jid", "friend@x", MESSAGE), deny(2)),
        )

    def test_blockIntoEmptyList(self):
        """Blocking into an empty list numbers the items from 1."""
        self.assertEqual(withBlocked((), ["a@x", "b@x"]), (deny(1, "jid", "a@x"), deny(2, "jid", "b@x")))

    def test_blockTwiceChangesNothing(self):
        """A JID already blocked is not added again; blocking it alone returns the list unchanged."""
        items = (deny(1, "jid", "a@x"),)
        self.assertEqual(withBlocked(items, ["a@x"]), items)
        self.assertEqual(withBlocked(items, ["a@x", "b@x"]), (deny(0, "jid", "b@x"), deny(1, "jid", "a@x")))

    def test_unblockRemovesOnlyBlocklistItems(self):
        """Unblocking removes the blocking items of those JIDs and keeps every other item, even for the same JID."""
        items = (deny(1, "jid", "a@x"), deny(2, "jid", "a@x", MESSAGE), deny(3, "jid", "b@x"), deny(4))
        self.assertEqual(withoutBlocked(items, ["a@x"]), (deny(2, "jid", "a@x", MESSAGE), deny(3, "jid", "b@x"), deny(4)))

    def test_unblockAll(self):
        """Unblocking everything removes every blocking item and nothing else."""
        items = (deny(1, "jid", "a@x"), deny(3, "jid", "b@x"), allow(4, "group", "G"))
        self.assertEqual(withoutBlocked(items, None), (allow(4, "group", "G"),))
