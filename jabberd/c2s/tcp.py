"""
Client streams over TCP: port 5222 with STARTTLS and 5223 with direct TLS
(XEP-0368).  This is only framing: bytes in through the parser, bytes out;
the XMPP logic is L{ClientSession}.

Framing includes zlib stream compression (XEP-0138) where a listener enables
it, the idle timeout (C{c2s.idle_timeout}), the per-address connection limit
(C{c2s.max_connections_per_address}), the global one (C{c2s.max_connections})
and the read rate limit
(C{c2s.max_bytes_per_second}): see docs/security.md.
"""

from __future__ import annotations

import zlib
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jabberd import tls
from jabberd.limits import AddressLimit, TokenBucket
from twisted.words.xish import domish

from jabberd.c2s.session import NS_COMPRESS, C2SContext, ClientSession
from jabberd.xmlstream import StreamError, StreamParser

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'"
)


#: Inflated bytes handed to the parser at a time: what one step of
#: decompression may allocate, however small and hostile the input.
INFLATE_CHUNK = 16384

#: One read of compressed data may inflate to at most this many times the
#: stanza size limit.  The parser bounds each stanza; this bounds what is
#: not a stanza (whitespace between stanzas), so a small bomb cannot make
#: the server parse megabytes of keepalives.
INFLATE_READ_FACTOR = 4

#: Every this many seconds, the parser of each stream that read nothing
#: since the last time is released (StreamParser.release): an idle session
#: then costs no expat state, and the next read makes a new parser (~20 µs).
PARSER_RELEASE_INTERVAL = 2.0


class _Compressor:
    """zlib both ways for one stream (XEP-0138)."""

    __slots__ = ("inflater", "deflater", "pending")

    def __init__(self) -> None:
        self.inflater = zlib.decompressobj()
        self.deflater = zlib.compressobj()
        #: a sync flush is scheduled for what was compressed this turn
        self.pending = False


def _processingFailed() -> StreamError:
    """XEP-0138 §3: compression broke on an established compressed stream."""
    failure = domish.Element((NS_COMPRESS, "failure"))
    failure.addElement("processing-failed")
    return StreamError("undefined-condition", "stream compression failed", failure)


class ClientStream(Protocol):
    """One TCP connection carrying one client session."""

    log = Logger()

    def __init__(
        self,
        ctx: C2SContext,
        serverTLS: tls.ServerTLS | None,
        directTLS: bool,
        maxStanzaSize: int,
        maxDepth: int,
        compression: bool = False,
        idleTimeout: float = 0.0,
    ) -> None:
        self.ctx = ctx
        self.serverTLS = serverTLS
        self.secure = directTLS
        self._maxStanzaSize = maxStanzaSize
        self._maxDepth = maxDepth
        self._parser: StreamParser | None = None
        self._closing = False
        self._cb: dict[str, bytes] | None = None
        self._compressionAllowed = compression
        self._compressor: _Compressor | None = None
        # Idle timeout: one DelayedCall, armed after authentication; a read
        # only stores the time, and the call reschedules itself lazily when
        # it finds the stream was not idle after all.
        self._idleTimeout = idleTimeout
        self._idleCall: Any = None
        self._lastRead = 0.0
        self.session: ClientSession | None = None
        self.factory: ClientStreamFactory | None = None
        #: the client's IP address (the SASL throttle and the connection limit key)
        self.peerAddress = ""
        self._counted = False
        # Rate limit: bytes read go through the bucket; over it, reading
        # pauses and whatever still arrives meanwhile (a TLS record already
        # decrypted) waits in _held, in order, never dropped.
        self._bucket: TokenBucket | None = None
        self._held: list[bytes] | None = None
        self._resumeCall: Any = None
        #: read something since the factory's last idle-parser sweep
        self.active = True

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peerAddress = getattr(peer, "host", "") or ""
        self.session = ClientSession(self.ctx, self)
        self._newParser()
        factory = self.factory
        if factory is not None:
            factory.streams.add(self)
            if factory.rate > 0:
                self._bucket = TokenBucket(factory.rate, factory.burst, self.ctx.reactor.seconds())
            if not factory.total.acquire(""):
                # The server is full (c2s.max_connections): RFC 6120 §4.9.3.17.
                self.log.info("client connection limit reached")
                self.session.terminate("resource-constraint", "the server has too many connections")
                return
            if not factory.perAddress.acquire(self.peerAddress):
                factory.total.release("")
                # Refused after our header (RFC 6120 §4.9.1.2), never read.
                self.log.info("too many connections from {address}", address=self.peerAddress)
                self.session.terminate("policy-violation", "too many connections from your address")
                return
            self._counted = True

    def _newParser(self) -> None:
        s = self.session
        assert s is not None
        self._parser = StreamParser(s.streamStarted, s.elementReceived, s.streamEnded, self._maxStanzaSize, self._maxDepth)

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._parser is None:
            return
        if self._held is not None:
            self._held.append(data)
            return
        if self._bucket is not None:
            wait = self._bucket.consume(len(data), self.ctx.reactor.seconds())
            if wait > 0:
                # Read this, then nothing until the average is back under
                # the limit: TCP flow control slows the sender down.
                self._held = []
                _socketOf(self.transport).pauseProducing()
                self._resumeCall = self.ctx.reactor.callLater(wait, self._resumeReading)
        self._process(data)

    def _resumeReading(self) -> None:
        self._resumeCall = None
        held, self._held = self._held or [], None
        if self._closing:
            return
        _socketOf(self.transport).resumeProducing()
        for data in held:
            self.dataReceived(data)

    def _process(self, data: bytes) -> None:
        if self._closing or self._parser is None:
            return
        self.active = True
        if self._idleCall is not None:
            self._lastRead = self.ctx.reactor.seconds()
        try:
            if self._compressor is None:
                self._parser.feed(data)
            else:
                self._inflate(data)
        except StreamError as e:
            assert self.session is not None
            self.session.streamError(e)
        except Exception:
            self.log.failure("unexpected error handling client data")
            if self.session is not None:
                self.session.terminate("internal-server-error")

    def _inflate(self, data: bytes) -> None:
        """
        Decompress C{data} piece by piece into the parser: no step allocates
        more than L{INFLATE_CHUNK} bytes, the parser refuses a stanza above
        the limit as it grows, and one read may not inflate beyond
        L{INFLATE_READ_FACTOR} stanza limits (policy-violation: a bomb).
        """
        assert self._compressor is not None
        inflater = self._compressor.inflater
        budget = self._maxStanzaSize * INFLATE_READ_FACTOR
        while data and not self._closing:
            try:
                out = inflater.decompress(data, INFLATE_CHUNK)
            except zlib.error:
                raise _processingFailed() from None
            data = inflater.unconsumed_tail
            budget -= len(out)
            if budget < 0:
                raise StreamError("policy-violation", "compressed data inflates too much")
            if out and self._parser is not None:
                self._parser.feed(out)
        if inflater.eof and not self._closing:
            # The client ended its zlib stream: nothing more can be read.
            raise _processingFailed()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closing = True
        self._parser = None
        if self._resumeCall is not None and self._resumeCall.active():
            self._resumeCall.cancel()
        self._resumeCall = self._held = None
        if self._counted and self.factory is not None:
            self._counted = False
            self.factory.perAddress.release(self.peerAddress)
            self.factory.total.release("")
        if self._idleCall is not None and self._idleCall.active():
            self._idleCall.cancel()
        self._idleCall = None
        if self.session is not None:
            self.session.connectionLost()
            self.session = None
        if self.factory is not None:
            self.factory.streamClosed(self)

    # -- Link -----------------------------------------------------------------

    def sendHeader(self, attrs: dict[str, str]) -> None:
        if self._closing:
            return
        parts = [HEADER]
        for key, value in attrs.items():
            parts.append(f" {key}='{_escapeAttr(value)}'")
        parts.append(">")
        self._write("".join(parts).encode("utf-8"))

    def sendBytes(self, data: bytes) -> None:
        if not self._closing:
            self._write(data)

    def sendFooter(self) -> None:
        if not self._closing:
            self._write(b"</stream:stream>")

    def close(self) -> None:
        self._closing = True
        if self._parser is not None:
            self._parser.stop()
        self._flush()
        self.transport.loseConnection()

    def _write(self, data: bytes) -> None:
        c = self._compressor
        if c is None:
            self.transport.write(data)
            return
        # Everything written in one reactor turn (a presence broadcast, a
        # stanza and its error...) shares one Z_SYNC_FLUSH.
        out = c.deflater.compress(data)
        if out:
            self.transport.write(out)
        if not c.pending:
            c.pending = True
            self.ctx.reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        c = self._compressor
        if c is not None and c.pending:
            c.pending = False
            self.transport.write(c.deflater.flush(zlib.Z_SYNC_FLUSH))

    def canStartTLS(self) -> bool:
        return self.serverTLS is not None and not self.secure

    def startTLS(self, host: str) -> None:
        assert self.serverTLS is not None
        self.transport.startTLS(self.serverTLS.serverOptions(host))
        self.secure = True
        # Whatever followed <starttls/> in the same plaintext read is dropped
        # by restart(): only bytes that came through TLS belong to the new
        # stream (the STARTTLS command injection of CVE-2011-0411).
        self.restart()

    def restart(self) -> None:
        if self._parser is not None:
            self._parser.stop()
        self._newParser()
        if self._idleTimeout > 0 and self._idleCall is None and self.session is not None and self.session.authenticated:
            # Authenticated (the SASL restart): from here on, silence counts.
            self._lastRead = self.ctx.reactor.seconds()
            self._idleCall = self.ctx.reactor.callLater(self._idleTimeout, self._idleCheck)

    def _idleCheck(self) -> None:
        self._idleCall = None
        if self._closing or self.session is None:
            return
        due = self._lastRead + self._idleTimeout
        now = self.ctx.reactor.seconds()
        if now < due:
            self._idleCall = self.ctx.reactor.callLater(due - now, self._idleCheck)
            return
        self.session.terminate("connection-timeout", "idle for too long")

    def canCompress(self) -> bool:
        return self._compressionAllowed and self._compressor is None

    def startCompression(self) -> None:
        # <compressed/> went out uncompressed just before; whatever followed
        # <compress/> in the same read is dropped with the old parser.
        self._compressor = _Compressor()
        self.restart()

    def channelBindings(self) -> dict[str, bytes]:
        # Asked only once the handshake is over (after the first header on
        # TLS), and the values never change for a connection: compute once.
        if self._cb is None:
            conn = tls.tlsConnectionOf(self.transport)
            self._cb = tls.channelBindings(conn) if conn is not None else {}
        return self._cb

    def peerCertificate(self) -> Any:
        return tls.peerCertificate(self.transport)


def _socketOf(transport: Any) -> Any:
    """The transport that can pause reading: under direct TLS, the TCP one below the TLS layer."""
    while not hasattr(transport, "pauseProducing") and getattr(transport, "transport", None) is not None:
        transport = transport.transport
    return transport


def _escapeAttr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;").replace('"', "&quot;")


class ClientStreamFactory(Factory):
    """
    Makes a L{ClientStream} per connection, sharing one L{C2SContext}.

    It keeps the open connections so that a stopping server can wait until
    each one has flushed its C{<system-shutdown/>} and closed
    (L{closeAll}), instead of letting the reactor cut them off mid-write.
    """

    def __init__(
        self,
        ctx: C2SContext,
        serverTLS: tls.ServerTLS | None,
        directTLS: bool = False,
        maxStanzaSize: int = 262144,
        maxDepth: int = 64,
        compression: bool = False,
        idleTimeout: float = 0.0,
        perAddress: AddressLimit | None = None,
        rate: float = 0.0,
        burst: float = 262144,
        total: AddressLimit | None = None,
    ) -> None:
        self.ctx = ctx
        self.serverTLS = serverTLS
        self.directTLS = directTLS
        #: open connections per address, shared by every c2s listener
        self.perAddress = perAddress if perAddress is not None else AddressLimit(0)
        #: open connections in all (one key), shared by every c2s listener
        self.total = total if total is not None else AddressLimit(0)
        #: bytes per second and burst each stream may send (0: unlimited)
        self.rate = rate
        self.burst = burst
        self.maxStanzaSize = maxStanzaSize
        self.maxDepth = maxDepth
        self.compression = compression
        self.idleTimeout = idleTimeout
        self.streams: set[ClientStream] = set()
        self._drained: list[defer.Deferred] = []
        self._sweep: LoopingCall | None = None

    def startFactory(self) -> None:
        """Listening: release idle streams' parsers every L{PARSER_RELEASE_INTERVAL} seconds."""
        self._sweep = LoopingCall(self.releaseIdleParsers)
        self._sweep.clock = self.ctx.reactor
        self._sweep.start(PARSER_RELEASE_INTERVAL, now=False)

    def stopFactory(self) -> None:
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self._sweep = None

    def releaseIdleParsers(self) -> None:
        """Free the parser of every stream that read nothing since the last call (between stanzas only)."""
        for stream in self.streams:
            if stream.active:
                stream.active = False
            elif stream._parser is not None:
                stream._parser.release()

    def buildProtocol(self, addr: Any) -> ClientStream:
        p = ClientStream(self.ctx, self.serverTLS, self.directTLS, self.maxStanzaSize, self.maxDepth, self.compression, self.idleTimeout)
        p.factory = self
        return p

    def streamClosed(self, stream: ClientStream) -> None:
        """A connection is gone; wake L{whenClosed} waiters once none is left."""
        self.streams.discard(stream)
        if not self.streams:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def whenClosed(self, reactor: IReactorTime, timeout: float) -> defer.Deferred:
        """
        Fire once every connection has closed; abort those still open after
        C{timeout} seconds (a peer that never answers TLS close_notify).
        """
        if not self.streams:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drained.append(d)

        def abort() -> None:
            for stream in list(self.streams):
                stream.transport.abortConnection()

        call = reactor.callLater(timeout, abort)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d
