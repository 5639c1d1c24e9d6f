"""
Getting a negotiated stream: targets, TCP, direct TLS, and waiting for
negotiation to end one way or another.

The outcome of negotiation arrives as one of four stream events (bound,
an initializer failed, a stream error, the connection ended); this module
turns whichever comes first into either the ready stream or one of our
exceptions with a sentence a person can act on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, error as ierror
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT

from jabberd.client import srv
from jabberd.client.errors import (
    ClientError,
    ConnectionFailed,
    StanzaError,
    StreamError,
    TLSFailed,
)
from jabberd.client.stream import ClientAuthenticator, ClientStreamFactory, ClientXmlStream

__all__ = ["Negotiation", "asClientError", "openStream"]


def asClientError(failure: Failure) -> Exception:
    """The exception of ours that best says why negotiation failed."""
    value = failure.value
    if isinstance(value, (ClientError, StanzaError)):
        return value
    if isinstance(value, jerror.StreamError):
        return StreamError(value.condition, value.text)
    if isinstance(value, SSL.Error):
        return TLSFailed(f"TLS handshake failed: {_sslReason(value)}")
    if isinstance(value, domish.ParserError):
        return ConnectionFailed("the server sent malformed XML")
    if isinstance(value, xmlstream.FeatureNotAdvertized):
        return ConnectionFailed("the server did not offer a required stream feature (SASL or resource binding)")
    if isinstance(value, (ierror.ConnectionDone, ierror.ConnectionLost)):
        return ConnectionFailed("the server closed the connection during negotiation")
    return ConnectionFailed(str(value) or value.__class__.__name__)


def _sslReason(e: SSL.Error) -> str:
    try:
        return "; ".join(str(item[2]) for item in e.args[0]) or str(e)
    except (IndexError, TypeError):
        return str(e)


class Negotiation:
    """
    Fires C{done} with the stream once it is bound, or fails it with the
    first of: an initializer's failure, a stream error, the connection's end.
    """

    def __init__(self, factory: ClientStreamFactory) -> None:
        self.done: defer.Deferred = defer.Deferred()
        self.stream: ClientXmlStream | None = None
        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, self._connected)
        factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authd)
        factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, self._initFailed)
        factory.addBootstrap(STREAM_ERROR_EVENT, self._streamError)
        factory.addBootstrap(STREAM_END_EVENT, self._ended)

    def _connected(self, xs: ClientXmlStream) -> None:
        self.stream = xs

    def _authd(self, xs: ClientXmlStream) -> None:
        if not self.done.called:
            self.done.callback(xs)

    def _fail(self, failure: Failure) -> None:
        if not self.done.called:
            self.done.errback(asClientError(failure))

    def _initFailed(self, failure: Failure) -> None:
        self._fail(failure)
        xs = self.stream
        if xs is not None and xs.transport is not None:
            # We give up on this stream: say goodbye properly, then hang up.
            xs.sendFooter()
            xs.transport.loseConnection()

    def _streamError(self, failure: Failure) -> None:
        self._fail(failure)

    def _ended(self, reason: Failure) -> None:
        self._fail(reason)

    def abort(self, why: str) -> None:
        """Give up (a timeout): drop the connection and fail with C{why}."""
        if not self.done.called:
            self.done.errback(ConnectionFailed(why))
        if self.stream is not None and self.stream.transport is not None:
            self.stream.transport.abortConnection()


@dataclass(frozen=True)
class Dialer:
    """How to open TCP (and direct TLS) connections to targets."""

    reactor: Any
    directTLSOptions: Any
    resolver: Any = None
    timeout: float = 30.0

    async def address(self, host: str) -> str:
        """An IP for C{host}, through the injected resolver when there is one."""
        try:
            ipaddress.ip_address(host.strip("[]"))
            return host.strip("[]")
        except ValueError:
            pass
        if self.resolver is None or host == "localhost":
            return host  # HostnameEndpoint asks the system
        try:
            return await self.resolver.getHostByName(host, timeout=srv.LOOKUP_TIMEOUT)
        except Exception:
            return host

    async def dial(self, target: srv.Target, factory: ClientStreamFactory) -> Any:
        endpoint = HostnameEndpoint(self.reactor, await self.address(target.host), target.port, timeout=self.timeout)
        if target.directTLS:
            endpoint = wrapClientTLS(self.directTLSOptions, endpoint)
        return await endpoint.connect(factory)


async def openStream(
    factory: ClientStreamFactory,
    authenticator: ClientAuthenticator,
    targets: list[srv.Target],
    dialer: Dialer,
    timeout: float,
) -> ClientXmlStream:
    """
    Connect to the first target that answers and negotiate the stream.

    A target that cannot be reached is skipped (RFC 6120 §3.2.1); once a
    connection is up, its failure (TLS, authentication, a stream error) is
    final: another server of the same domain would not change the answer.

    @raise ConnectionFailed: no target could be reached, or negotiation
        timed out or broke off; L{TLSFailed}, L{AuthenticationFailed},
        L{StreamError} or L{StanzaError} (bind refused) as they happen.
    """
    problems: list[str] = []
    for target in targets:
        negotiation = Negotiation(factory)
        authenticator.directTLS = target.directTLS
        try:
            await dialer.dial(target, factory)
        except (ierror.ConnectError, ierror.DNSLookupError, ierror.TimeoutError, OSError) as e:
            problems.append(f"{target.host}:{target.port}: {_connectReason(e)}")
            _removeNegotiation(factory, negotiation)
            continue
        timer = dialer.reactor.callLater(timeout, negotiation.abort, f"no complete answer from {target.host}:{target.port} within {timeout:g} s")
        try:
            return await negotiation.done
        finally:
            if timer.active():
                timer.cancel()
            _removeNegotiation(factory, negotiation)
    raise ConnectionFailed("cannot connect to " + "; ".join(problems))


def _removeNegotiation(factory: ClientStreamFactory, negotiation: Negotiation) -> None:
    for event, observer in (
        (xmlstream.STREAM_CONNECTED_EVENT, negotiation._connected),
        (xmlstream.STREAM_AUTHD_EVENT, negotiation._authd),
        (xmlstream.INIT_FAILED_EVENT, negotiation._initFailed),
        (STREAM_ERROR_EVENT, negotiation._streamError),
        (STREAM_END_EVENT, negotiation._ended),
    ):
        try:
            factory.removeBootstrap(event, observer)
        except (KeyError, ValueError):
            pass
    stream = negotiation.stream
    if stream is not None:
        for event, observer in (
            (xmlstream.STREAM_AUTHD_EVENT, negotiation._authd),
            (xmlstream.INIT_FAILED_EVENT, negotiation._initFailed),
            (STREAM_ERROR_EVENT, negotiation._streamError),
            (STREAM_END_EVENT, negotiation._ended),
        ):
            stream.removeObserver(event, observer)


def _connectReason(e: Exception) -> str:
    if isinstance(e, ierror.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ierror.DNSLookupError):
        return "host not found"
    if isinstance(e, ierror.TimeoutError):
        return "timed out"
    return str(e) or e.__class__.__name__
