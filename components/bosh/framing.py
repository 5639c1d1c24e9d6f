"""
What the web transports and the two kinds of upstream share: the
interfaces between them, and making serialized elements self-contained.

A transport (a BOSH session, a WebSocket connection) holds an L{Upstream}
(the in-process client session, or a c2s stream to the core) and is its
L{Downstream}.  Elements travel up parsed (the transport has to parse its
framing anyway) and come down serialized, one top-level element per
L{Downstream.send}, each made self-contained by L{qualify}: over BOSH and
WebSocket there is no enclosing C{<stream:stream>} whose namespaces a
stanza could inherit.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.words.xish import domish

from jabberd.xmlstream import NS_CLIENT, NS_STREAMS, NS_XML

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"

_XMLNS = b" xmlns='" + NS_CLIENT.encode() + b"'"
_XMLNS_STREAM = b" xmlns:stream='" + NS_STREAMS.encode() + b"'"


class Upstream(Protocol):
    """The XMPP side of one web session: what a transport feeds."""

    def open(self, attrs: dict[str, str]) -> None:
        """
        The client opened (or, after SASL, restarted) its stream.

        C{attrs} has C{to}, C{version}, C{xml:lang} and C{from} when the
        client gave them.
        """

    def receive(self, element: domish.Element) -> None:
        """A top-level element from the client."""

    def close(self) -> None:
        """The client closed its stream."""

    def abort(self) -> None:
        """The client is gone without closing (inactivity, a lost connection)."""

    def fail(self, condition: str, text: str | None = None) -> None:
        """The transport found a stream-level error in what the client sent."""


class Downstream(Protocol):
    """The transport's side: what an upstream sends to the client through."""

    #: TLS is the HTTP layer's: true over HTTPS (or a trusted TLS proxy).
    secure: bool
    #: The client's IP address (see WebFrontend.clientAddress), for the SASL throttle.
    peerAddress: str

    def streamOpened(self, attrs: dict[str, str]) -> None:
        """The server's stream header: C{id}, C{from}, C{version}, C{xml:lang}."""

    def send(self, data: bytes) -> None:
        """One self-contained top-level element (see L{qualify})."""

    def streamClosed(self) -> None:
        """The server closed the stream (after its stream error, if any)."""

    def streamFailed(self, condition: str, text: str | None = None) -> None:
        """The server could not be reached or was lost (remote-connection-failed)."""

    def channelBindings(self) -> dict[str, bytes]:
        """RFC 5929/9266 data of the client's TLS connection, if one carries the whole stream."""

    def peerCertificate(self) -> Any:
        """The client's TLS certificate, if it presented one."""


def qualify(data: bytes) -> bytes:
    """
    Make one element serialized for a C{jabber:client} stream self-contained.

    Inside C{<stream:stream>} a stanza inherits C{xmlns='jabber:client'}
    and C{stream:} elements their prefix; in a BOSH C{<body/>} or a
    WebSocket message nothing is inherited, and XEP-0206 and RFC 7395 both
    ask for the namespace on each stanza.  The serializer writes one element
    per call with its start tag first, so adding the declarations to the
    start tag is enough; an element that declares its own default namespace
    (SASL, TLS, anything not in jabber:client) is left as it is.
    """
    if data.startswith(b"<stream:"):
        end = _nameEnd(data)
        return data[:end] + _XMLNS_STREAM + data[end:]
    startTag = data[: data.find(b">") + 1]
    if b" xmlns=" in startTag:
        return data
    end = _nameEnd(data)
    return data[:end] + _XMLNS + data[end:]


def _nameEnd(data: bytes) -> int:
    """Index just after the element name of the start tag at the front of C{data}."""
    i = 1
    n = len(data)
    while i < n and data[i : i + 1] not in (b" ", b">", b"/", b"\t", b"\n", b"\r"):
        i += 1
    return i


def isStreamError(data: bytes) -> bool:
    """Whether a serialized element is a C{<stream:error/>}."""
    return data.startswith(b"<stream:error")


def headerAttrs(attrs: dict[str, str]) -> dict:
    """
    The header a L{ClientSession} expects from a parsed C{<stream:stream>},
    built from the attributes of a BOSH body or a WebSocket C{<open/>}.
    """
    header: dict = {"__qname__": (NS_STREAMS, "stream"), "__default_ns__": NS_CLIENT}
    for key in ("to", "from", "version"):
        if attrs.get(key):
            header[key] = attrs[key]
    if attrs.get("xml:lang"):
        header[(NS_XML, "lang")] = attrs["xml:lang"]
    return header


def lang(attrs: dict) -> str | None:
    """The C{xml:lang} of parsed attributes (expat gives it as a namespaced key)."""
    return attrs.get((NS_XML, "lang")) or attrs.get("xml:lang")


def requalify(element: domish.Element, fromUri: str) -> domish.Element:
    """
    Put elements that inherited the wrapper's namespace (a BOSH client that
    left out C{xmlns='jabber:client'}) into C{jabber:client}, as a TCP
    stream would have.
    """
    if element.uri == fromUri:
        element.uri = NS_CLIENT
        if element.defaultUri == fromUri:
            element.defaultUri = NS_CLIENT
        for child in element.elements():
            requalify(child, fromUri)
    return element
