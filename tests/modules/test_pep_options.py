"""
Publish-options (XEP-0060 §7.1.5) as XEP-0223 and XEP-0222 use them:
options configure a node that publishing creates, and are preconditions
on a node that exists — met, or the publish fails with conflict and
<precondition-not-met/> and changes nothing.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.modules.test_pep import (
    ALICE,
    OTHER_SONG,
    SONG,
    TUNE,
    PepTestMixin,
    error,
    form,
    items,
    publish,
    pubsub,
    published,
    result,
)

PRIVATE = {
    "pubsub#persist_items": "true",
    "pubsub#access_model": "whitelist",
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
}


class PublishOptionsTests(PepTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, limits={"max_pep_items": 50})
        self.alice = yield self.login(f"{ALICE}/a")

    def unmet(self, text: str, id_: str = "p") -> str:
        return error(id_, "conflict", "cancel", "precondition-not-met", text)

    @defer.inlineCallbacks
    def config(self) -> dict:
        return (yield self.storedNodes(ALICE))[TUNE].config

    @defer.inlineCallbacks
    def test_createsWithOptions(self):
        """Options configure the node that publishing creates (XEP-0223 private storage)."""
        yield self.assertExchange(self.alice, publish(TUNE, options=PRIVATE), published("p", TUNE, "current"))
        config = yield self.config()
        self.assertEqual(
            (config["persist_items"], config["access_model"], config["max_items"], config["send_last_published_item"]),
            (True, "whitelist", -1, "never"),
        )

    @defer.inlineCallbacks
    def test_metPreconditions(self):
        """Options the existing node matches are met: the publish succeeds ("true" and "1", "max" and the limit are the same)."""
        yield self.send(self.alice, publish(TUNE, options=PRIVATE))
        self.alice.link.pop()
        same = dict(PRIVATE, **{"pubsub#persist_items": "1", "pubsub#max_items": "50"})
        yield self.assertExchange(self.alice, publish(TUNE, OTHER_SONG, item="2", options=same, id_="p2"), published("p2", TUNE, "2"))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["current", "2"])

    @defer.inlineCallbacks
    def test_unmetPreconditions(self):
        """Each option the node does not match fails the publish with conflict/<precondition-not-met/>, and nothing is published or changed."""
        yield self.send(self.alice, publish(TUNE, options={"pubsub#max_items": "5"}))
        self.alice.link.pop()
        cases = [
            ({"pubsub#access_model": "open"}, "the node does not have that pubsub#access_model"),
            ({"pubsub#persist_items": "false"}, "the node does not have that pubsub#persist_items"),
            ({"pubsub#max_items": "max"}, "the node does not have that pubsub#max_items"),
            ({"pubsub#max_items": "4"}, "the node does not have that pubsub#max_items"),
            ({"pubsub#send_last_published_item": "never"}, "the node does not have that pubsub#send_last_published_item"),
            ({"pubsub#access_model": "authorize"}, "the node does not have that pubsub#access_model"),
            ({"pubsub#unheard_of": "1"}, "the node does not have that pubsub#unheard_of"),
        ]
        for options, text in cases:
            yield self.assertExchange(self.alice, publish(TUNE, OTHER_SONG, item="x", options=options), self.unmet(text))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["current"])
        config = yield self.config()
        self.assertEqual((config["access_model"], config["max_items"]), ("presence", 5))

    @defer.inlineCallbacks
    def test_badOptionsOnANewNode(self):
        """Options that cannot configure a new node fail the publish with <precondition-not-met/> and create nothing."""
        yield self.assertExchange(
            self.alice,
            publish(TUNE, options={"pubsub#access_model": "authorize"}),
            self.unmet("pubsub#access_model must be one of open, presence, roster, whitelist"),
        )
        yield self.assertExchange(self.alice, publish(TUNE, options={"pubsub#max_items": "51"}), self.unmet('pubsub#max_items may be at most 50 (or "max")'))
        self.assertEqual((yield self.storedNodes(ALICE)), {})

    @defer.inlineCallbacks
    def test_wrongFormType(self):
        """A publish-options form of another FORM_TYPE is bad-request."""
        request = pubsub(f"<publish node='{TUNE}'><item>{SONG}</item></publish><publish-options>{form({'pubsub#access_model': 'open'})}</publish-options>")
        yield self.assertExchange(self.alice, request, error("p", "bad-request", "modify", text="FORM_TYPE must be http://jabber.org/protocol/pubsub#publish-options"))

    @defer.inlineCallbacks
    def test_reconfigureThenRepublish(self):
        """What clients do on <precondition-not-met/>: configure the node as wanted, publish again, and it succeeds."""
        yield self.send(self.alice, publish(TUNE))
        self.alice.link.pop()
        options = {"pubsub#access_model": "open"}
        yield self.assertExchange(self.alice, publish(TUNE, OTHER_SONG, options=options), self.unmet("the node does not have that pubsub#access_model"))
        yield self.assertExchange(self.alice, pubsub(f"<configure node='{TUNE}'>{form(options)}</configure>", "c", owner=True), result("c"))
        yield self.assertExchange(self.alice, publish(TUNE, OTHER_SONG, options=options), published("p", TUNE, "current"))
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}'/>", "g", "get"), items("g", TUNE, ("current", OTHER_SONG)))

    @defer.inlineCallbacks
    def test_rosterGroupsPrecondition(self):
        """pubsub#roster_groups_allowed compares as a set of groups."""
        options = {"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": ["Friends", "Family"]}
        yield self.send(self.alice, publish(TUNE, options=options))
        self.alice.link.pop()
        same = {"pubsub#roster_groups_allowed": ["Family", "Friends"]}
        yield self.assertExchange(self.alice, publish(TUNE, options=same, id_="p2"), published("p2", TUNE, "current"))
        other = {"pubsub#roster_groups_allowed": ["Friends"]}
        yield self.assertExchange(self.alice, publish(TUNE, options=other, id_="p3"), self.unmet("the node does not have that pubsub#roster_groups_allowed", "p3"))
