"""
The exceptions the client library raises, one per way a session can fail.

A program (and the command line's exit codes) needs to tell apart "the
server said no to this request" (L{StanzaError}), "the server ended the
stream" (L{StreamError}), "the credentials were refused"
(L{AuthenticationFailed}) and "we never got a secure connection"
(L{ConnectionFailed}, L{TLSFailed}), so each is its own class carrying the
RFC 6120 condition rather than a message to parse.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.error import StanzaError

__all__ = [
    "AuthenticationFailed",
    "ClientError",
    "ConnectionFailed",
    "StanzaError",
    "StreamError",
    "TLSFailed",
]


class ClientError(Exception):
    """Base class of the errors this library raises itself."""


class StreamError(ClientError):
    """
    The server closed the stream with a stream error (RFC 6120 §4.9).

    @ivar condition: the defined condition, e.g. C{"host-unknown"}.
    @ivar text: the optional human-readable <text/>, or None.
    """

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def __str__(self) -> str:
        return f"stream error: {self.condition}" + (f" ({self.text})" if self.text else "")


class AuthenticationFailed(ClientError):
    """
    SASL authentication did not succeed (RFC 6120 §6.5).

    C{condition} is the server's failure condition (C{"not-authorized"}, ...)
    or one of ours when the client itself gave up: C{"no-acceptable-mechanism"},
    C{"invalid-server-signature"} (the server could not prove it knows the
    password), C{"downgrade-detected"} (XEP-0474: the advertised mechanisms
    or channel bindings were tampered with) and C{"malformed-challenge"}.
    """

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def __str__(self) -> str:
        return f"authentication failed: {self.condition}" + (f" ({self.text})" if self.text else "")


class ConnectionFailed(ClientError):
    """No usable connection: nothing listening, DNS failure, timeout, connection lost."""


class TLSFailed(ConnectionFailed):
    """TLS could not be set up or the server's certificate was not accepted."""
