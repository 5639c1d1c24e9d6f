"""
Entity capabilities (XEP-0115) on the server: verification strings read
from presence, looked up once (memory, store, then one disco#info query),
verified before they are trusted and cached, the +notify interests they
give a session, and the server's own caps in the stream features.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.modules.caps import CAPS_CHANGED, CAPS_NODE, NS_CAPS, IllFormedInfo, capsOf, interestsOf, verificationString
from jabberd.store.caps import get_caps_txn, set_caps_txn
from jabberd.store.roster import RosterItem
from tests.fakes import element
from tests.harness import TranscriptMixin, xml
from tests.modules.test_pep import (
    ALICE,
    BOB,
    CAROL,
    CLIENT_NODE,
    NS_DISCO_INFO,
    SONG,
    TUNE,
    PepTestMixin,
    capsElement,
    capsVer,
    discoQuery,
    itemEvent,
    publish,
)
from tests.modules.test_roster import REMOTE

FEATURES = ("http://jabber.org/protocol/caps", f"{TUNE}+notify", "urn:xmpp:ping")
NODE = f"{CLIENT_NODE}#{capsVer(FEATURES)}"


def disco(to: str, id_: str, node: str = NODE) -> str:
    """The server's disco#info query for a verification string."""
    return f"<iq type='get' id='{id_}' from='localhost' to='{to}'><query xmlns='{NS_DISCO_INFO}' node='{node}'/></iq>"


class HashTests(unittest.TestCase):
    """The §5 verification string, pure functions."""

    def test_xep0115Example(self):
        """The simple example of XEP-0115 §5.2 hashes to QgayPKawpkPSDYmwT/WM94uAlu0=."""
        query = element(
            f"<query xmlns='{NS_DISCO_INFO}'><identity category='client' type='pc' name='Exodus 0.9.1'/>"
            "<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>"
            "<feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/></query>"
        )
        self.assertEqual(verificationString(query, "sha-1"), "QgayPKawpkPSDYmwT/WM94uAlu0=")

    def test_complexExample(self):
        """The complex example of §5.3 (two identities with xml:lang, an extended form) hashes to q07IKJEyjvHSyhy//CH0CxmKi8w=."""
        query = element(
            f"<query xmlns='{NS_DISCO_INFO}' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>"
            "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
            "<identity xml:lang='el' category='client' name='&#936; 0.11' type='pc'/>"
            "<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>"
            "<feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>"
            "<x xmlns='jabber:x:data' type='result'>"
            "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>"
            "<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
            "<field var='os'><value>Mac</value></field><field var='os_version'><value>10.5.1</value></field>"
            "<field var='software'><value>Psi</value></field><field var='software_version'><value>0.11</value></field>"
            "</x></query>"
        )
        self.assertEqual(verificationString(query, "sha-1"), "q07IKJEyjvHSyhy//CH0CxmKi8w=")

    def test_duplicatesAreIllFormed(self):
        """A duplicate feature or identity makes the answer ill-formed (§5.4 3.3-3.4)."""
        for body in ("<feature var='a'/><feature var='a'/>", "<identity category='client' type='pc'/><identity category='client' type='pc'/>"):
            self.assertRaises(IllFormedInfo, verificationString, element(f"<query xmlns='{NS_DISCO_INFO}'>{body}</query>"), "sha-1")

    def test_capsOf(self):
        """capsOf reads hash, ver and node; the legacy format without 'hash' is not used."""
        self.assertEqual(tuple(capsOf(element(f"<presence>{capsElement('abc=')}</presence>"))), ("sha-1", "abc=", CLIENT_NODE))
        self.assertIsNone(capsOf(element(f"<presence><c xmlns='{NS_CAPS}' node='n' ver='1.0' ext='a b'/></presence>")))
        self.assertIsNone(capsOf(element("<presence/>")))

    def test_interests(self):
        """Interests are the nodes of the +notify features."""
        self.assertEqual(interestsOf(frozenset(["urn:a+notify", "urn:b", "+notify"])), frozenset(["urn:a"]))
        self.assertEqual(interestsOf(None), frozenset())


class CapsTests(PepTestMixin, unittest.TestCase):
    """Looking verification strings up for sessions."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB, CAROL)
        self.changed: list = []
        self.server.bus.on(CAPS_CHANGED, lambda session, previous: self.changed.append((session.resource, previous, self.caps.interests(session))))

    def stored(self, ver: str) -> defer.Deferred:
        return self.server.store.runInteraction("get", get_caps_txn, "sha-1", ver)

    @defer.inlineCallbacks
    def present(self, full: str, caps: str):
        session = self.bind(full)
        yield self.send(session, f"<presence>{caps}</presence>")
        return session

    def asked(self, session) -> list[domish.Element]:
        return [e for e in session.link.pop() if e.name == "iq"]

    def answer(self, session, query: domish.Element, features=FEATURES, node: str = NODE, frm: str | None = None) -> defer.Deferred:
        body = discoQuery(features, node).toXml()
        extra = f" from='{frm}'" if frm else ""
        if frm:
            self.server.router.route(element(f"<iq type='result' id='{query['id']}' to='localhost'{extra}>{body}</iq>"))
            return self.settle()
        return self.send(session, f"<iq type='result' id='{query['id']}' to='localhost'>{body}</iq>")

    @defer.inlineCallbacks
    def test_askedOnceThenTrusted(self):
        """An unknown ver is asked of the client once (from the server, node#ver); a matching answer gives the session its interests and is stored."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        query = self.asked(alice)
        self.assertStanzas(query, disco(f"{ALICE}/a", "*"))
        bob = yield self.present(f"{BOB}/b", capsElement(ver))
        self.assertEqual(self.asked(bob), [])  # already being asked: waits
        yield self.answer(alice, query[0])
        self.assertEqual((self.caps.interests(alice), self.caps.interests(bob)), (frozenset([TUNE]), frozenset([TUNE])))
        self.assertEqual(self.caps.sessionFeatures(alice), frozenset(FEATURES))
        self.assertEqual(sorted(self.changed), [("a", frozenset(), frozenset([TUNE])), ("b", frozenset(), frozenset([TUNE]))])
        self.assertIn(f"{TUNE}+notify", (yield self.stored(ver)))

    @defer.inlineCallbacks
    def test_knownVerIsNotAskedAgain(self):
        """Once verified, the same ver costs nothing: no query, interests at once."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        yield self.answer(alice, self.asked(alice)[0])
        calls = []
        original = self.server.store.runInteraction
        self.server.store.runInteraction = lambda desc, *a, **k: calls.append(desc) or original(desc, *a, **k)
        self.addCleanup(setattr, self.server.store, "runInteraction", original)
        carol = self.bind(f"{CAROL}/c")
        carol.receive(f"<presence>{capsElement(ver)}</presence>")
        self.assertEqual(self.caps.interests(carol), frozenset([TUNE]))
        yield self.settle()
        self.assertEqual((self.asked(carol), [c for c in calls if "caps" in c]), ([], []))

    @defer.inlineCallbacks
    def test_storedVerAfterRestart(self):
        """A ver verified before a restart is read from the store, not asked again."""
        ver = capsVer(FEATURES)
        yield self.server.store.runInteraction("seed", set_caps_txn, "sha-1", ver, discoQuery(FEATURES).toXml(), datetime.now(timezone.utc))
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        self.assertEqual(self.asked(alice), [])
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))

    @defer.inlineCallbacks
    def test_wrongHashNotTrusted(self):
        """An answer that does not hash to the advertised ver is not trusted: no interests, nothing cached or stored."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        yield self.answer(alice, self.asked(alice)[0], features=FEATURES + ("urn:extra",))
        self.assertEqual(self.caps.interests(alice), frozenset())
        self.assertIsNone(self.caps.known(capsOf(element(f"<presence>{capsElement(ver)}</presence>"))))
        self.assertIsNone((yield self.stored(ver)))
        self.assertEqual(self.changed, [])

    @defer.inlineCallbacks
    def test_liarDoesNotSpoilItForOthers(self):
        """When the asked client lies, the next client waiting for the same ver is asked, and its true answer is trusted."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        bob = yield self.present(f"{BOB}/b", capsElement(ver))
        yield self.answer(alice, self.asked(alice)[0], features=("urn:lie",))
        query = self.asked(bob)
        self.assertStanzas(query, disco(f"{BOB}/b", "*"))
        yield self.answer(bob, query[0])
        self.assertEqual((self.caps.interests(alice), self.caps.interests(bob)), (frozenset(), frozenset([TUNE])))

    @defer.inlineCallbacks
    def test_illFormedNotTrusted(self):
        """An answer with a duplicate feature is not trusted, even if it hashes right (§5.4)."""
        features = ("urn:a", "urn:a", f"{TUNE}+notify")
        ver = verificationString(discoQuery(("urn:a", f"{TUNE}+notify")), "sha-1")
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        yield self.answer(alice, self.asked(alice)[0], features=features, node=f"{CLIENT_NODE}#{ver}")
        self.assertEqual(self.caps.interests(alice), frozenset())

    @defer.inlineCallbacks
    def test_errorAnswer(self):
        """An error answer is not trusted."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        query = self.asked(alice)[0]
        yield self.send(alice, f"<iq type='error' id='{query['id']}' to='localhost'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self.assertEqual(self.caps.interests(alice), frozenset())
        self.assertEqual(self.caps._lookups, {})

    @defer.inlineCallbacks
    def test_answerWithoutTo(self):
        """A client that leaves 'to' out of its answer (it then goes to its own account) is heard too."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        query = self.asked(alice)[0]
        yield self.send(alice, f"<iq type='result' id='{query['id']}'>{discoQuery(FEATURES, NODE).toXml()}</iq>")
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))

    @defer.inlineCallbacks
    def test_answerFromSomeoneElseIgnored(self):
        """An answer with the right id but from another entity is ignored."""
        ver = capsVer(FEATURES)
        alice = yield self.present(f"{ALICE}/a", capsElement(ver))
        query = self.asked(alice)[0]
        yield self.answer(alice, query, frm=f"{BOB}/b")
        self.assertEqual(self.caps.interests(alice), frozenset())
        self.assertEqual(len(self.caps._lookups), 1)
        yield self.answer(alice, query)
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))

    @defer.inlineCallbacks
    def test_noAnswer(self):
        """A client that never answers is given up on after the timeout."""
        self.caps.queryTimeout = 0.05
        alice = yield self.present(f"{ALICE}/a", capsElement(capsVer(FEATURES)))
        self.assertEqual(len(self.asked(alice)), 1)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((self.caps._lookups, self.caps.interests(alice)), ({}, frozenset()))

    @defer.inlineCallbacks
    def test_unverifiableHashes(self):
        """A hash the server cannot compute, and the legacy format, are never asked about nor trusted."""
        alice = yield self.present(f"{ALICE}/a", capsElement("abc=", hash_="md5"))
        bob = yield self.present(f"{BOB}/b", f"<c xmlns='{NS_CAPS}' node='{CLIENT_NODE}' ver='1.0'/>")
        self.assertEqual((self.asked(alice), self.asked(bob)), ([], []))
        self.assertEqual((self.caps.interests(alice), self.caps.interests(bob)), (frozenset(), frozenset()))

    @defer.inlineCallbacks
    def test_otherHashes(self):
        """sha-256 verification strings are verified like sha-1."""
        query = discoQuery(FEATURES)
        ver = verificationString(query, "sha-256")
        alice = yield self.present(f"{ALICE}/a", capsElement(ver, hash_="sha-256"))
        yield self.answer(alice, self.asked(alice)[0], node=f"{CLIENT_NODE}#{ver}")
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))

    @defer.inlineCallbacks
    def test_updateKeepsInterestsUntilVerified(self):
        """New caps: the old interests hold until the new ones are verified, and are lost if they are not."""
        old = yield self.knownCaps(TUNE)
        alice = yield self.present(f"{ALICE}/a", old)
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))
        features = ("urn:other+notify",)
        ver = capsVer(features)
        yield self.send(alice, f"<presence><show>away</show>{capsElement(ver)}</presence>")
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))
        yield self.answer(alice, self.asked(alice)[0], features=("urn:wrong",), node=f"{CLIENT_NODE}#{ver}")
        self.assertEqual(self.caps.interests(alice), frozenset())

    @defer.inlineCallbacks
    def test_presenceWithoutCapsKeepsThem(self):
        """A presence update without <c/> leaves what was known."""
        caps = yield self.knownCaps(TUNE)
        alice = yield self.present(f"{ALICE}/a", caps)
        yield self.send(alice, "<presence><show>away</show></presence>")
        self.assertEqual(self.caps.interests(alice), frozenset([TUNE]))

    @defer.inlineCallbacks
    def test_remoteEntityAskedFromTheAccount(self):
        """A remote contact's unknown ver is asked from the account it sent presence to, and once verified its interests count."""
        yield self.seed(ALICE, [RosterItem(f"zoe@{REMOTE}", None, "both")])
        alice = yield self.login(f"{ALICE}/a")
        yield self.send(alice, publish(TUNE))
        ver = capsVer(FEATURES)
        self.captured[:] = []
        self.route(f"<presence from='zoe@{REMOTE}/phone' to='{ALICE}'>{capsElement(ver)}</presence>")
        yield self.settle()
        got = [element(e.toXml()) for e in self.captured]
        self.captured[:] = []
        self.assertStanzas(got, f"<iq type='get' id='*' from='{ALICE}' to='zoe@{REMOTE}/phone'><query xmlns='{NS_DISCO_INFO}' node='{NODE}'/></iq>")
        self.route(f"<iq type='result' id='{got[0]['id']}' from='zoe@{REMOTE}/phone' to='{ALICE}'>{discoQuery(FEATURES, NODE).toXml()}</iq>")
        yield self.settle()
        self.assertRouted(itemEvent(f"zoe@{REMOTE}/phone", TUNE, payload=SONG, delay="*"))


class ServerCapsTests(TranscriptMixin, unittest.TestCase):
    """The server's own caps (§6.3), over a real stream."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_streamFeatureMatchesDisco(self):
        """The <c/> in the stream features after authentication hashes the domain's disco#info, which node#ver answers too."""
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        features = yield self.authPlain(client, "alice", "secret")
        c = next(features.elements(NS_CAPS, "c"))
        self.assertEqual((c["hash"], c["node"]), ("sha-1", CAPS_NODE))
        yield self.bindResource(client, "r")
        client.send(f"<iq type='get' id='i1' to='localhost'><query xmlns='{NS_DISCO_INFO}'/></iq>")
        plain = yield client.next()
        self.assertEqual(verificationString(plain.query, "sha-1"), c["ver"])
        self.assertIn(NS_CAPS, [f["var"] for f in plain.query.elements(NS_DISCO_INFO, "feature")])
        client.send(f"<iq type='get' id='i2' to='localhost'><query xmlns='{NS_DISCO_INFO}' node='{CAPS_NODE}#{c['ver']}'/></iq>")
        noded = yield client.next()
        self.assertEqual(noded.query["node"], f"{CAPS_NODE}#{c['ver']}")
        self.assertEqual([xml(e) for e in noded.query.elements()], [xml(e) for e in plain.query.elements()])
        client.send(f"<iq type='get' id='i3' to='localhost'><query xmlns='{NS_DISCO_INFO}' node='{CAPS_NODE}#wrong'/></iq>")
        wrong = yield client.next()
        self.assertEqual((wrong["type"], wrong.error.firstChildElement().name), ("error", "item-not-found"))
