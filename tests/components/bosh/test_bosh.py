"""
BOSH (XEP-0124 + XEP-0206) over real HTTP on loopback, against the
in-process transport and the standalone connection manager alike (each
mixin runs twice).  Each test is a transcript: the client POSTs a <body/>,
the server answers; a raw TCP client (tests.harness) is the other party.
"""

from __future__ import annotations

import hashlib

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web.client import ResponseNeverReceived

from components.bosh.framing import NS_HTTPBIND, NS_XBOSH
from jabberd.xmlstream import NS_CLIENT, NS_STREAMS
from tests.components.bosh.support import WebMixin, deferLater
from tests.harness import NS_SASL, xml

MECHANISMS_TLS = (
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism>"
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
)
MECHANISMS_CLEAR = (
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism>"
    "<mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
)


def terminal(answer, condition: str | None) -> tuple:
    """(type, condition) of an answer, for one-line assertions."""
    return (answer.attrs.get("type"), answer.attrs.get("condition")) if condition else (answer.attrs.get("type"),)


class CreationMixin(WebMixin):
    """Session creation (XEP-0124 §7, XEP-0206 §4) and its errors (§17)."""

    @defer.inlineCallbacks
    def test_create(self):
        """The creation answer carries sid, wait, requests, hold, ver, polling, inactivity, maxpause, from, authid, the xbosh attributes and the stream features."""
        yield self.startWeb()
        answer = yield self.bosh().create(wait="30", hold="1", ver="1.6")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("content-type"), "text/xml; charset=utf-8")
        attrs = dict(answer.attrs)
        self.assertEqual(attrs.pop("__qname__"), (NS_HTTPBIND, "body"))
        sid = attrs.pop("sid")
        self.assertGreaterEqual(len(sid), 32)
        self.assertTrue(attrs.pop("authid"))
        for key in ("__default_ns__", "__prefixes__"):
            attrs.pop(key, None)
        self.assertEqual(
            attrs,
            {
                "wait": "30",
                "requests": "2",
                "hold": "1",
                "ver": "1.6",
                "polling": "2",
                "inactivity": "60",
                "maxpause": "300",
                "from": "localhost",
                (NS_XBOSH, "version"): "1.0",
                (NS_XBOSH, "restartlogic"): "true",
            },
        )
        self.assertEqual([xml(c, NS_STREAMS) for c in answer.children[0].elements()], [MECHANISMS_TLS])
        self.assertEqual((answer.children[0].uri, answer.children[0].name), (NS_STREAMS, "features"))

    @defer.inlineCallbacks
    def test_limits(self):
        """wait and hold are capped by the configuration, ver by the version implemented (1.11)."""
        yield self.startWeb(http={"bosh_max_wait": 20})
        answer = yield self.bosh().create(wait="3600", hold="5", ver="2.0")
        self.assertEqual((answer.attrs["wait"], answer.attrs["hold"], answer.attrs["ver"]), ("20", "1", "1.11"))

    @defer.inlineCallbacks
    def test_clearText(self):
        """Over plain HTTP neither PLAIN nor STARTTLS is offered: TLS is the HTTP layer's."""
        yield self.startWeb()
        answer = yield self.bosh(secure=False).create()
        self.assertEqual([xml(c, NS_STREAMS) for c in answer.children[0].elements()], [MECHANISMS_CLEAR])

    @defer.inlineCallbacks
    def test_trustedProxy(self):
        """A trusted reverse proxy's X-Forwarded-Proto: https makes a plain HTTP request secure (PLAIN offered)."""
        yield self.startWeb(http={"trusted_proxies": ["127.0.0.1"]})
        client = self.bosh(secure=False)
        answer = yield client.post("", {"to": "localhost", "wait": "5", "hold": "1", "ver": "1.11", "xmpp:version": "1.0"}, headers={"X-Forwarded-Proto": "https"})
        self.assertEqual([xml(c, NS_STREAMS) for c in answer.children[0].elements()], [MECHANISMS_TLS])

    @defer.inlineCallbacks
    def test_content(self):
        """The 'content' attribute sets the Content-Type of every answer of the session."""
        yield self.startWeb()
        client = self.bosh()
        answer = yield client.create(content="text/html; charset=utf-8")
        self.assertEqual(answer.header("content-type"), "text/html; charset=utf-8")
        answer = yield client.post("", {"pause": "5"})
        self.assertEqual(answer.header("content-type"), "text/html; charset=utf-8")

    @defer.inlineCallbacks
    def test_improperAddressing(self):
        """A creation request without 'to' gets improper-addressing."""
        yield self.startWeb()
        answer = yield self.bosh().create(to="")
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}' type='terminate' condition='improper-addressing'/>".encode())

    @defer.inlineCallbacks
    def test_hostUnknown(self):
        """A creation request for a domain not served gets host-unknown."""
        yield self.startWeb()
        answer = yield self.bosh().create(to="example.net")
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}' type='terminate' condition='host-unknown'/>".encode())

    @defer.inlineCallbacks
    def test_badRid(self):
        """A rid that is not a number gets bad-request; a legacy client (no ver) gets HTTP 400 too."""
        yield self.startWeb()
        client = self.bosh()
        answer = yield client.post("", {"rid": "x", "to": "localhost", "ver": "1.11"})
        self.assertEqual((answer.code, terminal(answer, "bad-request")), (200, ("terminate", "bad-request")))
        answer = yield client.post("", {"rid": "-1", "to": "localhost"})
        self.assertEqual((answer.code, terminal(answer, "bad-request")), (400, ("terminate", "bad-request")))

    @defer.inlineCallbacks
    def test_notXML(self):
        """A body that is not one well-formed <body/> in the httpbind namespace gets bad-request."""
        yield self.startWeb()
        for data in (b"hello", b"<body xmlns='urn:other' rid='1' to='localhost'/>", b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'><message>"):
            answer = yield self.http("POST", self.url(), data)
            self.assertEqual((answer.code, answer.attrs.get("condition")), (400, "bad-request"), data)

    @defer.inlineCallbacks
    def test_restrictedXML(self):
        """Entities, comments and DTDs are refused like on a TCP stream."""
        yield self.startWeb()
        data = b"<!DOCTYPE x [<!ENTITY a 'b'>]><body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost'/>"
        answer = yield self.http("POST", self.url(), data)
        self.assertEqual(answer.attrs.get("condition"), "bad-request")

    @defer.inlineCallbacks
    def test_seeOtherURI(self):
        """With secure_url set, a creation request over plain HTTP is sent there (see-other-uri)."""
        yield self.startWeb(http={"secure_url": "https://chat.example.org"})
        answer = yield self.bosh(secure=False).create()
        self.assertEqual(
            answer.raw,
            f"<body xmlns='{NS_HTTPBIND}' type='terminate' condition='see-other-uri'><uri>https://chat.example.org/http-bind</uri></body>".encode(),
        )

    @defer.inlineCallbacks
    def test_unknownSid(self):
        """A request for a sid that does not exist gets item-not-found."""
        yield self.startWeb()
        client = self.bosh()
        client.sid = "no-such-session"
        answer = yield client.post()
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}' type='terminate' condition='item-not-found'/>".encode())


class SessionMixin(WebMixin):
    """A session after creation: SASL, restart, bind, stanzas both ways, and its end."""

    @defer.inlineCallbacks
    def setUpSession(self, http: dict | None = None, **create: str):
        yield self.startWeb(http=http)
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        self.bob, self.bobJID = yield self.login("bob@localhost")
        client, jid = yield self.boshLogin("alice@localhost", **create)
        self.assertEqual(jid, "alice@localhost/web")
        return client

    @defer.inlineCallbacks
    def test_chat(self):
        """After SASL PLAIN, xmpp:restart and bind, stanzas go both ways with xmlns='jabber:client'."""
        client = yield self.setUpSession()
        poll = client.post()
        self.bob.send("<message to='alice@localhost/web' type='chat' id='m1'><body>hi alice</body></message>")
        answer = yield poll
        self.assertEqual(answer.xml(), ["<message from='bob@localhost/res' id='m1' to='alice@localhost/web' type='chat' xmlns='jabber:client'><body>hi alice</body></message>"])
        self.assertIn(b"<message xmlns='jabber:client'", answer.raw)
        client.post(f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res' type='chat' id='m2'><body>hi bob</body></message>")
        message = yield self.bob.next()
        self.assertEqual(xml(message), "<message from='alice@localhost/web' id='m2' to='bob@localhost/res' type='chat'><body>hi bob</body></message>")

    @defer.inlineCallbacks
    def test_payloadWithoutNamespace(self):
        """A payload that inherits the httpbind namespace is taken as jabber:client, as Prosody does."""
        client = yield self.setUpSession()
        client.post("<message to='bob@localhost/res' id='m3'><body>bare</body></message>")
        message = yield self.bob.next()
        self.assertEqual(xml(message), "<message from='alice@localhost/web' id='m3' to='bob@localhost/res'><body>bare</body></message>")

    @defer.inlineCallbacks
    def test_heldUntilData(self):
        """An empty request is held until data arrives, then answered at once."""
        client = yield self.setUpSession()
        poll = client.post()
        yield deferLater(0.5)
        self.assertFalse(poll.called)
        self.bob.send("<message to='alice@localhost/web' id='late'><body>now</body></message>")
        answer = yield poll
        self.assertEqual([c.getAttribute("id") for c in answer.children], ["late"])

    @defer.inlineCallbacks
    def test_wait(self):
        """With nothing to say, a held request is answered empty after 'wait' seconds."""
        client = yield self.setUpSession(wait="1")
        started = self.web.reactor.seconds() if hasattr(self.web, "reactor") else None
        answer = yield client.post()
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}'/>".encode())
        if started is not None:
            self.assertGreaterEqual(self.web.reactor.seconds() - started, 0.9)

    @defer.inlineCallbacks
    def test_newRequestReleasesHeld(self):
        """With hold=1 a new request pushes out the held one (answered empty), and is held itself."""
        client = yield self.setUpSession()
        first = client.post()
        yield deferLater(0.2)
        second = client.post(f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res' id='x'><body>x</body></message>")
        answer = yield first
        self.assertEqual(answer.children, [])
        yield self.bob.next()
        self.assertFalse(second.called)
        self.bob.send("<message to='alice@localhost/web' id='y'><body>y</body></message>")
        answer = yield second
        self.assertEqual([c.getAttribute("id") for c in answer.children], ["y"])

    @defer.inlineCallbacks
    def test_repeatAnswered(self):
        """A repeated rid already answered gets exactly the same answer again (§14.3)."""
        client = yield self.setUpSession()
        rid = client.rid
        poll = client.post()
        self.bob.send("<message to='alice@localhost/web' id='r1'><body>once</body></message>")
        answer = yield poll
        again = yield client.post(rid=rid)
        self.assertEqual(again.raw, answer.raw)
        self.assertEqual([c.getAttribute("id") for c in again.children], ["r1"])

    @defer.inlineCallbacks
    def test_repeatHeld(self):
        """A repeated rid still held: the old request gets a recoverable error, the new one the answer."""
        client = yield self.setUpSession()
        rid = client.rid
        first = client.post()
        yield deferLater(0.2)
        second = client.post(rid=rid)
        answer = yield first
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}' type='error'/>".encode())
        self.bob.send("<message to='alice@localhost/web' id='r2'><body>to the new one</body></message>")
        answer = yield second
        self.assertEqual([c.getAttribute("id") for c in answer.children], ["r2"])

    @defer.inlineCallbacks
    def test_repeatTooOld(self):
        """A repeated rid whose answer is no longer kept gets item-not-found and ends the session."""
        client = yield self.setUpSession()
        first = client.rid - 4  # the creation request
        answer = yield client.post(rid=first)
        self.assertEqual(terminal(answer, "item-not-found"), ("terminate", "item-not-found"))
        answer = yield client.post()
        self.assertEqual(terminal(answer, "item-not-found"), ("terminate", "item-not-found"))

    @defer.inlineCallbacks
    def test_ridWindow(self):
        """A rid beyond the window (the next rid plus 'requests') gets item-not-found."""
        client = yield self.setUpSession()
        answer = yield client.post(rid=client.rid + 2)
        self.assertEqual(terminal(answer, "item-not-found"), ("terminate", "item-not-found"))

    @defer.inlineCallbacks
    def test_outOfOrder(self):
        """Requests that arrive out of order are forwarded in rid order (§14.1)."""
        client = yield self.setUpSession()
        rid = client.rid
        client.rid += 2
        later = client.post(f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res' id='second'/>", rid=rid + 1)
        yield deferLater(0.3)
        earlier = client.post(f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res' id='first'/>", rid=rid)
        first = yield self.bob.next()
        second = yield self.bob.next()
        self.assertEqual([first["id"], second["id"]], ["first", "second"])
        answer = yield earlier
        self.assertEqual(answer.children, [])
        self.bob.send("<message to='alice@localhost/web' id='z'/>")
        answer = yield later
        self.assertEqual([c.getAttribute("id") for c in answer.children], ["z"])

    @defer.inlineCallbacks
    def test_overactive(self):
        """More unanswered requests than 'requests' (not pause, not terminate) get policy-violation (§11)."""
        client = yield self.setUpSession(http={"bosh_max_hold": 2, "bosh_requests": 3}, hold="2")
        rid = client.rid
        message = f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res'/>"
        client.post(message, rid=rid)
        client.post(message, rid=rid + 1)
        yield deferLater(0.3)
        client.post(message, rid=rid + 3)
        yield deferLater(0.3)
        answer = yield client.post(message, rid=rid + 4)
        self.assertEqual(terminal(answer, "policy-violation"), ("terminate", "policy-violation"))

    @defer.inlineCallbacks
    def test_tooFrequent(self):
        """An empty request arriving right after another while 'requests' are waiting gets policy-violation (§11)."""
        client = yield self.setUpSession()
        client.post()
        yield deferLater(0.1)
        answer = yield client.post()
        self.assertEqual(terminal(answer, "policy-violation"), ("terminate", "policy-violation"))

    @defer.inlineCallbacks
    def test_pollingTooOften(self):
        """A polling session (hold=0) polling empty faster than 'polling' gets policy-violation (§12)."""
        yield self.startWeb()
        client = self.bosh()
        yield client.create(hold="0")
        answer = yield client.post()
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}'/>".encode())
        answer = yield client.post()
        self.assertEqual(terminal(answer, "policy-violation"), ("terminate", "policy-violation"))

    @defer.inlineCallbacks
    def test_pause(self):
        """A pause answers every held request at once, with no payload, and extends the inactivity period (§10)."""
        client = yield self.setUpSession(http={"bosh_inactivity": 1})
        held = client.post()
        yield deferLater(0.2)
        answer = yield client.post("", {"pause": "4"})
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}'/>".encode())
        yield held
        yield deferLater(2)
        self.bob.send("<message to='alice@localhost/web' id='p'/>")
        answer = yield client.post()
        self.assertEqual([c.getAttribute("id") for c in answer.children], ["p"])

    @defer.inlineCallbacks
    def test_pauseTooLong(self):
        """A pause longer than maxpause gets policy-violation."""
        client = yield self.setUpSession()
        answer = yield client.post("", {"pause": "301"})
        self.assertEqual(terminal(answer, "policy-violation"), ("terminate", "policy-violation"))

    @defer.inlineCallbacks
    def test_terminate(self):
        """A terminate request forwards its payloads, is answered type='terminate', and ends the session (§13)."""
        client = yield self.setUpSession()
        answer = yield client.post(f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res' id='bye'><body>bye</body></message>", {"type": "terminate"})
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}' type='terminate'/>".encode())
        message = yield self.bob.next()
        self.assertEqual(message["id"], "bye")
        answer = yield client.post()
        self.assertEqual(terminal(answer, "item-not-found"), ("terminate", "item-not-found"))

    @defer.inlineCallbacks
    def test_inactivity(self):
        """No request for 'inactivity' seconds ends the session: contacts get unavailable presence, the sid is gone."""
        client = yield self.setUpSession(http={"bosh_inactivity": 1})
        client.post(f"<presence xmlns='{NS_CLIENT}' to='bob@localhost/res'/>")
        presence = yield self.bob.next()
        self.assertEqual(xml(presence), "<presence from='alice@localhost/web' to='bob@localhost/res'/>")
        presence = yield self.bob.next(timeout=15)
        self.assertEqual(xml(presence), "<presence from='alice@localhost/web' to='bob@localhost/res' type='unavailable'/>")
        answer = yield client.post()
        self.assertEqual(terminal(answer, "item-not-found"), ("terminate", "item-not-found"))

    @defer.inlineCallbacks
    def test_bounceUnread(self):
        """A message the client never fetched before its session timed out is bounced with recipient-unavailable (XEP-0206 §8)."""
        yield self.setUpSession(http={"bosh_inactivity": 1})
        self.bob.send("<message to='alice@localhost/web' id='lost' type='chat'><body>are you there?</body></message>")
        error = yield self.bob.next(timeout=15)
        self.assertEqual(
            xml(error),
            "<message from='alice@localhost/web' id='lost' to='bob@localhost/res' type='error'><body>are you there?</body>"
            "<error type='wait'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        )

    @defer.inlineCallbacks
    def test_acks(self):
        """With ack='1' the creation answer acks its rid, and a later answer acks the highest rid received (§9)."""
        yield self.startWeb()
        client = self.bosh()
        rid = client.rid
        answer = yield client.create(ack="1")
        self.assertEqual(answer.attrs["ack"], str(rid))
        held = client.post()
        yield deferLater(0.2)
        newer = client.post("", {"pause": "10"})
        answer = yield held
        self.assertEqual(answer.attrs.get("ack"), str(rid + 2))
        yield newer

    @defer.inlineCallbacks
    def test_report(self):
        """A client ack below the last answered rid gets report and time on an immediate answer (§9.2)."""
        yield self.startWeb()
        client = self.bosh()
        rid = client.rid
        yield client.create(ack="1", wait="1")
        yield client.post()  # rid+1: answered empty after 'wait', and kept
        answer = yield client.post("", {"ack": str(rid)})
        self.assertEqual(answer.attrs.get("report"), str(rid + 1))
        self.assertGreaterEqual(int(answer.attrs["time"]), 0)

    @defer.inlineCallbacks
    def test_keys(self):
        """The key sequence (§15): each key hashes to the previous one; a wrong key gets item-not-found."""
        yield self.startWeb()
        keys = [hashlib.sha1(b"seed").hexdigest()]
        for _ in range(4):
            keys.append(hashlib.sha1(keys[-1].encode()).hexdigest())
        client = self.bosh()
        yield client.create(newkey=keys[4])
        answer = yield client.post("", {"pause": "10", "key": keys[3]})
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}'/>".encode())
        answer = yield client.post("", {"pause": "10", "key": keys[2].upper()})
        self.assertEqual(answer.raw, f"<body xmlns='{NS_HTTPBIND}'/>".encode())
        answer = yield client.post("", {"pause": "10", "key": keys[0]})
        self.assertEqual(terminal(answer, "item-not-found"), ("terminate", "item-not-found"))

    @defer.inlineCallbacks
    def test_streamError(self):
        """A stream error ends the session with remote-stream-error carrying the <stream:error/> (XEP-0206 §7)."""
        client = yield self.setUpSession()
        answer = yield client.post(f"<message xmlns='{NS_CLIENT}' from='mallory@localhost' to='bob@localhost'/>")
        self.assertEqual(terminal(answer, "remote-stream-error"), ("terminate", "remote-stream-error"))
        error = answer.children[-1]
        self.assertEqual((error.uri, error.name), (NS_STREAMS, "error"))
        self.assertEqual(error.firstChildElement().name, "invalid-from")

    @defer.inlineCallbacks
    def test_secureSessionInClear(self):
        """A request of a session created over HTTPS that comes over plain HTTP is dropped, the session lives on (§15)."""
        client = yield self.setUpSession()
        clear = self.bosh(secure=False)
        clear.sid, clear.rid = client.sid, client.rid
        yield self.assertFailure(clear.post(), ResponseNeverReceived)
        self.bob.send("<message to='alice@localhost/web' id='still'/>")
        answer = yield client.post()
        self.assertEqual([c.getAttribute("id") for c in answer.children], ["still"])

    @defer.inlineCallbacks
    def test_saslFailure(self):
        """A wrong password is a SASL failure inside a normal answer; the session stays."""
        yield self.startWeb()
        yield self.addUser("alice@localhost")
        client = self.bosh()
        yield client.create()
        import base64

        token = base64.b64encode(b"\0alice\0wrong").decode()
        answer = yield client.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        self.assertEqual(answer.xml(), ["<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"])


class InProcessCreation(CreationMixin, unittest.TestCase):
    """Creation against the in-process transport."""


class StandaloneCreation(CreationMixin, unittest.TestCase):
    """Creation against the standalone connection manager."""

    standalone = True


class InProcessSession(SessionMixin, unittest.TestCase):
    """Sessions against the in-process transport."""


class StandaloneSession(SessionMixin, unittest.TestCase):
    """Sessions against the standalone connection manager."""

    standalone = True
