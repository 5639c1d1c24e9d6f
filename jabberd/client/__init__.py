"""
jabberd's XMPP client library (XMPP Basic Client 2008, XEP-0211) and the
C{jabberd-client} command line (L{jabberd.client.cli}).

It imports nothing of the jabberd server (only the pure helpers
C{jabberd.jid} and C{jabberd.scram}), so it works against any server::

    from jabberd.client import Client, ClientOptions

    client = Client("alice@example.com", password, ClientOptions(trust="ca.pem"))
    await client.connect()
    client.presence.available(show="away")
    client.messages.send("bob@example.com", "hello", type="chat")
    await client.close()

One feature per module: L{srv} (where to connect), L{tls} (whom to trust),
L{sasl} (mechanisms), L{compression} (XEP-0138), L{stream} and L{connect}
(negotiation), L{client} (the session), L{roster}, L{presence},
L{messages}, L{disco}, L{caps} (XEP-0115), L{escaping} (XEP-0106),
L{ping}, L{vcard}.
"""

from jabberd.client.caps import CapsMismatch, verificationString
from jabberd.client.client import Client, ClientOptions, connect
from jabberd.client.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    StanzaError,
    StreamError,
    TLSFailed,
)
from jabberd.client.escaping import escape, escapeAddress, jidFromURI, unescape, unescapeAddress

__all__ = [
    "AuthenticationFailed",
    "CapsMismatch",
    "Client",
    "ClientError",
    "ClientOptions",
    "ConnectionFailed",
    "StanzaError",
    "StreamError",
    "TLSFailed",
    "connect",
    "escape",
    "escapeAddress",
    "jidFromURI",
    "unescape",
    "unescapeAddress",
    "verificationString",
]
