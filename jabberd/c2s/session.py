"""
A client session: stream negotiation (RFC 6120 §4-§7) and the bound session.

The session speaks XMPP and knows nothing of framing: a L{Link} (a TCP
stream, later a BOSH or WebSocket session) feeds it parsed events and
carries what it sends.  So TLS, SASL, bind and every stanza rule are the
same code whatever the transport.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.c2s import sasl
from jabberd.xmlstream import (
    NS_CLIENT,
    NS_STREAMS,
    NS_XML,
    STANZA_NAMES,
    StreamError,
    errorReply,
    iqResult,
    serialize,
    serializeStreamElement,
    streamErrorElement,
)

if TYPE_CHECKING:
    from jabberd.bus import EventBus
    from jabberd.router import Router
    from jabberd.sessions import SessionManager

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_COMPRESS_FEATURE = "http://jabber.org/features/compress"
NS_COMPRESS = "http://jabber.org/protocol/compress"

# Negotiation states, in order.
EXPECT_HEADER, NEGOTIATING, BOUND, CLOSED = range(4)

# RFC 6120 §4.7.5: "major.minor", each a non-negative integer.
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)")
# RFC 6120 §8.2.3.
IQ_TYPES = frozenset(("get", "set", "result", "error"))


class Link(Protocol):
    """What a transport offers a session."""

    secure: bool

    def sendHeader(self, attrs: dict[str, str]) -> None: ...

    def sendBytes(self, data: bytes) -> None: ...

    def sendFooter(self) -> None: ...

    def close(self) -> None: ...

    def canStartTLS(self) -> bool: ...

    def startTLS(self, host: str) -> None: ...

    def restart(self) -> None: ...

    def channelBindings(self) -> dict[str, bytes]: ...

    def peerCertificate(self) -> Any: ...

    def canCompress(self) -> bool:
        """Whether XEP-0138 zlib may be started now (enabled here, not yet on)."""
        ...

    def startCompression(self) -> None:
        """Compress both directions from now on and expect a new stream header."""
        ...


@dataclass
class C2SContext:
    """Everything client sessions share, built once by the service."""

    hosts: set[str]
    router: Router
    sessions: SessionManager
    bus: EventBus
    lookupCredentials: Any  # (host, username) -> Deferred[dict | None]
    reactor: IReactorTime
    requireTLS: bool = True
    authTimeout: float = 30.0
    maxAuthAttempts: int = 3
    allowedMechanisms: tuple[str, ...] = ()
    anonymousHosts: set[str] = field(default_factory=set)
    registrationHosts: set[str] = field(default_factory=set)
    externalUsernames: Any = None  # cert -> list[str], when EXTERNAL is on
    #: every open session, negotiating or bound, whatever its transport: what
    #: a stopping server sends <system-shutdown/> to (bound sessions alone
    #: are in the SessionManager)
    streams: set[ClientSession] = field(default_factory=set)
    #: jabberd.limits.AuthThrottle: delays the answer to repeated SASL failures
    authThrottle: Any = None


class ClientSession:
    """One client's stream from the first header to the end of its session."""

    log = Logger()

    __slots__ = (
        "ctx",
        "link",
        "state",
        "host",
        "streamId",
        "lang",
        "authenticated",
        "username",
        "mechanism",
        "authFailures",
        "headerSent",
        "timer",
        "jid",
        "bareJID",
        "resource",
        "available",
        "priority",
        "presence",
        "interested",
        "directed",
        "data",
        "_jidString",
        "_saslAccount",
        "_throttled",
        "__weakref__",
    )

    def __init__(self, ctx: C2SContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        self.state = EXPECT_HEADER
        self.host: str = ""
        self.streamId = ""
        self.lang = "en"
        self.authenticated = False
        self.username: str | None = None
        self.mechanism: sasl.Mechanism | None = None
        self.authFailures = 0
        self.headerSent = False
        self.jid: J.JID | None = None
        self.bareJID = ""
        self.resource = ""
        # Presence state, kept here because the hot path reads it.
        self.available = False
        self.priority = 0
        self.presence: domish.Element | None = None
        self.interested = False
        self.directed: set[str] | None = None
        self.data: dict[str, Any] = {}  # per-session state owned by modules
        self._jidString = ""
        #: (host, username) the current SASL exchange is for, when known
        self._saslAccount: tuple[str, str] | None = None
        #: a SASL failure waiting out the guessing throttle (a DelayedCall)
        self._throttled: Any = None
        self.timer: IDelayedCall | None = ctx.reactor.callLater(ctx.authTimeout, self._authTimeout)
        ctx.streams.add(self)

    def __repr__(self) -> str:
        return f"<ClientSession {self._jidString or self.host or '?'}>"

    # -- events from the link -------------------------------------------------

    def streamStarted(self, attrs: dict) -> None:
        """
        A stream header arrived (first, or after a TLS/SASL restart).

        Our header goes out first whatever is wrong with theirs: RFC 6120
        §4.9.1.2 wants a stream error inside a stream even when the header
        caused it.
        """
        qname = attrs.get("__qname__")
        to = attrs.get("to", "")
        self.lang = attrs.get((NS_XML, "lang")) or self.lang
        try:
            host = J.prepDomain(to) if to else ""
        except J.InvalidJID:
            host = ""
        if host in self.ctx.hosts and not self.host:
            self.host = host
        self._sendHeader(attrs.get("from"))
        if qname != (NS_STREAMS, "stream"):
            raise StreamError("invalid-namespace", "the root element must be stream:stream")
        if attrs.get("__default_ns__") != NS_CLIENT:
            raise StreamError("invalid-namespace", "the default namespace must be jabber:client")
        if not to:
            raise StreamError("host-unknown", "the stream header must name the server in 'to'")
        if host not in self.ctx.hosts or (self.host and host != self.host):
            raise StreamError("host-unknown", f"this server does not serve {to}")
        # RFC 6120 §4.7.5: no version means 0.9 (pre-XMPP 1.0, no SASL);
        # a major version other than 1 is a protocol we do not speak.
        match = _VERSION.fullmatch(attrs.get("version", ""))
        if match is None or int(match.group(1)) != 1:
            raise StreamError("unsupported-version", "XMPP 1.0 is required")
        self.state = NEGOTIATING if not self.authenticated or self.jid is None else BOUND
        self.link.sendBytes(serializeStreamElement(self._features()))

    def elementReceived(self, element: domish.Element) -> None:
        """A complete top-level element arrived."""
        if self.state == BOUND:
            self._stanza(element)
        elif self.state == NEGOTIATING:
            self._negotiate(element)

    def streamEnded(self) -> None:
        """The client closed its stream: close ours (RFC 6120 §4.4)."""
        if self.state != CLOSED:
            self._close()

    def connectionLost(self) -> None:
        """The transport is gone, cleanly or not: end the session."""
        self._ended()

    def _close(self) -> None:
        """Send our closing tag, end the session and close the transport."""
        self.link.sendFooter()
        self._ended()
        self.link.close()

    def _ended(self) -> None:
        """
        The session is over as soon as our closing tag is out, not when the
        transport finally reports the connection lost (TLS waits for the
        peer's close_notify): from here on, stanzas for this resource must be
        routed as for an offline one, never handed to a dead stream.
        """
        self.state = CLOSED
        self.mechanism = None
        self.ctx.streams.discard(self)
        if self._throttled is not None and self._throttled.active():
            self._throttled.cancel()
        self._throttled = None
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.jid is not None:
            self.ctx.sessions.unbind(self)

    def streamError(self, error: StreamError) -> None:
        """The link or a handler found a stream-level problem: report and close."""
        self.terminate(error.condition, error.text, error.appCondition)

    # -- output ---------------------------------------------------------------

    def deliver(self, stanza: domish.Element) -> None:
        """Send a routed stanza to this client."""
        if self.state == BOUND:
            self.link.sendBytes(serialize(stanza))

    def send(self, element: domish.Element) -> None:
        """Send any element on this stream (negotiation, errors)."""
        if self.state != CLOSED:
            self.link.sendBytes(serialize(element))

    def terminate(self, condition: str, text: str | None = None, appCondition: domish.Element | None = None) -> None:
        """Send a stream error and close the stream (RFC 6120 §4.9)."""
        if self.state == CLOSED:
            return
        if not self.headerSent:
            self._sendHeader()
        self.state = CLOSED
        self.link.sendBytes(serializeStreamElement(streamErrorElement(condition, text, appCondition)))
        self._close()

    def _sendHeader(self, peer: str | None = None) -> None:
        """
        Send our stream header with a fresh id (every restart gets a new one).

        C{peer} is the client's C{from}; RFC 6120 §4.7.2 asks to echo it as
        C{to} when it is a JID.
        """
        # RFC 6120 §4.7.3: unpredictable and non-repeating; 128 random bits.
        self.streamId = secrets.token_urlsafe(16)
        attrs = {"id": self.streamId, "version": "1.0", "xml:lang": "en"}
        if self.host:
            attrs["from"] = self.host
        if peer:
            try:
                attrs["to"] = J.parse(peer).full()
            except J.InvalidJID:
                pass
        self.headerSent = True
        self.link.sendHeader(attrs)

    # -- negotiation ----------------------------------------------------------

    def _features(self) -> domish.Element:
        features = domish.Element((NS_STREAMS, "features"))
        # XEP-0170: TLS, then SASL, then bind; TLS is never offered over SASL.
        if not self.authenticated and not self.link.secure and self.link.canStartTLS():
            starttls = features.addElement((NS_TLS, "starttls"))
            if self.ctx.requireTLS:
                starttls.addElement("required")
                return features
        if not self.authenticated:
            mechanisms = self._mechanisms()
            if mechanisms:
                element = features.addElement((NS_SASL, "mechanisms"))
                for name in mechanisms:
                    element.addElement("mechanism", content=name)
                cbTypes = sasl.channelBindingTypes(self._saslContext(mechanisms))
                if cbTypes:
                    cb = features.addElement((NS_SASL_CB, "sasl-channel-binding"))
                    for cbType in cbTypes:
                        cb.addElement("channel-binding")["type"] = cbType
            if self.host in self.ctx.registrationHosts:
                features.addElement(("http://jabber.org/features/iq-register", "register"))
            self.ctx.bus.notify(B.event("stream-features-preauth"), self, features)
        elif self.jid is None:
            features.addElement((NS_BIND, "bind"))
            features.addElement((NS_SESSION, "session")).addElement("optional")
            # XEP-0138 after TLS and SASL, before bind (XEP-0170); only where
            # the listener enables it (compression under TLS leaks, §9).
            if self.link.canCompress():
                features.addElement((NS_COMPRESS_FEATURE, "compression")).addElement("method", content="zlib")
            self.ctx.bus.notify(B.STREAM_FEATURES, self, features)
        return features

    def _mechanisms(self) -> list[str]:
        ctx = self._saslContext([])
        names = sasl.available(ctx, allowPlain=True, allowAnonymous=self.host in self.ctx.anonymousHosts)
        return [n for n in names if self._allowed(n)]

    def _saslContext(self, offered: list[str]) -> sasl.SASLContext:
        host = self.host

        def lookup(username: str):
            return self.ctx.lookupCredentials(host, username)

        return sasl.SASLContext(
            host=host,
            lookup=lookup,
            channelBindings=self.link.channelBindings() if self.link.secure else {},
            offeredMechanisms=offered,
            tlsActive=self.link.secure,
            peerCertificate=self.link.peerCertificate() if self.ctx.externalUsernames else None,
            externalUsernames=self.ctx.externalUsernames,
        )

    def _negotiate(self, element: domish.Element) -> None:
        uri, name = element.uri, element.name
        if uri == NS_TLS and name == "starttls":
            self._startTLS()
        elif uri == NS_SASL:
            self._sasl(element)
        elif uri == NS_COMPRESS and name == "compress":
            self._compress(element)
        elif uri == NS_CLIENT and name == "iq" and self.authenticated:
            self._bindOrSession(element)
        elif uri == NS_CLIENT and name in STANZA_NAMES:
            if not self.authenticated and name == "iq" and self._preauthIQ(element):
                return
            raise StreamError("not-authorized", "authenticate first")
        else:
            raise StreamError("unsupported-stanza-type", f"unexpected {name} in negotiation")

    def _preauthIQ(self, iq: domish.Element) -> bool:
        if self.ctx.requireTLS and not self.link.secure:
            return False
        payload = next(iq.elements(), None)
        if payload is None or iq.getAttribute("type") not in ("get", "set"):
            return False
        return self.ctx.bus.fire(B.iq(iq["type"], "preauth", payload.uri, payload.name), self, iq)

    def _startTLS(self) -> None:
        # RFC 6120 §5.4.3.2: failure, then close.  TLS goes under SASL, never
        # over it, so it is also refused once authenticated.
        if self.link.secure or self.authenticated or not self.link.canStartTLS():
            self.send(domish.Element((NS_TLS, "failure")))
            self._close()
            return
        self.send(domish.Element((NS_TLS, "proceed")))
        self.state = EXPECT_HEADER
        self.link.startTLS(self.host)

    def _compress(self, element: domish.Element) -> None:
        # XEP-0138 §3: a failure is not a stream error; the client may go on
        # uncompressed.  Not offered here (disabled, before SASL, already
        # on) is "unworkable": setup-failed.
        failure = domish.Element((NS_COMPRESS, "failure"))
        if not self.authenticated or self.jid is not None or not self.link.canCompress():
            failure.addElement("setup-failed")
            self.send(failure)
            return
        methods = [str(m).strip() for m in element.elements(NS_COMPRESS, "method")]
        if methods != ["zlib"]:
            failure.addElement("unsupported-method")
            self.send(failure)
            return
        # <compressed/> is the last uncompressed byte; the client then opens
        # a new, compressed stream.
        self.send(domish.Element((NS_COMPRESS, "compressed")))
        self.state = EXPECT_HEADER
        self.link.startCompression()

    def _sasl(self, element: domish.Element) -> None:
        if self.authenticated:
            raise StreamError("policy-violation", "already authenticated")
        if self._throttled is not None:
            # A client waits for the answer to its attempt before the next.
            raise StreamError("policy-violation", "wait for the answer to the last authentication attempt")
        if self.ctx.requireTLS and not self.link.secure and self.link.canStartTLS():
            self._saslFailure("encryption-required", "STARTTLS first")
            return
        name = element.name
        if name == "auth":
            if self.mechanism is not None:
                self._saslFailure("aborted", "an exchange is already in progress")
                return
            offered = self._mechanisms()
            mechName = element.getAttribute("mechanism", "")
            if mechName not in offered:
                if mechName == "PLAIN" and not self.link.secure and self._allowed("PLAIN"):
                    # Known and allowed, just not here: say why (RFC 6120 §6.5.3).
                    self._saslFailure("encryption-required", "PLAIN needs TLS")
                else:
                    self._saslFailure("invalid-mechanism", None)
                return
            try:
                mechanism = sasl.create(mechName, self._saslContext(offered))
                initial = self._decode(element)
            except sasl.SASLFailure as f:
                self._saslFailure(f.condition, f.text)
                return
            self.mechanism = mechanism
            self._saslAccount = _accountOf(self.host, mechName, initial)
            d = mechanism.start(initial)
        elif name == "response" and self.mechanism is not None:
            mechanism = self.mechanism
            try:
                data = self._decode(element)
            except sasl.SASLFailure as f:
                self._saslFailure(f.condition, f.text)
                return
            d = mechanism.step(data if data is not None else b"")
        elif name == "abort":
            self._saslFailure("aborted", None)
            return
        else:
            # A <response/> without an exchange, or an element a client never
            # sends (<success/>, <challenge/>): a malformed exchange.
            self._saslFailure("malformed-request", f"unexpected <{name}/>")
            return
        d.addCallbacks(self._saslStep, self._saslError, callbackArgs=(mechanism,), errbackArgs=(mechanism,))

    def _allowed(self, mechanism: str) -> bool:
        allowed = self.ctx.allowedMechanisms
        return not allowed or mechanism in allowed

    @staticmethod
    def _decode(element: domish.Element) -> bytes | None:
        text = str(element).strip()
        if not text:
            return None  # no initial response
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise sasl.SASLFailure("incorrect-encoding", "invalid base64") from None

    def _saslStep(self, step: sasl.Challenge | sasl.Success, mechanism: sasl.Mechanism) -> None:
        # An answer for an exchange that was aborted, failed or replaced
        # while the store was being asked is dropped: it must not
        # authenticate nor challenge the current one.
        if self.state == CLOSED or mechanism is not self.mechanism:
            return
        if isinstance(step, sasl.Challenge):
            challenge = domish.Element((NS_SASL, "challenge"))
            challenge.addContent(base64.b64encode(step.data).decode() if step.data else "=")
            self.send(challenge)
            return
        self.mechanism = None
        self.authenticated = True
        self.username = step.username
        if self.ctx.authThrottle is not None:
            self.ctx.authThrottle.succeeded((self.host, step.username))
        success = domish.Element((NS_SASL, "success"))
        if step.data:
            success.addContent(base64.b64encode(step.data).decode())
        self.send(success)
        self.state = EXPECT_HEADER
        self.link.restart()

    def _saslError(self, failure: Failure, mechanism: sasl.Mechanism) -> None:
        if self.state == CLOSED or mechanism is not self.mechanism:
            return
        if failure.check(sasl.SASLFailure):
            self._saslFailure(failure.value.condition, failure.value.text)
        else:
            self.log.failure("SASL exchange failed", failure)
            self._saslFailure("temporary-auth-failure", "the account store is unavailable")

    def _saslFailure(self, condition: str, text: str | None) -> None:
        account = self._saslAccount
        if self.mechanism is not None and account is None:
            # SCRAM learns the username from its first message.
            name = getattr(self.mechanism, "_username", None)
            account = (self.host, name) if name else None
        self.mechanism = None
        self._saslAccount = None
        throttle = self.ctx.authThrottle
        if throttle is not None and condition in _GUESSES:
            # Guessing: answer later, the more so the more failures this
            # address or account had lately (docs/security.md).  Nothing
            # waits in the reactor but one DelayedCall.
            address = getattr(self.link, "peerAddress", None)
            delay = throttle.failed(address, account, self.ctx.reactor.seconds())
            if delay > 0:
                self._throttled = self.ctx.reactor.callLater(delay, self._sendSaslFailure, condition, text)
                return
        self._sendSaslFailure(condition, text)

    def _sendSaslFailure(self, condition: str, text: str | None) -> None:
        self._throttled = None
        if self.state == CLOSED:
            return
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(condition)
        if text:
            failure.addElement("text", content=text)
        self.send(failure)
        if condition not in ("aborted", "temporary-auth-failure"):
            self.authFailures += 1
        if self.authFailures >= self.ctx.maxAuthAttempts:
            # RFC 6120 §6.4.5: too many retries end the stream, with
            # policy-violation.
            self.terminate("policy-violation", "too many failed authentication attempts")

    def _bindOrSession(self, iq: domish.Element) -> None:
        payload = next(iq.elements(), None)
        if self.jid is None and payload is not None and payload.uri == NS_BIND and payload.name == "bind" and iq.getAttribute("type") == "set":
            self._bind(iq, payload)
        elif self.jid is None:
            raise StreamError("not-authorized", "bind a resource first")
        else:
            self._stanza(iq)

    def _bind(self, iq: domish.Element, bind: domish.Element) -> None:
        requested = None
        for child in bind.elements(NS_BIND, "resource"):
            requested = str(child).strip() or None
        if requested is not None:
            try:
                resource = J.prepResource(requested)
            except J.InvalidJID:
                self.send(errorReply(iq, "bad-request", "invalid resource"))
                return
        else:
            resource = secrets.token_hex(8)
        assert self.username is not None
        self.jid = J.parse(f"{self.username}@{self.host}/{resource}")
        self.bareJID = f"{self.username}@{self.host}"
        self.resource = resource
        self._jidString = self.jid.full()
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.state = BOUND
        reply = iqResult(iq)
        reply.addElement((NS_BIND, "bind")).addElement("jid", content=self._jidString)
        # The client learns its JID before anything can be routed to it: the
        # session is registered (and an old one with the same resource gets
        # <conflict/>, RFC 6120 §7.7.2.2) only after the result is out.
        self.send(reply)
        self.ctx.sessions.bind(self)

    # -- the bound session --------------------------------------------------

    def _stanza(self, stanza: domish.Element) -> None:
        name = stanza.name
        if stanza.uri != NS_CLIENT or name not in STANZA_NAMES:
            raise StreamError("unsupported-stanza-type", f"{name} is not a stanza")
        sender = stanza.getAttribute("from")
        if sender is not None and sender != self._jidString:
            try:
                given = J.parse(sender)
            except J.InvalidJID:
                raise StreamError("invalid-from", "malformed 'from'") from None
            if given.userhost() != self.bareJID or (given.resource is not None and given.resource != self.resource):
                raise StreamError("invalid-from", "'from' does not match this session")
        stanza["from"] = self._jidString
        if self.lang != "en" and stanza.getAttribute((NS_XML, "lang")) is None:
            stanza[(NS_XML, "lang")] = self.lang
        if name == "iq":
            iqType = stanza.getAttribute("type")
            if iqType not in IQ_TYPES or (stanza.getAttribute("id") is None and iqType != "error"):
                # RFC 6120 §8.2.3: id and one of the four types are required;
                # an error is never answered with an error.
                self.send(errorReply(stanza, "bad-request", "an iq needs an id and a type"))
                return
            payload = next(stanza.elements(), None) if iqType in ("get", "set") else None
            if payload is not None and payload.uri == NS_SESSION and payload.name == "session":
                reply = iqResult(stanza)
                del reply["to"]
                self.send(reply)
                return
        if stanza.getAttribute("to") is None:
            if name == "presence":
                self.ctx.bus.fire(B.presence("outbound"), stanza, self)
                return
            stanza["to"] = self.bareJID
        elif name == "presence" and self.ctx.bus.fire(B.presence("directed"), stanza, self):
            # Any presence with a 'to' (directed, or a subscription request or
            # answer): the presence module does the sender-side processing.
            return
        self.ctx.router.route(stanza)

    def _authTimeout(self) -> None:
        self.timer = None
        self.terminate("connection-timeout", "authentication took too long")


#: SASL failure conditions that may mean a guessed password (RFC 6120 §6.5):
#: what the throttle slows down.
_GUESSES = frozenset(("not-authorized", "credentials-expired", "account-disabled", "invalid-authzid"))


def _accountOf(host: str, mechanism: str, initial: bytes | None) -> tuple[str, str] | None:
    """The account a PLAIN initial response names (authcid), for the throttle; None if unreadable."""
    if mechanism != "PLAIN" or not initial:
        return None
    parts = initial.split(b"\0")
    if len(parts) != 3:
        return None
    try:
        return (host, J.prepNode(parts[1].decode("utf-8")))
    except (UnicodeDecodeError, J.InvalidJID, ValueError):
        return None
