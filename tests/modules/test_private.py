"""Private XML storage (XEP-0049) through real sessions: every rule and error of §2.3 and the quota."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.modules.test_disco import ServiceTestMixin, error

NS = "jabber:iq:private"
PREFS = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"
RESULT = "<iq type='result' id='{id}' from='alice@localhost' to='alice@localhost/a'>{body}</iq>"


def result(id_: str, body: str = "") -> str:
    return RESULT.format(id=id_, body=body)


def failure(id_: str, condition: str, type_: str, text: str | None = None, frm: str = "alice@localhost", to: str = "alice@localhost/a") -> str:
    return f"<iq type='error' id='{id_}' from='{frm}' to='{to}'>{error(condition, type_, text)}</iq>"


class PrivateTests(ServiceTestMixin, unittest.TestCase):
    """Storing and retrieving by namespace."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(["private"])
        self.alice = self.bind("alice@localhost/a")
        self.bob = self.bind("bob@localhost/b")

    def store(self, xml: str, id_: str = "s"):
        return self.assertReply(self.alice, f"<iq type='set' id='{id_}'><query xmlns='{NS}'>{xml}</query></iq>", result(id_))

    def retrieve(self, asked: str, stored: str, id_: str = "g"):
        return self.assertReply(
            self.alice, f"<iq type='get' id='{id_}'><query xmlns='{NS}'>{asked}</query></iq>", result(id_, f"<query xmlns='{NS}'>{stored}</query>")
        )

    @defer.inlineCallbacks
    def test_roundTrip(self):
        """Stored XML comes back exactly, asked for by an empty element of its namespace (§2.3)."""
        yield self.store(PREFS)
        yield self.retrieve("<exodus xmlns='exodus:prefs'/>", PREFS)

    @defer.inlineCallbacks
    def test_nothingStored(self):
        """Asking for a namespace with nothing stored returns the element as asked."""
        yield self.retrieve("<storage xmlns='storage:bookmarks'/>", "<storage xmlns='storage:bookmarks'/>")

    @defer.inlineCallbacks
    def test_toOwnBareJID(self):
        """Addressing one's own bare JID works like leaving 'to' out."""
        yield self.assertReply(
            self.alice, f"<iq type='set' id='s' to='alice@localhost'><query xmlns='{NS}'>{PREFS}</query></iq>", result("s")
        )
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='g' to='alice@localhost'><query xmlns='{NS}'><exodus xmlns='exodus:prefs'/></query></iq>",
            result("g", f"<query xmlns='{NS}'>{PREFS}</query>"),
        )

    @defer.inlineCallbacks
    def test_severalElementsOfOneNamespace(self):
        """Several elements in one namespace are kept together and returned together (§2.3)."""
        two = "<a xmlns='urn:example:p'>1</a><b xmlns='urn:example:p'>2</b>"
        yield self.store(two)
        yield self.retrieve("<a xmlns='urn:example:p'/>", two)

    @defer.inlineCallbacks
    def test_setReplacesOnlyItsNamespaces(self):
        """A set replaces the namespaces it names and leaves the others alone."""
        bookmarks = "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost'/></storage>"
        yield self.store(PREFS + bookmarks)
        yield self.store("<exodus xmlns='exodus:prefs'/>", "s2")
        yield self.retrieve("<exodus xmlns='exodus:prefs'/>", "<exodus xmlns='exodus:prefs'/>")
        yield self.retrieve("<storage xmlns='storage:bookmarks'/>", bookmarks, "g2")

    @defer.inlineCallbacks
    def test_accountsAreSeparate(self):
        """One account's data is not another's."""
        yield self.store(PREFS)
        yield self.assertReply(
            self.bob,
            f"<iq type='get' id='g'><query xmlns='{NS}'><exodus xmlns='exodus:prefs'/></query></iq>",
            f"<iq type='result' id='g' from='bob@localhost' to='bob@localhost/b'><query xmlns='{NS}'><exodus xmlns='exodus:prefs'/></query></iq>",
        )

    @defer.inlineCallbacks
    def test_emptyQuery(self):
        """A get or set without a child element is not-acceptable (§2.3)."""
        for type_ in ("get", "set"):
            yield self.assertReply(
                self.alice,
                f"<iq type='{type_}' id='e'><query xmlns='{NS}'/></iq>",
                failure("e", "not-acceptable", "modify", "name at least one element with its own namespace"),
            )

    @defer.inlineCallbacks
    def test_getTwoNamespaces(self):
        """A get asking for more than one namespace is bad-request (§2.3)."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='two'><query xmlns='{NS}'><a xmlns='urn:a'/><b xmlns='urn:b'/></query></iq>",
            failure("two", "bad-request", "modify", "ask for one namespace at a time"),
        )

    @defer.inlineCallbacks
    def test_reservedNamespaces(self):
        """jabber:*, http://jabber.org/* and vcard-temp are reserved: not-acceptable for get and set, nothing stored (§2.3)."""
        for namespace in ("jabber:iq:roster", "http://jabber.org/protocol/disco#info", "vcard-temp", NS):
            for type_ in ("get", "set"):
                yield self.assertReply(
                    self.alice,
                    f"<iq type='{type_}' id='r'><query xmlns='{NS}'><x xmlns='{namespace}'/></query></iq>",
                    failure("r", "not-acceptable", "modify", f"the namespace {namespace} is reserved"),
                )
        # A set mixing a reserved namespace with a free one stores neither.
        yield self.assertReply(
            self.alice,
            f"<iq type='set' id='m'><query xmlns='{NS}'>{PREFS}<vCard xmlns='vcard-temp'/></query></iq>",
            failure("m", "not-acceptable", "modify", "the namespace vcard-temp is reserved"),
        )
        yield self.retrieve("<exodus xmlns='exodus:prefs'/>", "<exodus xmlns='exodus:prefs'/>")

    @defer.inlineCallbacks
    def test_anotherAccountIsForbidden(self):
        """Getting or setting another account's private data is forbidden (§2.3), even for a JID without an account."""
        yield self.store(PREFS)
        for type_, to in (("get", "alice@localhost"), ("set", "alice@localhost"), ("get", "nobody@localhost")):
            yield self.assertReply(
                self.bob,
                f"<iq type='{type_}' id='x' to='{to}'><query xmlns='{NS}'><exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus></query></iq>",
                failure("x", "forbidden", "auth", "private storage belongs to its account alone", frm=to, to="bob@localhost/b"),
            )
        yield self.retrieve("<exodus xmlns='exodus:prefs'/>", PREFS)

    @defer.inlineCallbacks
    def test_persistsAcrossRestart(self):
        """Stored data survives a restart of the server."""
        yield self.store(PREFS)
        yield self.restart()
        self.alice = self.bind("alice@localhost/a")
        yield self.retrieve("<exodus xmlns='exodus:prefs'/>", PREFS)


class PrivateQuotaTests(ServiceTestMixin, unittest.TestCase):
    """[limits] max_private_size counts every namespace of an account together."""

    LIMIT = 120

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(["private"], limits={"max_private_size": self.LIMIT})
        self.alice = self.bind("alice@localhost/a")

    def element(self, namespace: str, size: int) -> str:
        shell = f"<d xmlns='{namespace}'></d>"
        return shell.replace("></d>", ">" + "x" * (size - len(shell)) + "</d>")

    def store(self, xml: str, id_: str = "s", reply: str | None = None):
        return self.assertReply(
            self.alice, f"<iq type='set' id='{id_}'><query xmlns='{NS}'>{xml}</query></iq>", reply or result(id_)
        )

    @defer.inlineCallbacks
    def test_totalOverTheLimit(self):
        """A set that takes the account's total over the limit is not-acceptable and stores nothing."""
        yield self.store(self.element("urn:a", 60))
        too = self.element("urn:b", 61)
        yield self.store(too, "big", failure("big", "not-acceptable", "modify", f"private storage is limited to {self.LIMIT} bytes"))
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='g'><query xmlns='{NS}'><d xmlns='urn:b'/></query></iq>",
            result("g", f"<query xmlns='{NS}'><d xmlns='urn:b'/></query>"),
        )

    @defer.inlineCallbacks
    def test_exactlyTheLimit(self):
        """Reaching the limit exactly is allowed."""
        yield self.store(self.element("urn:a", 60))
        yield self.store(self.element("urn:b", 60), "s2")

    @defer.inlineCallbacks
    def test_replacingCountsOnlyTheNewSize(self):
        """Replacing a namespace frees its old size: the total is what is stored after the set."""
        yield self.store(self.element("urn:a", 60))
        yield self.store(self.element("urn:b", 60), "s2")
        yield self.store(self.element("urn:a", 30), "s3")
        yield self.store(self.element("urn:b", 90), "s4")
