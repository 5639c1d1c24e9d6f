"""
Server-to-server streams (RFC 6120): the receiving side (L{InboundStream})
and the initiating side (L{OutboundStream}).

An s2s stream only ever runs over TCP, so unlike c2s the framing (bytes in
through the parser, bytes out) and the XMPP logic are one class per side,
sharing L{ServerStream}.  What outlives a connection (the queue, the
routes, dialback verification across streams) lives in
L{jabberd.s2s.federation.Federation}, which every stream reaches as
C{self.fed}.

Namespaces: s2s streams are C{jabber:server}.  Stanzas arriving are
renamed to C{jabber:client} (with their children in that default
namespace) before they are routed, so the rest of the server sees one
namespace.  Stanzas leaving are serialised with C{jabber:client} as the
serialiser's default: a C{jabber:client} element is then written without
an C{xmlns}, which on this stream means C{jabber:server}, while a
C{jabber:client} element nested in another namespace (a forwarded
message) keeps its explicit declaration, as it must.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import implementer

from jabberd import jid as J
from jabberd.s2s import certs
from jabberd.s2s.dialback import NS_DB, NS_DB_FEATURE, dbElement, dbError, errorCondition
from jabberd.xmlstream import (
    NS_CLIENT,
    NS_SERVER,
    NS_STREAMS,
    STANZA_NAMES,
    StreamError,
    StreamParser,
    streamErrorElement,
)

if TYPE_CHECKING:
    from jabberd.s2s.federation import Federation, Route

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIDI = "urn:xmpp:bidi"
NS_BIDI_FEATURE = "urn:xmpp:features:bidi"

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams'"
)

_PREFIXES = {NS_STREAMS: "stream", NS_DB: "db"}

#: log every byte in and out (debugging interop; never on by default)
LOG_TRAFFIC = False

#: dialback requests one incoming stream may have waiting for their
#: authoritative server at once; more get <resource-constraint/>
MAX_PENDING_DIALBACK = 100

#: seconds to wait for the peer's closing tag (and TLS close) before cutting the connection
CLOSE_TIMEOUT = 5.0


def toBytes(element: domish.Element) -> bytes:
    """Serialise anything sent on an s2s stream (see the module docstring)."""
    return element.toXml(prefixes=_PREFIXES, defaultUri=NS_CLIENT, prefixesInScope=[["stream", "db"]]).encode("utf-8")


def normalize(element: domish.Element) -> None:
    """Rename C{jabber:server} to C{jabber:client} in a received stanza, in place."""
    if element.uri == NS_SERVER:
        element.uri = NS_CLIENT
    if element.defaultUri == NS_SERVER:
        element.defaultUri = NS_CLIENT
    for child in element.children:
        if isinstance(child, domish.Element):
            normalize(child)


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


def _domain(value: str | None) -> str | None:
    """A domain from the wire, prepared as JIDs are; None if missing or malformed."""
    if not value:
        return None
    try:
        jid = J.parse(value)
    except J.InvalidJID:
        return None
    if jid.user is not None or jid.resource is not None:
        return None
    return jid.host


@implementer(IPushProducer)
class ServerStream(Protocol):
    """
    What both sides share: parser, output, TLS facts, closing, idle timeout.

    Each stream is the push producer of its own transport, so Twisted tells
    it when the bytes waiting to go out pass the transport's buffer size
    (64 KiB) and when they have drained: while they wait (L{writable} is
    false) the outgoing side keeps stanzas in the route's bounded queue
    instead of the transport, the incoming side stops reading (nothing it
    would answer can go out), and a peer that leaves our output unread for
    C{s2s.send_timeout} seconds loses the link.
    """

    log = Logger()
    kind = "s2s"

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.parser: StreamParser | None = None
        self.secure = False
        self.closing = False
        self.headerSent = False
        self.streamId = ""
        self._cert: certs.PeerCertificate | None = None
        self.lastActivity = 0.0
        self._idleTimer: IDelayedCall | None = None
        self._closeTimer: IDelayedCall | None = None
        self.writable = True  # what we write is being read: the transport's buffer is below its size
        self._stallTimer: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        return "?"

    # -- input ----------------------------------------------------------------

    def connectionMade(self) -> None:
        self.fed.streams.add(self)
        self.transport.registerProducer(self, True)
        self.newParser()
        self.touch()
        self.started()

    def started(self) -> None:
        """The connection is up (subclasses send or wait for a header)."""

    def newParser(self) -> None:
        if self.parser is not None:
            self.parser.stop()
        self.parser = StreamParser(
            self.onStart, self.onElement, self.onEnd, self.fed.config.stanza_size_limit, self.fed.maxDepth
        )

    def dataReceived(self, data: bytes) -> None:
        if self.closing or self.parser is None:
            return
        if LOG_TRAFFIC:
            self.log.debug("{stream} RECV {data!r}", stream=self, data=data)
        try:
            self.parser.feed(data)
        except StreamError as e:
            self.terminate(e.condition, e.text)
        except Exception:
            self.log.failure("unexpected error on {stream}", stream=self)
            self.terminate("internal-server-error")

    def onStart(self, attrs: dict) -> None:
        raise NotImplementedError

    def onElement(self, element: domish.Element) -> None:
        raise NotImplementedError

    def onEnd(self) -> None:
        """The peer closed its stream: close ours (RFC 6120 §4.4)."""
        self.close()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closing = True
        if self.parser is not None:
            self.parser.stop()
            self.parser = None
        for timer in (self._idleTimer, self._closeTimer, self._stallTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._idleTimer = self._closeTimer = self._stallTimer = None
        self.fed.streamGone(self)
        self.ended()

    def ended(self) -> None:
        """The connection is gone (subclasses tell the federation)."""

    # -- output ---------------------------------------------------------------

    def sendHeader(self, attrs: dict[str, str]) -> None:
        if self.closing:
            return
        parts = [HEADER]
        for key, value in attrs.items():
            parts.append(f" {key}='{_escape(value)}'")
        parts.append(">")
        self.headerSent = True
        self.write("".join(parts).encode("utf-8"))

    def send(self, element: domish.Element) -> None:
        if not self.closing:
            self.write(toBytes(element))

    def write(self, data: bytes) -> None:
        if LOG_TRAFFIC:
            self.log.debug("{stream} SEND {data!r}", stream=self, data=data)
        self.transport.write(data)

    def terminate(self, condition: str, text: str | None = None) -> None:
        """Send a stream error and close (RFC 6120 §4.9)."""
        if self.closing:
            return
        self.log.info("{stream}: stream error {condition} ({text})", stream=self, condition=condition, text=text or "")
        if not self.headerSent:
            self.sendHeader(self.errorHeader())
        self.send(streamErrorElement(condition, text))
        self.close()

    def errorHeader(self) -> dict[str, str]:
        return {"version": "1.0"}

    def close(self) -> None:
        """Send our closing tag, stop reading, and close the connection."""
        if self.closing:
            return
        if self.headerSent:
            self.write(b"</stream:stream>")
        self.closing = True
        if self.parser is not None:
            self.parser.stop()
        self.closed()
        # A registered producer keeps the connection open until it leaves.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._closeTimer = self.fed.reactor.callLater(CLOSE_TIMEOUT, self._abort)

    def closed(self) -> None:
        """We have closed the stream; nothing more can be sent (subclasses detach)."""

    def _abort(self) -> None:
        timer, self._closeTimer = self._closeTimer, None
        if timer is not None and timer.active():
            timer.cancel()
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()

    # -- flow control (IPushProducer, called by the transport) -------------------

    def pauseProducing(self) -> None:
        """The transport holds more than its buffer size: stop adding to it."""
        if not self.writable:
            return
        self.writable = False
        if not self.closing and self._stallTimer is None:
            self._stallTimer = self.fed.reactor.callLater(self.fed.config.send_timeout, self._stalled)
        self.stalled()

    def resumeProducing(self) -> None:
        """The peer read what waited: go on."""
        if self.writable:
            return
        self.writable = True
        if self._stallTimer is not None and self._stallTimer.active():
            self._stallTimer.cancel()
        self._stallTimer = None
        if not self.closing:
            self.drained()

    def stopProducing(self) -> None:
        """The connection is going; connectionLost does the cleaning up."""

    def stalled(self) -> None:
        """Output stopped draining (subclasses hold back)."""

    def drained(self) -> None:
        """Output drains again (subclasses go on)."""

    def _stalled(self) -> None:
        """The peer has not read our output for send_timeout: give up on the link now."""
        self._stallTimer = None
        if self.closing:
            return
        self.log.info("{stream}: the peer read nothing for {timeout} s, closing", stream=self, timeout=self.fed.config.send_timeout)
        self.timedOut()
        self.terminate("connection-timeout", "you stopped reading")
        # The error cannot get through a full buffer: nothing to wait for.
        self._abort()

    def timedOut(self) -> None:
        """The link is closed for not reading (subclasses set the bounce condition)."""

    # -- TLS and identity -----------------------------------------------------

    def certificate(self) -> certs.PeerCertificate:
        """The peer's certificate and what it proves (computed once, after the handshake)."""
        if self._cert is None:
            self._cert = certs.PeerCertificate.of(self.fed.trust, self.transport)
        return self._cert

    # -- idle -----------------------------------------------------------------

    def touch(self) -> None:
        """A stanza went through: the stream is not idle."""
        self.lastActivity = self.fed.reactor.seconds()
        idle = self.fed.config.idle_timeout
        if idle and self._idleTimer is None and not self.closing:
            self._idleTimer = self.fed.reactor.callLater(idle, self._idleCheck)

    def _idleCheck(self) -> None:
        self._idleTimer = None
        if self.closing:
            return
        idle = self.fed.config.idle_timeout
        left = self.lastActivity + idle - self.fed.reactor.seconds()
        if left > 0:
            self._idleTimer = self.fed.reactor.callLater(left, self._idleCheck)
            return
        self.log.info("{stream}: idle for {idle} s, closing", stream=self, idle=idle)
        self.close()

    # -- stanzas from the peer ------------------------------------------------

    def acceptStanza(self, stanza: domish.Element, pairs: Collection[tuple[str, str]]) -> None:
        """
        Route a stanza the peer sent, if it may: its C{from} and C{to}
        domains must be a pair authenticated on this stream (XEP-0220
        authenticates a sender domain for one target domain at a time, so
        a peer authenticated for b.example cannot write to c.example before
        it asked for that pair too); else the stream error that says which
        is wrong.
        """
        if stanza.uri != NS_SERVER or stanza.name not in STANZA_NAMES:
            raise StreamError("unsupported-stanza-type", f"{stanza.name} is not a stanza")
        if not pairs:
            raise StreamError("not-authorized", "authenticate first")
        sender, to = stanza.getAttribute("from"), stanza.getAttribute("to")
        if not sender or not to:
            raise StreamError("improper-addressing", "stanzas between servers need 'from' and 'to'")
        try:
            fromJID = J.parse(sender)
        except J.InvalidJID:
            raise StreamError("invalid-from", "malformed 'from'") from None
        try:
            toJID = J.parse(to)
        except J.InvalidJID:
            raise StreamError("improper-addressing", "malformed 'to'") from None
        if (fromJID.host, toJID.host) not in pairs:
            if not any(sender == fromJID.host for sender, _ in pairs):
                raise StreamError("invalid-from", f"{fromJID.host} is not authenticated on this stream")
            if not self.fed.serves(toJID.host):
                raise StreamError("host-unknown", f"{toJID.host} is not served here")
            raise StreamError("invalid-from", f"{fromJID.host} is not authenticated for {toJID.host} on this stream")
        normalize(stanza)
        self.touch()
        self.fed.router.route(stanza)


# -- the receiving side -----------------------------------------------------------


class InboundStream(ServerStream):
    """
    A stream a peer opened to us: we are the receiving server for dialback
    requests and SASL, and the authoritative server for verification requests.
    """

    kind = "s2s-in"

    def __init__(self, fed: Federation, directTLS: bool = False) -> None:
        super().__init__(fed)
        self.secure = directTLS
        self.local = ""  # our domain, the stream's 'to'
        self.peer: str | None = None  # the stream's 'from', when given
        #: (remote, local) domain pairs the peer may send stanzas for -> how the
        #: remote domain authenticated: "sasl", "certificate" or "dialback"
        self.pairs: dict[tuple[str, str], str] = {}
        self.pending: set[tuple[str, str]] = set()  # (remote, local) dialback requests being checked
        self.sasl = False
        self.legacy = False
        self._authTimer: IDelayedCall | None = None
        self.address = ""  # the peer's IP address, counted in fed.perAddress
        self._counted = False

    def describe(self) -> str:
        return f"from {self.peer or '?'} to {self.local or '?'}"

    def started(self) -> None:
        self.address = getattr(self.transport.getPeer(), "host", "") or ""
        if not self.fed.perAddress.acquire(self.address):
            # Refused after our header (RFC 6120 §4.9.1.2), never read.
            self.log.info("too many server connections from {address}", address=self.address)
            self.terminate("policy-violation", "too many connections from your address")
            return
        self._counted = True
        self._authTimer = self.fed.reactor.callLater(self.fed.config.auth_timeout, self._authTimeout)

    def stalled(self) -> None:
        # Everything the peer sends wants an answer it does not read: stop
        # reading until it does (or send_timeout ends the stream).
        self.transport.pauseProducing()

    def drained(self) -> None:
        self.transport.resumeProducing()

    def _authTimeout(self) -> None:
        self._authTimer = None
        if not self.pairs and not self.closing:
            self.terminate("connection-timeout", "authentication took too long")

    def ended(self) -> None:
        if self._authTimer is not None and self._authTimer.active():
            self._authTimer.cancel()
        self._authTimer = None
        if self._counted:
            self._counted = False
            self.fed.perAddress.release(self.address)
        self.fed.inboundEnded(self)

    def errorHeader(self) -> dict[str, str]:
        attrs = {"id": self.streamId or secrets.token_hex(8), "version": "1.0"}
        if self.local:
            attrs["from"] = self.local
        return attrs

    def onStart(self, attrs: dict) -> None:
        to = _domain(attrs.get("to"))
        if to is not None and not self.local and self.fed.serves(to):
            self.local = to
        peer = attrs.get("from")
        self.streamId = secrets.token_hex(16)
        header = {"id": self.streamId}
        if self.local:
            header["from"] = self.local
        if peer and _domain(peer):
            header["to"] = _domain(peer)  # type: ignore[assignment]
        version = attrs.get("version")
        if version:
            header["version"] = "1.0"
        header["xml:lang"] = "en"
        self.sendHeader(header)
        if attrs.get("__qname__") != (NS_STREAMS, "stream"):
            raise StreamError("invalid-namespace", "the root element must be stream:stream")
        if attrs.get("__default_ns__") != NS_SERVER:
            raise StreamError("invalid-namespace", "the default namespace must be jabber:server")
        if to is None or not self.fed.serves(to) or to != self.local:
            raise StreamError("host-unknown", f"this server does not serve {attrs.get('to') or '(none)'}")
        if peer:
            domain = _domain(peer)
            if domain is None:
                raise StreamError("invalid-from", "'from' must be a domain")
            if self.peer is not None and domain != self.peer:
                raise StreamError("invalid-from", "'from' changed on a stream restart")
            self.peer = domain
        if not version:
            # RFC 3920 servers without stream features: dialback only, no TLS.
            self.legacy = True
            if self.fed.config.require_tls and not self.secure:
                raise StreamError("policy-violation", "TLS is required (XMPP 1.0 streams)")
            return
        if not version.startswith("1."):
            raise StreamError("unsupported-version", "XMPP 1.0 is required")
        self.send(self._features())

    def _features(self) -> domish.Element:
        features = domish.Element((NS_STREAMS, "features"))
        config = self.fed.config
        if not self.secure and self.fed.canTLS:
            starttls = features.addElement((NS_TLS, "starttls"))
            if config.require_tls:
                starttls.addElement("required")
                return features
        if not self.pairs and not self.sasl and self.peer and self._certificateFor(self.peer, certs.CLIENT):
            mechanisms = features.addElement((NS_SASL, "mechanisms"))
            mechanisms.addElement("mechanism", content="EXTERNAL")
        if config.dialback:
            features.addElement((NS_DB_FEATURE, "dialback")).addElement("errors")
        return features

    def _certificateFor(self, domain: str, purpose: str) -> bool:
        return self.secure and self.certificate().authenticates(domain, purpose)

    def onElement(self, element: domish.Element) -> None:
        uri, name = element.uri, element.name
        if uri == NS_SERVER:
            self.acceptStanza(element, self.pairs)
        elif uri == NS_DB and name == "result":
            if element.getAttribute("type") is None:
                self._dialbackRequest(element)
        elif uri == NS_DB and name == "verify":
            if element.getAttribute("type") is None:
                self._verifyRequest(element)
        elif uri == NS_TLS and name == "starttls":
            self._startTLS()
        elif uri == NS_SASL and name == "auth":
            self._external(element)
        elif uri == NS_SASL and name == "abort":
            self._saslFailure("aborted")
        else:
            raise StreamError("unsupported-stanza-type", f"unexpected {name}")

    # STARTTLS

    def _startTLS(self) -> None:
        if self.secure or not self.fed.canTLS or self.pairs:
            self.send(domish.Element((NS_TLS, "failure")))
            self.close()
            return
        self.send(domish.Element((NS_TLS, "proceed")))
        self.transport.startTLS(self.fed.serverTLS.serverOptions(self.local))
        self.secure = True
        self.newParser()  # nothing sent in clear after <starttls/> counts

    # SASL EXTERNAL (XEP-0178)

    def _external(self, auth: domish.Element) -> None:
        if self.fed.config.require_tls and not self.secure:
            self._saslFailure("encryption-required")
            return
        if self.pairs or self.sasl:
            raise StreamError("policy-violation", "already authenticated")
        if auth.getAttribute("mechanism") != "EXTERNAL":
            self._saslFailure("invalid-mechanism")
            return
        text = str(auth).strip()
        try:
            authzid = base64.b64decode(text, validate=True).decode("utf-8") if text and text != "=" else ""
        except (binascii.Error, ValueError):
            self._saslFailure("incorrect-encoding")
            return
        domain = _domain(authzid) if authzid else self.peer
        if domain is None or (self.peer is not None and domain != self.peer):
            self._saslFailure("invalid-authzid")
            return
        if not self._certificateFor(domain, certs.CLIENT):
            self._saslFailure("not-authorized")
            return
        self.sasl = True
        self.peer = domain
        self.send(domish.Element((NS_SASL, "success")))
        self._authenticated(domain, self.local, "sasl")
        self.newParser()

    def _saslFailure(self, condition: str) -> None:
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(condition)
        self.send(failure)

    # dialback: we are the receiving server

    def _dialbackRequest(self, request: domish.Element) -> None:
        remote, local = _domain(request.getAttribute("from")), _domain(request.getAttribute("to"))
        if remote is None or local is None:
            raise StreamError("improper-addressing", "db:result needs 'from' and 'to' domains")
        key = str(request).strip()

        def answer(type_: str | None, condition: str | None = None) -> None:
            if condition is not None:
                self.send(dbError("result", local, remote, condition))
            else:
                self.send(dbElement("result", local, remote, type_))

        # Any domain of ours may be asked for, not only the header's 'to':
        # the peer multiplexes its targets (XEP-0220 §2.4.3), each pair
        # authenticated on its own.
        if not self.fed.serves(local):
            if self.legacy:
                # A pre-1.0 peer never saw our <errors/> feature: RFC 3920's stream error.
                raise StreamError("host-unknown", f"this server does not serve {local}")
            answer(None, "item-not-found")  # not fatal: other pairs may be in use
        elif self.fed.config.require_tls and not self.secure:
            answer(None, "policy-violation")
        elif (remote, local) in self.pairs:
            answer("valid")
        elif self._certificateFor(remote, certs.ANY):
            # The TLS certificate already proves who the peer is (XEP-0344).
            self._authenticated(remote, local, "certificate")
            answer("valid")
        elif self.fed.config.require_certificate or not self.fed.config.dialback or not key:
            answer(None, "not-authorized")
        elif len(self.pending) >= MAX_PENDING_DIALBACK and (remote, local) not in self.pending:
            # Each request may cost a connection to its claimed domain.
            answer(None, "resource-constraint")
        elif (remote, local) not in self.pending:
            self.pending.add((remote, local))
            d = self.fed.verifyDialback(local, remote, self.streamId, key)
            d.addCallback(self._verified, remote, local)

    def _verified(self, result: str, remote: str, local: str) -> None:
        """The authoritative server's answer (or our dialback error condition)."""
        self.pending.discard((remote, local))
        if self.closing:
            return
        if result == "valid":
            self._authenticated(remote, local, "dialback")
            self.send(dbElement("result", local, remote, "valid"))
        elif result == "invalid":
            self.log.warn("{stream}: dialback key for {remote} is invalid", stream=self, remote=remote)
            if self.pairs:
                self.send(dbError("result", local, remote, "forbidden"))
            else:
                self.send(dbElement("result", local, remote, "invalid"))
                self.close()
        else:
            self.send(dbError("result", local, remote, result))

    def _authenticated(self, remote: str, local: str, how: str) -> None:
        """The peer may now send stanzas from C{remote} to C{local}."""
        first = not self.pairs
        self.pairs[(remote, local)] = how
        self.fed.unreachable.forget(remote)  # its server is up after all
        if first and self._authTimer is not None and self._authTimer.active():
            self._authTimer.cancel()
            self._authTimer = None
        self.log.info("{stream}: {remote} authenticated for {local} by {how}", stream=self, remote=remote, local=local, how=how)

    # dialback: we are the authoritative server

    def _verifyRequest(self, request: domish.Element) -> None:
        receiving, originating = _domain(request.getAttribute("from")), _domain(request.getAttribute("to"))
        streamId = request.getAttribute("id")
        if receiving is None or originating is None or not streamId:
            raise StreamError("improper-addressing", "db:verify needs 'from', 'to' and 'id'")
        if self.fed.config.require_tls and not self.secure:
            self.send(dbError("verify", originating, receiving, "policy-violation", streamId))
        elif not self.fed.serves(originating):
            self.send(dbError("verify", originating, receiving, "item-not-found", streamId))
        else:
            valid = self.fed.keys.check(str(request), receiving, originating, streamId)
            self.send(dbElement("verify", originating, receiving, "valid" if valid else "invalid", streamId))


# -- the initiating side ----------------------------------------------------------


class OutboundStream(ServerStream):
    """
    A stream we opened to a peer for one remote domain (the L{Route} that
    connected): STARTTLS, then SASL EXTERNAL when both certificates allow
    it, else dialback for each local domain that has something to send
    (sender multiplexing).  Once set up it may carry other domains the
    same peer serves as well, each (local, remote) pair with its own
    dialback request (target multiplexing, L{canCarry}): one connection
    per peer server instead of one per remote domain.
    """

    kind = "s2s-out"

    def __init__(
        self, fed: Federation, route: Route, local: str, directTLS: bool = False, address: tuple[str, int] = ("", 0)
    ) -> None:
        super().__init__(fed)
        self.route = route  # the route that opened it: the header's 'to'
        self.remote = route.domain
        self.routes: dict[str, Route] = {route.domain: route}  # every remote domain carried
        self.local = local  # the stream header's 'from'
        self.peerAddress = address  # the (IP, port) we connected to
        self.secure = directTLS
        self.ready = False  # negotiation is over: db:result / db:verify may be sent
        self.everReady = False
        #: (local, remote) pairs the peer accepts stanzas for -> how: "sasl" or "dialback"
        self.pairs: dict[tuple[str, str], str] = {}
        self.dialbackPending: set[tuple[str, str]] = set()  # (local, remote) pairs asked for
        self.dialback = False  # the peer does dialback
        self.dialbackErrors = False  # ... and announced dialback errors (XEP-0220 §2.4.2)
        self.saslTried = False
        self.peerTrusted = False  # the peer's certificate is valid for its domain
        self.verifies: dict[tuple[str, str, str], list[Any]] = {}  # (local, remote, id) -> Deferreds

    def describe(self) -> str:
        more = f" (+{len(self.routes) - 1})" if len(self.routes) > 1 else ""
        return f"{self.local} to {self.remote}{more}"

    def started(self) -> None:
        self.route.attach(self)
        self.fed.outgoingUp(self)
        self._openStream()

    def _openStream(self) -> None:
        self.sendHeader({"from": self.local, "to": self.remote, "version": "1.0", "xml:lang": "en"})

    def errorHeader(self) -> dict[str, str]:
        return {"from": self.local, "to": self.remote, "version": "1.0"}

    def onStart(self, attrs: dict) -> None:
        if attrs.get("__qname__") != (NS_STREAMS, "stream") or attrs.get("__default_ns__") != NS_SERVER:
            raise StreamError("invalid-namespace", "expected a jabber:server stream")
        self.streamId = attrs.get("id", "")
        if NS_DB in attrs.get("__prefixes__", {}).values():
            self.dialback = True
        if not attrs.get("version"):
            # A pre-XMPP 1.0 server: no features will come, only dialback.
            if self.fed.config.require_tls and not self.secure:
                self.fail("remote-server-timeout", "the peer does not support TLS")
                return
            self._negotiated()

    def onElement(self, element: domish.Element) -> None:
        uri, name = element.uri, element.name
        if uri == NS_STREAMS and name == "features":
            self._features(element)
        elif uri == NS_STREAMS and name == "error":
            condition = next((c.name for c in element.elements() if c.name != "text"), "undefined-condition")
            self.log.info("{stream}: the peer sent stream error {condition}", stream=self, condition=condition)
            self.close()
        elif uri == NS_DB and name == "result":
            self._dialbackResult(element)
        elif uri == NS_DB and name == "verify":
            self._verifyResult(element)
        elif uri == NS_TLS and name == "proceed":
            self.transport.startTLS(self.fed.clientTLS(self.local, self.remote))
            self.secure = True
            self.newParser()
            self._openStream()
        elif uri == NS_TLS and name == "failure":
            self.fail("remote-server-timeout", "STARTTLS failed")
        elif uri == NS_SASL and name == "success":
            # Stanzas wait for the restarted stream's features (_negotiated).
            self.pairs[(self.local, self.remote)] = "sasl"
            self.log.info("{stream}: authenticated by SASL EXTERNAL", stream=self)
            self.newParser()
            self._openStream()
        elif uri == NS_SASL and name == "failure":
            self.log.info("{stream}: SASL EXTERNAL refused", stream=self)
            self._negotiated()
        elif uri == NS_SERVER and name in STANZA_NAMES:
            if self.bidi:
                self.acceptStanza(element, self.bidiRemotes())
            else:
                raise StreamError("unsupported-stanza-type", "stanzas on a stream we initiated need XEP-0288")
        else:
            raise StreamError("unsupported-stanza-type", f"unexpected {name}")

    bidi = False

    def bidiRemotes(self) -> frozenset[tuple[str, str]]:
        return frozenset({(self.remote, self.local)}) if (self.local, self.remote) in self.pairs else frozenset()

    def _features(self, features: domish.Element) -> None:
        config = self.fed.config
        for child in features.elements():
            if child.uri == NS_DB_FEATURE and child.name == "dialback":
                self.dialback = True
                if any(c.name == "errors" for c in child.elements()):
                    self.dialbackErrors = True
        if self.ready:
            return  # features after SASL: nothing more to negotiate
        if not self.secure:
            if self.fed.canTLS and any(c.uri == NS_TLS and c.name == "starttls" for c in features.elements()):
                self.send(domish.Element((NS_TLS, "starttls")))
                return
            if config.require_tls:
                self.fail("remote-server-timeout", "the peer does not offer TLS")
                return
        else:
            self.peerTrusted = self.certificate().authenticates(self.remote, certs.SERVER)
            if config.require_certificate and not self.peerTrusted:
                self.fail("remote-server-timeout", "the peer's certificate is not valid for its domain")
                return
        mechanisms = [
            str(m).strip()
            for c in features.elements()
            if c.uri == NS_SASL and c.name == "mechanisms"
            for m in c.elements()
            if m.name == "mechanism"
        ]
        if "EXTERNAL" in mechanisms and self.peerTrusted and not self.saslTried and self.secure:
            self.saslTried = True
            auth = domish.Element((NS_SASL, "auth"))
            auth["mechanism"] = "EXTERNAL"
            auth.addContent(base64.b64encode(self.local.encode("utf-8")).decode("ascii"))
            self.send(auth)
            return
        self._negotiated()

    def _negotiated(self) -> None:
        if self.ready:
            return
        self.ready = self.everReady = True
        self.route.streamReady(self)
        if (self.local, self.remote) in self.pairs:
            self.route.authenticated(self, self.local)

    # target multiplexing (XEP-0220 §2.4.3)

    def canCarry(self, domain: str) -> bool:
        """
        Whether stanzas to C{domain}, which resolves to the address and port
        this stream is connected to, may go over it rather than a connection
        of their own: the stream is set up, the peer does dialback and
        announced dialback errors (so refusing the new pair does not end
        the stream for the others), and, when we insist on certificates,
        the peer's certificate names C{domain} too.  The pair itself is
        then asked for with a dialback request, as a new connection would.
        """
        config = self.fed.config
        if not (config.multiplex_targets and config.dialback and self.dialback and self.dialbackErrors):
            return False
        if not self.ready or self.closing or domain in self.routes:
            return False
        return not config.require_certificate or self.certificate().authenticates(domain, certs.SERVER)

    def carry(self, route: Route) -> None:
        """Send C{route}'s stanzas over this stream too; its pairs are asked for at once."""
        self.routes[route.domain] = route
        route.attach(self)
        self.log.info("{stream}: carrying {domain} as well", stream=self, domain=route.domain)
        route.streamReady(self)

    def drop(self, route: Route) -> None:
        """C{route} leaves this stream (the peer would not take its domain here)."""
        if self.routes.get(route.domain) is route and route is not self.route:
            del self.routes[route.domain]
            self.dialbackPending = {p for p in self.dialbackPending if p[1] != route.domain}

    # dialback: we are the initiating server

    def authenticate(self, local: str, remote: str) -> None:
        """Ask the peer to accept stanzas from C{local} to C{remote} (dialback, multiplexed)."""
        pair = (local, remote)
        route = self.routes.get(remote)
        if route is None or not self.ready or pair in self.pairs or pair in self.dialbackPending:
            return
        if not self.dialback or not self.fed.config.dialback or (self.fed.config.require_certificate and local != self.local):
            route.authFailed(self, local, "remote-server-timeout")
            return
        self.dialbackPending.add(pair)
        key = self.fed.keys.make(remote, local, self.streamId)
        self.send(dbElement("result", local, remote, key=key))

    def _dialbackResult(self, result: domish.Element) -> None:
        local, remote = _domain(result.getAttribute("to")), _domain(result.getAttribute("from"))
        if local is None or remote is None or (local, remote) not in self.dialbackPending:
            return  # not an answer to anything we asked on this stream (XEP-0220 §4.1)
        self.dialbackPending.discard((local, remote))
        route = self.routes[remote]
        type_ = result.getAttribute("type")
        if type_ == "valid":
            self.pairs[(local, remote)] = "dialback"
            self.log.info("{stream}: {local} authenticated for {remote} by dialback", stream=self, local=local, remote=remote)
            route.authenticated(self, local)
        elif type_ == "invalid":
            route.authFailed(self, local, "remote-server-timeout")
        else:
            condition = errorCondition(result)
            self.log.info(
                "{stream}: dialback error {condition} for {local} to {remote}", stream=self, condition=condition, local=local, remote=remote
            )
            route.authFailed(self, local, "remote-server-timeout")

    def sendVerify(self, local: str, remote: str, streamId: str, key: str, d: Any) -> None:
        """Ask the peer, as authoritative server for C{remote}, whether C{key} is its own."""
        self.verifies.setdefault((local, remote, streamId), []).append(d)
        self.send(dbElement("verify", local, remote, id_=streamId, key=key))

    def _verifyResult(self, answer: domish.Element) -> None:
        local, remote = _domain(answer.getAttribute("to")), _domain(answer.getAttribute("from"))
        waiting = self.verifies.pop((local or "", remote or "", answer.getAttribute("id") or ""), None)
        if not waiting:
            return
        type_ = answer.getAttribute("type")
        result = type_ if type_ in ("valid", "invalid") else errorCondition(answer)
        if result == "item-not-found":
            result = "remote-server-not-found"
        elif result not in ("valid", "invalid"):
            result = "remote-server-timeout"
        for d in waiting:
            if not d.called:
                d.callback(result)

    def sendStanza(self, stanza: domish.Element) -> None:
        self.touch()
        self.send(stanza)

    def drained(self) -> None:
        for route in list(self.routes.values()):
            route.flush(self)

    def timedOut(self) -> None:
        for route in list(self.routes.values()):
            route.streamFailed(self, "remote-server-timeout")

    def fail(self, condition: str, text: str) -> None:
        """Negotiation cannot succeed: close; the route bounces what waits with C{condition}."""
        self.log.info("{stream}: {text}", stream=self, text=text)
        self.route.streamFailed(self, condition)
        self.close()

    def closed(self) -> None:
        for route in list(self.routes.values()):
            route.streamClosed(self)

    def ended(self) -> None:
        self.fed.outgoingGone(self)
        for route in list(self.routes.values()):
            route.streamClosed(self)
        waiting, self.verifies = self.verifies, {}
        for ds in waiting.values():
            for d in ds:
                if not d.called:
                    d.callback("remote-server-timeout")
