"""
BOSH (XEP-0124) carrying XMPP (XEP-0206).

A L{BoshSession} is one client's sequence of HTTP requests, numbered by
C{rid}.  Requests are processed strictly in rid order (ones that arrive
early wait in C{pending}), held up to C{hold} at a time for at most
C{wait} seconds, and answered oldest first with whatever the server sent
meanwhile.  Each answer is kept, per rid, so that a request the client
repeats after a broken connection gets the very same answer again.

The session is the L{Downstream} of its L{Upstream}: the XMPP stream lives
there (in-process client session or c2s stream to the core), and what it
sends waits in C{outbox} for the next request to carry it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource
from twisted.words.xish import domish

from components.bosh.framing import (
    NS_HTTPBIND,
    NS_XBOSH,
    Downstream,
    Upstream,
    isStreamError,
    lang,
    requalify,
)
from jabberd import jid as J
from jabberd.limits import TokenBucket
from jabberd.xmlstream import NS_CLIENT, NS_STREAMS, StreamError, StreamParser, errorReply

if TYPE_CHECKING:
    from components.bosh.web import WebFrontend

#: The newest XEP-0124 version this implements.
VERSION = (1, 11)
#: XEP-0124 §14: rids stay below 2**53 so that JavaScript can count them.
MAX_RID = 2**53 - 1

# Deprecated HTTP codes for clients that sent no 'ver' (XEP-0124 §17.1).
LEGACY_CODES = {"bad-request": 400, "policy-violation": 403, "item-not-found": 404}

_VER = re.compile(r"([0-9]+)\.([0-9]+)")
_UINT = re.compile(r"[0-9]{1,16}")

DEFAULT_CONTENT_TYPE = "text/xml; charset=utf-8"


class BadBody(Exception):
    """A request that is not one well-formed, acceptable C{<body/>}."""

    def __init__(self, condition: str, text: str, attrs: dict | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text
        self.attrs = attrs or {}


def parseBody(data: bytes, maxStanzaSize: int, maxDepth: int) -> tuple[dict, list[domish.Element]]:
    """
    Parse a request body with the same restricted parser as a TCP stream:
    no DTD, comments, processing instructions or entities, stanza size and
    depth limits.  Returns the C{<body/>} attributes (namespaced ones keyed
    by C{(uri, name)}) and the payload elements.
    """
    found: dict = {}
    payloads: list[domish.Element] = []
    ended: list[bool] = []

    def start(attrs: dict) -> None:
        found.update(attrs)

    parser = StreamParser(start, payloads.append, lambda: ended.append(True), maxStanzaSize, maxDepth + 1)
    try:
        parser.feed(data)
    except StreamError as e:
        condition = "policy-violation" if e.condition == "policy-violation" else "bad-request"
        raise BadBody(condition, e.text or e.condition, found) from None
    if found.get("__qname__") != (NS_HTTPBIND, "body"):
        raise BadBody("bad-request", "the request must be one <body xmlns='http://jabber.org/protocol/httpbind'/>", found)
    if not ended:
        raise BadBody("bad-request", "incomplete <body/>", found)
    return found, [requalify(p, NS_HTTPBIND) for p in payloads]


def _uint(value: str | None) -> int | None:
    """A non-negative decimal integer attribute, or None."""
    if value is None or not _UINT.fullmatch(value):
        return None
    return int(value)


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


def body(attrs: dict[str, Any], payload: bytes = b"", namespaces: str = "") -> bytes:
    """A response C{<body/>} with C{attrs} around C{payload}."""
    parts = [f"<body xmlns='{NS_HTTPBIND}'{namespaces}"]
    for key, value in attrs.items():
        parts.append(f" {key}='{_attr(str(value))}'")
    head = "".join(parts).encode("utf-8")
    if not payload:
        return head + b"/>"
    return head + b">" + payload + b"</body>"


def bounces(outbox: list[bytes]) -> list[domish.Element]:
    """
    What to answer for stanzas a gone client will never read (XEP-0206 §8):
    a message gets recipient-unavailable, an iq request service-unavailable,
    presence nothing.  Errors are never answered with errors.
    """
    elements: list[domish.Element] = []
    parser = StreamParser(lambda a: None, elements.append, lambda: None, 2**31, 10**4)
    parser.feed(f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>".encode())
    for data in outbox:
        if not isStreamError(data):
            try:
                parser.feed(data)
            except StreamError:
                break
    replies = []
    for stanza in elements:
        kind = stanza.getAttribute("type")
        if stanza.uri != NS_CLIENT or kind == "error" or stanza.getAttribute("from") is None:
            continue
        if stanza.name == "message" and kind != "groupchat":
            replies.append(errorReply(stanza, "recipient-unavailable"))
        elif stanza.name == "iq" and kind in ("get", "set"):
            replies.append(errorReply(stanza, "service-unavailable"))
    for reply in replies:
        del reply["from"]  # the session stamps its own full JID
    return replies


class BoshRequest:
    """One HTTP request of a session, from arrival to its answer."""

    __slots__ = ("rid", "http", "attrs", "payloads", "timer", "empty", "pause", "terminate", "restart", "key")

    def __init__(self, rid: int, http: Any, attrs: dict, payloads: list[domish.Element]) -> None:
        self.rid = rid
        self.http = http
        self.attrs = attrs
        self.payloads = payloads
        self.timer: IDelayedCall | None = None
        self.pause = attrs.get("pause")
        self.terminate = attrs.get("type") == "terminate"
        self.restart = attrs.get((NS_XBOSH, "restart")) in ("true", "1")
        self.empty = not payloads and not self.pause and not self.terminate and not self.restart
        self.key = attrs.get("key")


class BoshSession:
    """One BOSH session: rid order, held requests, buffered answers, and the XMPP stream behind."""

    log = Logger()

    def __init__(self, manager: BoshManager, sid: str, rid: int, attrs: dict, host: str, secure: bool, wait: int, hold: int, ver: tuple[int, int] | None, peerAddress: str = "") -> None:
        config = manager.config
        self.manager = manager
        self.reactor = manager.reactor
        self.sid = sid
        self.host = host
        self.secure = secure
        self.peerAddress = peerAddress
        # Rate limit (http.max_bytes_per_second): a request over it waits
        # in `delayed`, in arrival order, until its time comes; never dropped.
        self._bucket = TokenBucket(config.max_bytes_per_second, config.burst_bytes, self.reactor.seconds()) if config.max_bytes_per_second else None
        self.delayed: deque[tuple[float, Any, dict, list[domish.Element]]] = deque()
        self._releaseCall: IDelayedCall | None = None
        self.wait = wait
        self.hold = hold
        self.requests = config.bosh_requests
        self.ver = ver
        self.legacy = ver is None
        self.polling = config.bosh_polling
        self.inactivity = config.bosh_inactivity
        self.maxPause = config.bosh_max_pause
        self.contentType = (attrs.get("content") or DEFAULT_CONTENT_TYPE).encode("utf-8")
        self.ackEnabled = attrs.get("ack") == "1"
        newkey = attrs.get("newkey")
        self.key: str | None = newkey.lower() if newkey else None
        self.lang = lang(attrs) or "en"
        self.version = attrs.get((NS_XBOSH, "version"))
        self.clientFrom = attrs.get("from")
        self.nextRid = rid + 1
        self.lastResponded = rid - 1
        self.held: list[BoshRequest] = []
        self.pending: dict[int, BoshRequest] = {}
        self.buffer: OrderedDict[int, tuple[bytes, str | None, float]] = OrderedDict()
        self.outbox: list[bytes] = []
        self.report: tuple[int, int] | None = None
        self.creation: dict[str, Any] | None = None
        self.streamId = ""
        self.streamFrom = host
        self.streamErrorSeen = False
        self.terminal: tuple[str | None, ...] | None = None
        self.clientClosing = False
        self.ended = False
        self.lastRequestAt = -1e9
        self.lastEmpty = False
        self.lastResponseEmpty = False
        self._flushCall: IDelayedCall | None = None
        self._inactivityCall: IDelayedCall | None = None
        self.upstream: Upstream = manager.upstreamFactory(self)

    def __repr__(self) -> str:
        return f"<BoshSession {self.host} rid={self.nextRid}>"

    # -- Downstream (from the upstream) ----------------------------------------

    def streamOpened(self, attrs: dict[str, str]) -> None:
        self.streamId = attrs.get("id", "")
        self.streamFrom = attrs.get("from") or self.host

    def send(self, data: bytes) -> None:
        if self.ended:
            return
        if isStreamError(data):
            self.streamErrorSeen = True
        self.outbox.append(data)
        if self._flushCall is None:
            # Coalesce a burst (a roster, a presence flood) into one answer.
            self._flushCall = self.reactor.callLater(0, self._flush)

    def streamClosed(self) -> None:
        if self.clientClosing or self.ended:
            return
        self._end("remote-stream-error" if self.streamErrorSeen else None)

    def streamFailed(self, condition: str, text: str | None = None) -> None:
        if not self.ended:
            self._end(condition)

    def channelBindings(self) -> dict[str, bytes]:
        # The session spans many HTTP connections: no one TLS channel to bind to.
        return {}

    def peerCertificate(self) -> Any:
        return None

    # -- requests ----------------------------------------------------------------

    def start(self, http: Any, rid: int, attrs: dict) -> None:
        """The session creation request: open the stream, answer with its features."""
        self.creation = {
            "sid": self.sid,
            "wait": self.wait,
            "requests": self.requests,
            "hold": self.hold,
            "polling": self.polling,
            "inactivity": self.inactivity,
        }
        if self.ver is not None:
            self.creation["ver"] = f"{self.ver[0]}.{self.ver[1]}"
        if self.maxPause:
            self.creation["maxpause"] = self.maxPause
        if self.ackEnabled:
            self.creation["ack"] = rid
        req = BoshRequest(rid, http, attrs, [])
        self.lastRequestAt = self.reactor.seconds()
        self.upstream.open(self._streamAttrs(attrs))
        if self.terminal is None and not self.ended:
            self._hold(req)
        else:
            self._answerTerminal(req)

    def _streamAttrs(self, attrs: dict) -> dict[str, str]:
        found = {"to": attrs.get("to") or self.host, "xml:lang": lang(attrs) or self.lang}
        version = attrs.get((NS_XBOSH, "version")) or self.version
        if version:
            found["version"] = version
        sender = attrs.get("from") or self.clientFrom
        if sender:
            found["from"] = sender
        return found

    def arrived(self, http: Any, attrs: dict, payloads: list[domish.Element], size: int) -> None:
        """
        A request after the first, C{size} bytes long: processed now, or,
        over the byte rate, once the session's average is back under it
        (the held HTTP request is the client's back-pressure).
        """
        if self._bucket is None:
            self.request(http, attrs, payloads)
            return
        now = self.reactor.seconds()
        wait = self._bucket.consume(size, now)
        if wait <= 0 and not self.delayed:
            self.request(http, attrs, payloads)
            return
        if len(self.delayed) + len(self.held) + len(self.pending) >= self.requests:
            # Waiting requests count against the window like held ones (§11).
            self.fail("policy-violation", http)
            return
        self.delayed.append((now + wait, http, attrs, payloads))
        if self._releaseCall is None:
            self._releaseCall = self.reactor.callLater(max(wait, 0), self._release)

    def _release(self) -> None:
        """Process the delayed requests whose time has come; wait again for the rest."""
        self._releaseCall = None
        now = self.reactor.seconds()
        while self.delayed and self.delayed[0][0] <= now and not self.ended:
            _, http, attrs, payloads = self.delayed.popleft()
            self.request(http, attrs, payloads)
        if self.delayed and not self.ended:
            self._releaseCall = self.reactor.callLater(self.delayed[0][0] - now, self._release)

    def request(self, http: Any, attrs: dict, payloads: list[domish.Element]) -> None:
        """Any request after the first, in the order it may be processed."""
        if self.terminal is not None:
            self._answerTerminal(BoshRequest(self.nextRid, http, attrs, payloads))
            return
        rid = _uint(attrs.get("rid"))
        if rid is None or rid > MAX_RID:
            self.fail("bad-request", http)
            return
        if rid < self.nextRid:
            self._repeat(rid, http, attrs)
            return
        if rid in self.pending:
            self._replace(self.pending[rid], http)
            return
        if rid >= self.nextRid + self.requests:
            # XEP-0124 §14.2: beyond the window (same error as too small).
            self.fail("item-not-found", http)
            return
        req = BoshRequest(rid, http, attrs, payloads)
        unanswered = len(self.held) + len(self.pending)
        if unanswered + 1 > self.requests and not (req.pause or req.terminate):
            # XEP-0124 §11: more simultaneous requests than 'requests'.
            self.fail("policy-violation", http)
            return
        self.pending[rid] = req
        while self.nextRid in self.pending and self.terminal is None and not self.ended:
            req = self.pending.pop(self.nextRid)
            self.nextRid += 1
            self._process(req)

    def _repeat(self, rid: int, http: Any, attrs: dict) -> None:
        """XEP-0124 §14.3: a rid already received."""
        for req in self.held:
            if req.rid == rid:
                self._replace(req, http)
                return
        buffered = self.buffer.get(rid)
        if buffered is None:
            self.fail("item-not-found", http)
            return
        answer, key, _ = buffered
        if self.key is not None and not (key and hmac.compare_digest(key.lower(), (attrs.get("key") or "").lower())):
            self.fail("item-not-found", http)
            return
        self._write(http, answer)

    def _replace(self, req: BoshRequest, http: Any) -> None:
        """
        The client repeated a request still waiting: the old HTTP request gets
        a recoverable error, the new one takes its place.
        """
        self._write(req.http, body({"type": "error"}))
        req.http = http

    def _process(self, req: BoshRequest) -> None:
        """A new request, in rid order."""
        attrs = req.attrs
        if self.key is not None:
            given = (req.key or "").lower()
            if not given or not hmac.compare_digest(hashlib.sha1(given.encode()).hexdigest(), self.key):
                self.fail("item-not-found", req.http)
                return
            newkey = attrs.get("newkey")
            self.key = newkey.lower() if newkey else given
        now = self.reactor.seconds()
        if req.empty and self.polling and now - self.lastRequestAt < self.polling:
            if self.hold == 0 or self.wait == 0:
                # §12: a polling client polling too often.
                tooOften = self.lastEmpty and self.lastResponseEmpty
            else:
                # §11: 'requests' requests waiting, the last two close together and empty.
                tooOften = len(self.held) + len(self.pending) + 1 >= self.requests
            if tooOften:
                self.fail("policy-violation", req.http)
                return
        self.lastRequestAt = now
        self.lastEmpty = req.empty
        if self.ackEnabled and attrs.get("ack") is not None:
            self._clientAck(_uint(attrs.get("ack")))
        if req.pause is not None:
            self._pause(req)
            return
        if req.terminate:
            self._terminate(req)
            return
        if req.restart:
            # XEP-0206 §5: a new stream; payloads in a restart request are ignored.
            self.upstream.open(self._streamAttrs(attrs))
        else:
            for payload in req.payloads:
                self.upstream.receive(payload)
                if self.terminal is not None or self.ended:
                    break
        if self.terminal is not None or self.ended:
            # The stream ended while this request's payloads were forwarded.
            self._answerTerminal(req)
        else:
            self._hold(req)

    def _clientAck(self, ack: int | None) -> None:
        """XEP-0124 §9.2: the client has every answer up to C{ack}."""
        if ack is None:
            return
        for rid in [r for r in self.buffer if r <= ack - 1]:
            del self.buffer[rid]
        missing = ack + 1
        if ack < self.lastResponded and missing in self.buffer:
            sentAt = self.buffer[missing][2]
            self.report = (missing, int((self.reactor.seconds() - sentAt) * 1000))

    def _pause(self, req: BoshRequest) -> None:
        """XEP-0124 §10: answer everything now, then allow a longer silence."""
        pause = _uint(req.pause)
        if pause is None or not self.maxPause or pause > self.maxPause:
            self.fail("policy-violation", req.http)
            return
        while self.held:
            self._respond(self.held[0], self._takeOutbox())
        # The answer to a pause carries no payloads and is not kept for resending.
        self._respond(req, [], keep=False)
        self._startInactivity(pause)

    def _terminate(self, req: BoshRequest) -> None:
        """XEP-0124 §13: forward the last payloads, close the stream, end the session."""
        self.clientClosing = True
        for payload in req.payloads:
            self.upstream.receive(payload)
        self.upstream.close()
        self._insert(req)
        self._finish({"type": "terminate"})

    def _insert(self, req: BoshRequest) -> None:
        self.held.append(req)
        self.held.sort(key=lambda r: r.rid)

    def _hold(self, req: BoshRequest) -> None:
        """Keep a request until data comes, C{wait} passes, or a newer one pushes it out."""
        self._cancelInactivity()
        req.timer = self.reactor.callLater(self.wait, self._waited, req)
        self._insert(req)
        if self.outbox or self.report is not None:
            self._respond(self.held[0], self._takeOutbox())
        # The creation answer alone waits for the stream's features (which a
        # standalone connection manager has to fetch from the core first).
        while len(self.held) > self.hold and self.creation is None:
            self._respond(self.held[0], self._takeOutbox())

    def _waited(self, req: BoshRequest) -> None:
        req.timer = None
        if req in self.held:
            self._respond(req, self._takeOutbox() if req is self.held[0] else [])

    def _flush(self) -> None:
        self._flushCall = None
        if self.held and self.outbox and not self.ended:
            self._respond(self.held[0], self._takeOutbox())

    def _takeOutbox(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    # -- answers -----------------------------------------------------------------

    def _respond(self, req: BoshRequest, payloads: list[bytes], extra: dict | None = None, keep: bool = True) -> None:
        """Answer C{req} (oldest first) and keep the answer for a repeat."""
        if req.timer is not None and req.timer.active():
            req.timer.cancel()
        req.timer = None
        if req in self.held:
            self.held.remove(req)
        attrs: dict[str, Any] = {}
        namespaces = ""
        if self.creation is not None:
            attrs.update(self.creation)
            self.creation = None
            attrs["from"] = self.streamFrom
            if self.streamId:
                attrs["authid"] = self.streamId
            attrs["xmpp:version"] = "1.0"
            attrs["xmpp:restartlogic"] = "true"
            namespaces = f" xmlns:xmpp='{NS_XBOSH}' xmlns:stream='{NS_STREAMS}'"
        elif self.ackEnabled and self.nextRid - 1 != req.rid:
            # §9.1: the highest rid received with none missing below it.
            attrs["ack"] = self.nextRid - 1
        if self.report is not None:
            attrs["report"], attrs["time"] = self.report
            self.report = None
        if extra:
            attrs.update(extra)
        answer = body(attrs, b"".join(payloads), namespaces)
        if keep:
            self.buffer[req.rid] = (answer, req.key, self.reactor.seconds())
            while len(self.buffer) > self.requests:
                self.buffer.popitem(last=False)
        self.lastResponded = max(self.lastResponded, req.rid)
        self.lastResponseEmpty = not payloads
        self._write(req.http, answer)
        if not self.held and not self.ended:
            self._startInactivity(self.inactivity)

    def _write(self, http: Any, answer: bytes, code: int = 200) -> None:
        self.manager.write(http, answer, code, self.contentType)

    def _answerTerminal(self, req: BoshRequest) -> None:
        """A request reaching a session whose stream has ended: the terminal answer, once."""
        condition = self.terminal[0] if self.terminal else None
        attrs = {"type": "terminate"}
        if condition:
            attrs["condition"] = condition
        self._insert(req)
        self._finish(attrs)

    # -- the end -----------------------------------------------------------------

    def _end(self, condition: str | None) -> None:
        """The stream is over (server side): answer now, or keep the answer for the next request."""
        self.terminal = (condition,)
        attrs = {"type": "terminate"}
        if condition:
            attrs["condition"] = condition
        if self.held:
            self._finish(attrs)
        else:
            # Nobody to tell yet: the next request gets the news, or the
            # inactivity timer forgets the session.
            self._startInactivity(self.inactivity)

    def _finish(self, attrs: dict) -> None:
        """Send the terminal answer on the oldest request, empty ones on the rest, forget the session."""
        self.ended = True
        if self.held:
            first, rest = self.held[0], self.held[1:]
            for req in rest:
                self._respond(req, [], keep=False)
            self._respond(first, self._takeOutbox(), attrs, keep=False)
        self._forget()

    def fail(self, condition: str, http: Any, text: str | None = None, uri: str | None = None) -> None:
        """A terminal binding condition caused by the client's request (XEP-0124 §17.2)."""
        if self.ended:
            return
        code = LEGACY_CODES.get(condition, 200) if self.legacy else 200
        self.ended = True
        for req in list(self.held):
            self._respond(req, [], keep=False)
        for req in self.pending.values():
            self._write(req.http, body({}))
        self.pending.clear()
        self.manager.write(http, body({"type": "terminate", "condition": condition}), code, self.contentType)
        self._abandon()

    def _abandon(self) -> None:
        """End the XMPP stream without the client: bounce what it will never read."""
        self.ended = True
        outbox = self._takeOutbox()
        if self.terminal is None:
            self.terminal = (None,)
            if not self.clientClosing:
                for reply in bounces(outbox):
                    self.upstream.receive(reply)
            self.upstream.abort()
        self._forget()

    def _inactive(self) -> None:
        """XEP-0124 §10: no request for too long; the client is gone."""
        self._inactivityCall = None
        if not self.held:
            self._abandon()

    def shutdown(self) -> None:
        """The service is stopping: tell waiting requests, end the stream."""
        if self.held and not self.ended:
            attrs = {"type": "terminate", "condition": "system-shutdown"}
            self.ended = True
            for req in self.held[1:]:
                self._respond(req, [], keep=False)
            if self.held:
                self._respond(self.held[0], [], attrs, keep=False)
        self._abandon()

    def _startInactivity(self, seconds: float) -> None:
        self._cancelInactivity()
        self._inactivityCall = self.reactor.callLater(seconds, self._inactive)

    def _cancelInactivity(self) -> None:
        if self._inactivityCall is not None and self._inactivityCall.active():
            self._inactivityCall.cancel()
        self._inactivityCall = None

    def _forget(self) -> None:
        self.ended = True
        for req in self.pending.values():
            self._write(req.http, body({}))
        self.pending.clear()
        if self._releaseCall is not None and self._releaseCall.active():
            self._releaseCall.cancel()
        self._releaseCall = None
        while self.delayed:
            self._write(self.delayed.popleft()[1], body({"type": "terminate"}))
        self._cancelInactivity()
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        for req in self.held + list(self.pending.values()):
            if req.timer is not None and req.timer.active():
                req.timer.cancel()
        self.manager.forget(self)


class BoshManager:
    """Every BOSH session of the site, by sid; creates sessions and routes requests to them."""

    log = Logger()

    def __init__(self, frontend: WebFrontend) -> None:
        self.frontend = frontend
        self.config = frontend.config
        self.reactor = frontend.reactor
        self.hosts = frontend.hosts
        self.upstreamFactory: Callable[[Downstream], Upstream] = frontend.upstreamFactory
        self.sessions: dict[str, BoshSession] = {}

    def handle(self, http: Any, attrs: dict, payloads: list[domish.Element], secure: bool, size: int = 0) -> None:
        sid = attrs.get("sid")
        if sid is None:
            self.create(http, attrs, secure)
            return
        session = self.sessions.get(sid)
        if session is None or not hmac.compare_digest(session.sid, sid):
            self.write(http, body({"type": "terminate", "condition": "item-not-found"}))
            return
        if session.secure and not secure:
            # §15: a secure session's requests never come in clear; drop the
            # connection without ending the session (no denial of service).
            http.channel.transport.loseConnection()
            return
        session.arrived(http, attrs, payloads, size)

    def badBody(self, http: Any, error: BadBody, secure: bool) -> None:
        """A request that would not parse: end its session if it named one."""
        session = self.sessions.get(error.attrs.get("sid") or "")
        if session is not None and (secure or not session.secure):
            session.fail(error.condition, http, error.text)
        else:
            self.write(http, body({"type": "terminate", "condition": error.condition}), 400)

    def create(self, http: Any, attrs: dict, secure: bool) -> None:
        """XEP-0124 §7.1, XEP-0206 §4: a session creation request."""
        config = self.config

        def refuse(condition: str, payload: bytes = b"") -> None:
            code = LEGACY_CODES.get(condition, 200) if attrs.get("ver") is None else 200
            self.write(http, body({"type": "terminate", "condition": condition}, payload), code)

        rid = _uint(attrs.get("rid"))
        if rid is None or rid > MAX_RID:
            refuse("bad-request")
            return
        secureURL = self.frontend.config.secure_url
        if secureURL and not secure:
            uri = f"{secureURL}{config.bosh_path}".replace("&", "&amp;").replace("<", "&lt;")
            refuse("see-other-uri", f"<uri>{uri}</uri>".encode())
            return
        to = attrs.get("to") or ""
        if not to:
            refuse("improper-addressing")
            return
        try:
            host = J.prepDomain(to)
        except J.InvalidJID:
            host = ""
        if host not in self.hosts:
            refuse("host-unknown")
            return
        wait = _uint(attrs.get("wait")) if attrs.get("wait") is not None else config.bosh_max_wait
        hold = _uint(attrs.get("hold")) if attrs.get("hold") is not None else 1
        if wait is None or hold is None:
            refuse("bad-request")
            return
        ver = None
        if attrs.get("ver") is not None:
            match = _VER.fullmatch(attrs["ver"])
            if match is None:
                refuse("bad-request")
                return
            ver = min((int(match.group(1)), int(match.group(2))), VERSION)
        address = self.frontend.requestAddress(http)
        if not self.frontend.perAddress.acquire(address):
            # Checked last: a malformed request costs nothing to count.
            self.log.info("too many web sessions from {address}", address=address)
            refuse("policy-violation")
            return
        sid = secrets.token_urlsafe(24)
        session = BoshSession(self, sid, rid, attrs, host, secure, min(wait, config.bosh_max_wait), min(hold, config.bosh_max_hold), ver, address)
        self.sessions[sid] = session
        session.start(http, rid, attrs)

    def forget(self, session: BoshSession) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
            self.frontend.perAddress.release(session.peerAddress)

    def write(self, http: Any, answer: bytes, code: int = 200, contentType: bytes = DEFAULT_CONTENT_TYPE.encode()) -> None:
        """Answer an HTTP request unless its connection is already gone."""
        if getattr(http, "_disconnected", False) or http.finished:
            return
        http.setResponseCode(code)
        http.setHeader(b"content-type", contentType)
        http.setHeader(b"cache-control", b"no-store")
        http.write(answer)
        http.finish()

    def stop(self) -> None:
        for session in list(self.sessions.values()):
            session.shutdown()


class BoshResource(Resource):
    """C{/http-bind}: POST carries BOSH, OPTIONS answers CORS preflights."""

    isLeaf = True

    def __init__(self, manager: BoshManager) -> None:
        super().__init__()
        self.manager = manager
        self.frontend = manager.frontend

    def render_OPTIONS(self, request: server.Request) -> bytes:
        self.frontend.cors(request, preflight=True)
        request.setResponseCode(204)
        return b""

    def render_GET(self, request: server.Request) -> bytes:
        self.frontend.cors(request)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"BOSH (XEP-0124, XEP-0206): POST a <body/> here.\n"

    def render_POST(self, request: server.Request) -> Any:
        self.frontend.cors(request)
        secure = self.frontend.isSecure(request)
        data = request.content.read()
        limits = self.frontend.limits
        try:
            attrs, payloads = parseBody(data, limits.maxStanzaSize, limits.maxDepth)
        except BadBody as e:
            self.manager.badBody(request, e, secure)
            return server.NOT_DONE_YET
        self.manager.handle(request, attrs, payloads, secure, len(data))
        return server.NOT_DONE_YET
