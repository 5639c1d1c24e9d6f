"""
The XML side of every stream: an expat parser with XMPP's restrictions, and
helpers to build and serialise stanzas and errors.

One parser object per stream (re-created on stream restart).  Expat is C,
so parsing costs little; the limits are enforced inside the expat callbacks
so an oversized stanza is refused before it is built in memory.
"""

from __future__ import annotations

from typing import Callable
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from twisted.words.xish import domish

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_COMPONENT = "jabber:component:accept"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_XMPP_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

STANZA_NAMES = frozenset(("message", "presence", "iq"))

# Expat error codes that mean "the XML used a forbidden construct" rather
# than "the XML is broken" (RFC 6120 §11.1 restricted-xml).
_RESTRICTED_ERRORS = frozenset(
    (
        expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY],
        expat.errors.codes[expat.errors.XML_ERROR_RECURSIVE_ENTITY_REF],
        expat.errors.codes[expat.errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING],
        expat.errors.codes[expat.errors.XML_ERROR_BINARY_ENTITY_REF],
        expat.errors.codes[expat.errors.XML_ERROR_ENTITY_DECLARED_IN_PE],
    )
)


# RFC 6120 §11.6: UTF-8 only.  Expat would honour a UTF-16/32 byte order
# mark (or the zero bytes of a BOM-less UTF-16 stream) even when told the
# input is UTF-8, so the first bytes are checked before expat sees them.
_FOREIGN_BOMS = (b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")


#: expat's text buffer, allocated per parser (so per stream): small.
_TEXT_BUFFER = 4096


#: Distinct stream headers kept for re-opening released parsers (most streams
#: share one); beyond this many, a stream keeps its own copy.
_HEADER_CACHE = 64
_headers: dict[tuple, bytes] = {}


def _reopeningHeader(uri: str, local: str, default: str | None, prefixes: dict[str, str]) -> bytes | None:
    """
    A start tag that puts a new expat parser where a stream's header left the
    old one: same qualified name (the client's closing tag must match it) and
    the same namespace declarations.  None when the qualified name cannot be
    told from the namespaces (two prefixes for the stream's namespace).
    """
    names = [p for p, u in prefixes.items() if u == uri]
    if default == uri or (default is None and uri == ""):
        if names:
            return None
        qname = local
    elif len(names) == 1:
        qname = f"{names[0]}:{local}"
    else:
        return None
    key = (qname, default, tuple(sorted(prefixes.items())))
    header = _headers.get(key)
    if header is None:
        parts = [f"<{qname}"]
        if default is not None:
            parts.append(f" xmlns={quoteattr(default)}")
        parts.extend(f" xmlns:{p}={quoteattr(u)}" for p, u in prefixes.items())
        parts.append(">")
        header = "".join(parts).encode("utf-8")
        if len(_headers) < _HEADER_CACHE:
            _headers[key] = header
    return header


class _Stopped(Exception):
    """Raised inside expat to abandon the rest of a chunk after L{StreamParser.stop}."""


class StreamError(Exception):
    """A condition that ends the stream with an RFC 6120 §4.9 stream error."""

    def __init__(self, condition: str, text: str | None = None, appCondition: domish.Element | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text
        #: an application-specific condition element (RFC 6120 §4.9.4)
        self.appCondition = appCondition


class StreamParser:
    """
    Turn bytes into stream events with XMPP's limits applied.

    Callbacks: C{onStart(attrs: dict)} for the stream header (namespaced
    attribute keys are C{(uri, name)} tuples, the element's own qname is in
    C{attrs["__qname__"]} and its default namespace in
    C{attrs["__default_ns__"]}), C{onElement(domish.Element)} for every
    complete top-level child, C{onEnd()} for the closing tag.  Violations
    raise L{StreamError} out of L{feed}; an exception a callback raises
    (e.g. a L{StreamError} from the session) propagates the same way.

    Limits: C{maxStanzaSize} bytes from the start of a top-level element (or
    the whitespace before it) to its end, so a stanza is refused while it
    grows, whether it arrives in one read or byte by byte, and even when it
    is one endless start tag; C{maxDepth} levels of nesting, the stream
    element being level 1.  Only UTF-8 is read (RFC 6120 §11.6), and no
    DTD, comment, processing instruction or entity beyond the predefined
    five (§11.1).
    """

    __slots__ = (
        "_parser",
        "_onStart",
        "_onElement",
        "_onEnd",
        "_maxStanza",
        "_maxDepth",
        "_depth",
        "_current",
        "_stanzaStart",
        "_defaultNs",
        "_pendingPrefixes",
        "_started",
        "_fed",
        "_boundary",
        "_stopped",
        "_header",
        "_waking",
        "_head",
    )

    def __init__(
        self,
        onStart: Callable[[dict], None],
        onElement: Callable[[domish.Element], None],
        onEnd: Callable[[], None],
        maxStanzaSize: int = 262144,
        maxDepth: int = 64,
    ) -> None:
        self._onStart = onStart
        self._onElement = onElement
        self._onEnd = onEnd
        self._maxStanza = maxStanzaSize
        self._maxDepth = maxDepth
        self._depth = 0
        self._current: domish.Element | None = None
        self._stanzaStart = 0
        self._defaultNs: list[str] = [""]
        self._pendingPrefixes: dict[str, str] = {}
        self._started = False
        # Bytes fed so far, and the byte index where the current top-level
        # element (or the whitespace before it) began: their difference is
        # what the client has sent towards one stanza, complete or not, so a
        # start tag that never ends is bounded like any other stanza.
        self._fed = 0
        self._boundary = 0
        self._stopped = False
        self._head = b""  # the first bytes, until 4 are in (encoding sniff)
        #: the stream header to re-open a released parser with (see release)
        self._header: bytes | None = None
        self._waking = False
        self._parser: expat.XMLParserType | None = self._newExpat()

    def _newExpat(self) -> expat.XMLParserType:
        # The encoding is fixed to UTF-8 (RFC 6120 §11.6): a declaration
        # naming another one is refused in _xmlDecl rather than obeyed.
        p = expat.ParserCreate("UTF-8", " ")
        p.buffer_text = True
        # Expat's text buffer is allocated per parser, so per stream: keep it
        # small.  Longer text arrives in several callbacks, merged in
        # _characters.
        p.buffer_size = _TEXT_BUFFER
        p.ordered_attributes = False
        p.specified_attributes = True
        p.StartElementHandler = self._startElement
        p.EndElementHandler = self._endElement
        p.CharacterDataHandler = self._characters
        p.StartNamespaceDeclHandler = self._startNamespace
        p.EndNamespaceDeclHandler = self._endNamespace
        p.XmlDeclHandler = self._xmlDecl
        p.CommentHandler = self._restricted
        p.ProcessingInstructionHandler = self._restricted
        p.StartDoctypeDeclHandler = self._restricted
        p.EntityDeclHandler = self._restricted
        p.SkippedEntityHandler = self._restricted
        p.ExternalEntityRefHandler = self._restricted
        p.StartCdataSectionHandler = self._cdata
        return p

    def feed(self, data: bytes) -> None:
        """Parse C{data}; raise L{StreamError} on malformed or forbidden XML."""
        if self._stopped:
            return
        if self._fed < 4:
            # The first 4 bytes tell UTF-16/32 (BOM or NULs), however many reads bring them.
            head = self._head = (self._head + data)[:4]
            if head.startswith(_FOREIGN_BOMS) or b"\x00" in head:
                raise StreamError("unsupported-encoding", "only UTF-8 is supported")
        if self._parser is None:
            self._wake()
        self._fed += len(data)
        try:
            self._parser.Parse(data, False)  # type: ignore[union-attr]
        except _Stopped:
            return
        except expat.ExpatError as e:
            if e.code in _RESTRICTED_ERRORS:
                raise StreamError("restricted-xml", "entity references are not allowed") from None
            raise StreamError("not-well-formed", expat.errors.messages[e.code]) from None
        if self._fed - self._boundary > self._maxStanza:
            raise StreamError("policy-violation", "stanza too large")

    def stop(self) -> None:
        """
        Deliver nothing more, not even the rest of the chunk being parsed.

        A stream restart (after STARTTLS or SASL success) makes a new parser;
        bytes the client sent before the restart point must never be read as
        part of the new stream (that would let plaintext injected before
        STARTTLS count as sent under TLS).
        """
        self._stopped = True

    def release(self) -> bool:
        """
        Free the expat parser of a stream that sits between stanzas; the
        next L{feed} makes a new one.  Returns whether the parser is released.

        An idle stream would otherwise hold its parser (about 16 KiB of
        expat state: buffers, name tables) for as long as it stays
        connected.  Only possible with nothing half-read: inside the stream
        element and no stanza or partial token (expat's byte index has
        reached every byte fed).  The new parser is first fed a copy of the
        stream's start tag, so namespaces and the closing tag work as before.
        """
        p = self._parser
        if p is None:
            return True
        if (
            self._depth != 1
            or self._current is not None
            or self._stopped
            or self._header is None
            or p.CurrentByteIndex != self._fed
        ):
            return False
        self._parser = None
        self._depth = 0
        self._defaultNs = [""]
        return True

    def _wake(self) -> None:
        """A new parser for a released one, inside the stream element again (no onStart)."""
        header = self._header
        assert header is not None
        p = self._parser = self._newExpat()
        self._waking = True
        p.Parse(header, False)
        self._fed = self._boundary = len(header)

    def _restricted(self, *args: object) -> None:
        raise StreamError("restricted-xml", "comments, processing instructions and DTDs are not allowed")

    def _cdata(self) -> None:
        # CDATA sections are well-formed XML and harmless: their text arrives
        # through the character data handler like any other text.
        pass

    def _xmlDecl(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower().replace("-", "") != "utf8":
            raise StreamError("unsupported-encoding", "only UTF-8 is supported")

    def _startNamespace(self, prefix: str | None, uri: str) -> None:
        if prefix is None:
            self._defaultNs.append(uri)
        else:
            self._pendingPrefixes[prefix] = uri

    def _endNamespace(self, prefix: str | None) -> None:
        if prefix is None and len(self._defaultNs) > 1:
            self._defaultNs.pop()

    def _startElement(self, name: str, attrs: dict[str, str]) -> None:
        depth = self._depth = self._depth + 1
        if depth > self._maxDepth:
            raise StreamError("policy-violation", "XML nesting too deep")
        uri, _, local = name.rpartition(" ")
        for key in [k for k in attrs if " " in k]:
            auri, _, aname = key.rpartition(" ")
            attrs[(auri, aname)] = attrs.pop(key)  # type: ignore[index]
        if depth == 1:
            if self._waking:  # the copy of the header, in a re-opened parser
                self._waking = False
                self._pendingPrefixes = {}
                return
            if self._started:
                raise StreamError("not-well-formed", "second stream header")
            self._started = True
            defaultNs = self._defaultNs[-1] if len(self._defaultNs) > 1 else None
            self._header = _reopeningHeader(uri, local, defaultNs, self._pendingPrefixes)
            attrs["__qname__"] = (uri, local)  # type: ignore[assignment]
            attrs["__default_ns__"] = self._defaultNs[-1]
            attrs["__prefixes__"] = dict(self._pendingPrefixes)  # type: ignore[assignment]
            self._pendingPrefixes = {}
            self._boundary = self._parser.CurrentByteIndex
            self._onStart(attrs)
            if self._stopped:
                raise _Stopped()
            return
        if depth == 2:
            start = self._parser.CurrentByteIndex
            if start - self._boundary > self._maxStanza:
                # What came before in the same read (a huge stream header) is counted too.
                raise StreamError("policy-violation", "stanza too large")
            self._stanzaStart = self._boundary = start
        elif self._parser.CurrentByteIndex - self._stanzaStart > self._maxStanza:
            raise StreamError("policy-violation", "stanza too large")
        element = domish.Element((uri, local), self._defaultNs[-1], attrs, self._pendingPrefixes or None)
        self._pendingPrefixes = {}
        current = self._current
        if current is not None:
            current.children.append(element)
            element.parent = current
        self._current = element

    def _endElement(self, name: str) -> None:
        depth = self._depth
        self._depth = depth - 1
        if depth == 1:
            self._onEnd()
            return
        # Here the byte index is past an empty element's tag, or at a closing
        # tag: a stanza that arrived whole in one read is measured too
        # (found by bench/fuzz_atheris.py: a huge attribute got through).
        if self._parser.CurrentByteIndex - self._stanzaStart > self._maxStanza:  # type: ignore[union-attr]
            raise StreamError("policy-violation", "stanza too large")
        element = self._current
        assert element is not None
        self._current = element.parent
        if depth == 2:
            element.parent = None
            self._boundary = self._parser.CurrentByteIndex
            self._onElement(element)
            if self._stopped:
                raise _Stopped()

    def _characters(self, text: str) -> None:
        current = self._current
        if current is None:
            if text.strip():
                raise StreamError("bad-format", "text outside a stanza")
            # Whitespace between stanzas (keepalives) starts nothing.
            start = self._parser.CurrentByteIndex
            if start - self._boundary > self._maxStanza:
                raise StreamError("policy-violation", "stanza too large")
            self._boundary = start
            return
        end = self._parser.CurrentByteIndex
        if len(text) > _TEXT_BUFFER:
            # Too long for the buffer, so delivered at once, and the index
            # is where it starts (buffered text is flushed at its end).
            end += len(text)
        if end - self._stanzaStart > self._maxStanza:
            raise StreamError("policy-violation", "stanza too large")
        # Adjacent text is one string, as domish's str(element) reads only
        # the first text child.
        children = current.children
        if children and type(children[-1]) is str:
            children[-1] += text
        else:
            children.append(text)


def streamErrorElement(condition: str, text: str | None = None, appCondition: domish.Element | None = None) -> domish.Element:
    """Build C{<stream:error>} with the defined condition, optional text and application condition."""
    error = domish.Element((NS_STREAMS, "error"))
    error.addElement((NS_XMPP_STREAMS, condition))
    if text:
        t = error.addElement((NS_XMPP_STREAMS, "text"), content=text)
        t[(NS_XML, "lang")] = "en"
    if appCondition is not None:
        error.addChild(appCondition)
    return error


# RFC 6120 §8.3.3: the error type that goes with each defined condition.
ERROR_TYPES = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


def errorReply(
    stanza: domish.Element,
    condition: str,
    text: str | None = None,
    errorType: str | None = None,
    appCondition: domish.Element | None = None,
    by: str | None = None,
) -> domish.Element:
    """
    Build the error stanza answering C{stanza} (RFC 6120 §8.3).

    The reply swaps C{to} and C{from}, keeps the C{id}, and includes the
    original payload as the spec suggests so the sender can tell which
    stanza failed.
    """
    reply = domish.Element((stanza.uri, stanza.name))
    if stanza.getAttribute("id") is not None:
        reply["id"] = stanza["id"]
    if stanza.getAttribute("from") is not None:
        reply["to"] = stanza["from"]
    if stanza.getAttribute("to") is not None:
        reply["from"] = stanza["to"]
    reply["type"] = "error"
    if stanza.name != "iq":
        for child in stanza.elements():
            if child.name != "error":
                reply.addChild(child)
    error = reply.addElement("error")
    error["type"] = errorType or ERROR_TYPES.get(condition, "cancel")
    if by:
        error["by"] = by
    error.addElement((NS_XMPP_STANZAS, condition))
    if text:
        t = error.addElement((NS_XMPP_STANZAS, "text"), content=text)
        t[(NS_XML, "lang")] = "en"
    if appCondition is not None:
        error.addChild(appCondition)
    return reply


def iqResult(iq: domish.Element) -> domish.Element:
    """An empty C{type='result'} reply to C{iq}."""
    reply = domish.Element((iq.uri, "iq"))
    reply["type"] = "result"
    if iq.getAttribute("id") is not None:
        reply["id"] = iq["id"]
    if iq.getAttribute("from") is not None:
        reply["to"] = iq["from"]
    if iq.getAttribute("to") is not None:
        reply["from"] = iq["to"]
    return reply


def serialize(element: domish.Element, defaultUri: str = NS_CLIENT) -> bytes:
    """Serialise a stanza for a stream whose default namespace is C{defaultUri}."""
    return element.toXml(defaultUri=defaultUri).encode("utf-8")


_STREAM_PREFIXES = {NS_STREAMS: "stream"}


def serializeStreamElement(element: domish.Element, defaultUri: str = NS_CLIENT) -> bytes:
    """Serialise a C{stream:}-namespaced element (features, error) inside the stream."""
    return element.toXml(prefixes=_STREAM_PREFIXES, defaultUri=defaultUri, prefixesInScope=["stream"]).encode("utf-8")
