"""
The stream parser (jabberd.xmlstream.StreamParser) fed bytes directly: the
XML subset XMPP allows (RFC 6120 §11), its limits, and stream restarts.
"""

from __future__ import annotations

import time

from twisted.trial import unittest

from jabberd.xmlstream import NS_CLIENT, NS_STREAMS, NS_XML, StreamError, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>
<message><body>&lol9;</body></message>"""


class Recorder:
    """A parser and everything it reported."""

    def __init__(self, maxStanzaSize: int = 10000, maxDepth: int = 8) -> None:
        self.headers: list[dict] = []
        self.elements: list = []
        self.ended = 0
        self.parser = StreamParser(self.headers.append, self.elements.append, self._end, maxStanzaSize, maxDepth)

    def _end(self) -> None:
        self.ended += 1

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.parser.feed(chunk)


class ParserTests(unittest.TestCase):
    def assertStreamError(self, condition: str, *chunks: bytes, **kw) -> Recorder:
        r = Recorder(**kw)
        with self.assertRaises(StreamError) as e:
            r.feed(*chunks)
        self.assertEqual(e.exception.condition, condition)
        return r

    # -- what is allowed ---------------------------------------------------------

    def test_header(self):
        """The header reports its qname, default namespace, prefixes and namespaced attributes."""
        r = Recorder()
        r.feed(HEADER[:40], HEADER[40:])
        self.assertEqual(len(r.headers), 1)
        h = r.headers[0]
        self.assertEqual((h["__qname__"], h["__default_ns__"], h["to"], h["version"]), ((NS_STREAMS, "stream"), NS_CLIENT, "localhost", "1.0"))
        self.assertEqual(h["__prefixes__"], {"stream": NS_STREAMS})
        r2 = Recorder()
        r2.feed(HEADER[:-1] + b" xml:lang='de'>")
        self.assertEqual(r2.headers[0][(NS_XML, "lang")], "de")

    def test_stanzasSplitAcrossChunks(self):
        """A stanza arriving byte by byte is delivered once, whole, in the stream's namespace."""
        r = Recorder()
        r.feed(HEADER)
        for byte in b"<message to='a@b'><body>h&amp;i &#x263A;</body></message>":
            r.feed(bytes([byte]))
        self.assertEqual([e.toXml() for e in r.elements], ["<message xmlns='jabber:client' to='a@b'><body>h&amp;i \u263a</body></message>"])

    def test_whitespaceKeepalives(self):
        """Whitespace between stanzas (keepalives) produces no element and no error."""
        r = Recorder()
        r.feed(HEADER, b" ", b"\n", b"<presence/>", b"\r\n\t ", b" ", b"<presence/>", b" ")
        self.assertEqual([e.name for e in r.elements], ["presence", "presence"])

    def test_manyKeepalivesDoNotAddUp(self):
        """Keepalives sent for hours never count towards the stanza size limit."""
        r = Recorder(maxStanzaSize=10000)
        r.feed(HEADER)
        for _ in range(30000):
            r.feed(b" ")
        r.feed(b"<presence/>")
        self.assertEqual(len(r.elements), 1)

    def test_cdataAndPredefinedEntities(self):
        """CDATA sections and the five predefined entities are plain text."""
        r = Recorder()
        r.feed(HEADER, b"<message><body><![CDATA[<b>&]]>&lt;&gt;&amp;&apos;&quot;</body></message>")
        self.assertEqual(str(r.elements[0].body), "<b>&<>&'\"")

    def test_longTextIsOneString(self):
        """A 100 KB body (beyond expat's small text buffer), in one read or many, is one text child."""
        text = "x\u00e9" * 50_000
        data = f"<message><body>{text}</body><subject>a&amp;b</subject></message>".encode()
        for chunks in ((data,), tuple(data[i : i + 1000] for i in range(0, len(data), 1000))):
            r = Recorder(maxStanzaSize=200_000)
            r.feed(HEADER, *chunks)
            body = r.elements[0].body
            self.assertEqual(body.children, [text])
            self.assertEqual(str(body), text)
            self.assertEqual(str(r.elements[0].subject), "a&b")

    def test_prefixedStanza(self):
        """A stanza written with a prefix is the same stanza (namespaces, not prefixes, count)."""
        r = Recorder()
        r.feed(HEADER, b"<c:message xmlns:c='jabber:client' to='x@y'><c:body>hi</c:body></c:message>")
        e = r.elements[0]
        self.assertEqual((e.uri, e.name, e["to"], str(e.body)), (NS_CLIENT, "message", "x@y", "hi"))

    def test_closingTag(self):
        """The closing tag is reported as the end of the stream."""
        r = Recorder()
        r.feed(HEADER, b"<presence/></stream:stream>")
        self.assertEqual((len(r.elements), r.ended), (1, 1))

    # -- restricted XML (RFC 6120 §11.1) -------------------------------------------

    def test_comment(self):
        """A comment is restricted-xml."""
        self.assertStreamError("restricted-xml", HEADER, b"<message><!-- hi --></message>")

    def test_processingInstruction(self):
        """A processing instruction is restricted-xml."""
        self.assertStreamError("restricted-xml", HEADER, b"<?evil data?>")

    def test_dtd(self):
        """A document type declaration before the header is restricted-xml."""
        self.assertStreamError("restricted-xml", b"<?xml version='1.0'?><!DOCTYPE stream>", HEADER[21:])

    def test_undefinedEntity(self):
        """A reference to an entity beyond the five predefined ones is restricted-xml."""
        self.assertStreamError("restricted-xml", HEADER, b"<message><body>&nbsp;</body></message>")

    def test_billionLaughs(self):
        """The billion-laughs payload is refused at its DTD, before any entity is expanded."""
        started = time.monotonic()
        r = self.assertStreamError("restricted-xml", BILLION_LAUGHS)
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertEqual((r.headers, r.elements), ([], []))

    def test_entityDeclarationAfterHeader(self):
        """A DTD smuggled in after the header cannot declare entities: the stream is broken."""
        self.assertStreamError("not-well-formed", HEADER, b'<!DOCTYPE x [<!ENTITY a "b">]><message>&a;</message>')

    # -- broken XML --------------------------------------------------------------

    def test_mismatchedTags(self):
        """Mismatched tags are not-well-formed."""
        self.assertStreamError("not-well-formed", HEADER, b"<message><body></message>")

    def test_garbageBeforeHeader(self):
        """Bytes that are no XML at all are not-well-formed."""
        self.assertStreamError("not-well-formed", b"GET / HTTP/1.1\r\n\r\n")

    def test_unboundPrefix(self):
        """An undeclared prefix is not-well-formed (namespace well-formedness)."""
        self.assertStreamError("not-well-formed", HEADER, b"<x:message/>")

    def test_invalidUTF8(self):
        """Bytes that are not UTF-8 are not-well-formed."""
        self.assertStreamError("not-well-formed", HEADER, b"<message><body>\xff\xfe</body></message>")

    def test_textOutsideStanza(self):
        """Text directly inside the stream is bad-format."""
        self.assertStreamError("bad-format", HEADER, b"hello<presence/>")

    # -- encodings (RFC 6120 §11.6) ------------------------------------------------

    def test_declaredOtherEncoding(self):
        """An XML declaration naming an encoding other than UTF-8 is unsupported-encoding."""
        self.assertStreamError("unsupported-encoding", b"<?xml version='1.0' encoding='ISO-8859-1'?>", HEADER[21:])

    def test_declaredUTF8(self):
        """encoding='UTF-8' (any case) is accepted."""
        r = Recorder()
        r.feed(b"<?xml version='1.0' encoding='utf-8'?>" + HEADER[21:])
        self.assertEqual(len(r.headers), 1)

    def test_utf16WithBOM(self):
        """A UTF-16 stream (with a byte order mark) is unsupported-encoding, not silently decoded."""
        self.assertStreamError("unsupported-encoding", HEADER.decode().encode("utf-16"))

    def test_utf16WithoutBOM(self):
        """A UTF-16 stream without a byte order mark is unsupported-encoding."""
        self.assertStreamError("unsupported-encoding", HEADER.decode().encode("utf-16-be"))

    def test_utf16BOMSplitAcrossReads(self):
        """A byte order mark cut over two reads is still unsupported-encoding (found by bench/fuzz_atheris.py)."""
        data = HEADER.decode().encode("utf-16")
        self.assertStreamError("unsupported-encoding", data[:1], data[1:])

    def test_utf16NULInSecondRead(self):
        """NULs among the first 4 bytes are unsupported-encoding, however the reads cut them."""
        data = HEADER.decode().encode("utf-16-le")
        self.assertStreamError("unsupported-encoding", data[:1], data[1:3], data[3:])

    # -- limits --------------------------------------------------------------------

    def test_stanzaTooLarge(self):
        """A stanza over the size limit is policy-violation before it is complete."""
        self.assertStreamError("policy-violation", HEADER, b"<message><body>" + b"x" * 20000, maxStanzaSize=10000)

    def test_stanzaTooLargeInSmallChunks(self):
        """The size limit holds when the oversized stanza trickles in small chunks."""
        r = Recorder(maxStanzaSize=10000)
        r.feed(HEADER, b"<message><body>")
        with self.assertRaises(StreamError) as e:
            for _ in range(200):
                r.feed(b"x" * 100)
        self.assertEqual(e.exception.condition, "policy-violation")

    def test_endlessStartTag(self):
        """A start tag that never ends (one huge attribute, no element event) still hits the limit."""
        r = Recorder(maxStanzaSize=10000)
        r.feed(HEADER, b"<message to='")
        with self.assertRaises(StreamError) as e:
            for _ in range(200):
                r.feed(b"a" * 100)
                r.feed(b" ")  # whitespace inside a tag is no keepalive
        self.assertEqual(e.exception.condition, "policy-violation")

    def test_stanzaTooLargeInOneRead(self):
        """A whole oversized stanza in one read (a BOSH body, a WebSocket message) is refused, not delivered (found by bench/fuzz_atheris.py)."""
        huge = b"'" + b"a" * 20000 + b"'"
        for stanza in (b"<message to=" + huge + b"/>", b"<message><x a=" + huge + b"/></message>"):
            r = self.assertStreamError("policy-violation", HEADER + stanza + b"<presence/>", maxStanzaSize=10000)
            self.assertEqual(r.elements, [])

    def test_headerTooLargeInOneRead(self):
        """A stream header over the limit is refused in one read too, whatever follows it (found by bench/fuzz_atheris.py)."""
        header = HEADER[:-1] + b" x='" + b"a" * 20000 + b"'>"
        for after in (b"<presence/>", b" ", b""):
            r = self.assertStreamError("policy-violation", header + after, maxStanzaSize=10000)
            self.assertEqual(r.elements, [])

    def test_stanzaAtTheLimit(self):
        """Stanzas under the limit pass, however many are sent."""
        r = Recorder(maxStanzaSize=10000)
        r.feed(HEADER)
        stanza = b"<message><body>" + b"x" * 9000 + b"</body></message>"
        for _ in range(20):
            r.feed(stanza)
        self.assertEqual(len(r.elements), 20)

    def test_tooDeep(self):
        """Nesting deeper than the limit is policy-violation."""
        self.assertStreamError("policy-violation", HEADER, b"<message>" + b"<a>" * 10, maxDepth=8)

    def test_deepButAllowed(self):
        """Nesting up to the limit (the stream element counts as depth 1) is fine."""
        r = Recorder(maxDepth=8)
        r.feed(HEADER, b"<message>" + b"<a>" * 6 + b"</a>" * 6 + b"</message>")
        self.assertEqual(len(r.elements), 1)

    # -- restarts ------------------------------------------------------------------

    def test_stopInsideCallback(self):
        """After stop() in an element callback, the rest of that chunk and later chunks are ignored."""
        got = []
        parser: StreamParser

        def onElement(e):
            got.append(e.name)
            if e.name == "starttls":
                parser.stop()

        parser = StreamParser(lambda a: None, onElement, lambda: None, 10000, 8)
        parser.feed(HEADER + b"<starttls/><message/>")
        parser.feed(b"<presence/>")
        self.assertEqual(got, ["starttls"])

    # -- releasing an idle stream's parser ---------------------------------------------

    def test_releaseBetweenStanzas(self):
        """A parser released between stanzas reads the next stanzas in the stream's namespaces, and the closing tag, as before."""
        r = Recorder()
        r.feed(HEADER, b"<presence/> ")
        self.assertTrue(r.parser.release())
        r.feed(b"<message to='a@b'><body>hi</body></message>")
        self.assertTrue(r.parser.release())
        r.feed(b"<c:iq xmlns:c='jabber:client' type='get' id='1'/></stream:stream>")
        self.assertEqual([e.toXml() for e in r.elements], [
            "<presence xmlns='jabber:client'/>",
            "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
            "<c:iq xmlns:c='jabber:client' type='get' id='1'/>",
        ])
        self.assertEqual((len(r.headers), r.ended), (1, 1))

    def test_releaseRefusedWhileSomethingIsHalfRead(self):
        """A parser holding part of a stanza or of a tag is not released, and nothing of it is lost."""
        stanza = b"<message to='a@b'><body>hi</body></message>"
        for cut in (len(b"<message to='a@b'><body>h"), len(b"<message to='a"), len(b"<mess")):
            r = Recorder()
            r.feed(HEADER, stanza[:cut])
            self.assertFalse(r.parser.release())
            r.feed(stanza[cut:])
            self.assertEqual([e.toXml() for e in r.elements], ["<message xmlns='jabber:client' to='a@b'><body>hi</body></message>"])
        self.assertFalse(Recorder().parser.release())  # no header yet

    def test_releasedParserKeepsLimits(self):
        """After a release the stanza size limit still holds."""
        r = Recorder(maxStanzaSize=10000)
        r.feed(HEADER)
        self.assertTrue(r.parser.release())
        with self.assertRaises(StreamError) as e:
            r.feed(b"<message><body>" + b"x" * 20000)
        self.assertEqual(e.exception.condition, "policy-violation")

    def test_releaseWithUnusualHeaders(self):
        """A header with its namespace as the default (no prefix) re-opens with the same closing tag; an ambiguous one is never released."""
        r = Recorder()
        r.feed(b"<stream xmlns='http://etherx.jabber.org/streams'><message xmlns='jabber:client'/>")
        self.assertTrue(r.parser.release())
        r.feed(b"<message xmlns='jabber:client'/></stream>")
        self.assertEqual((len(r.elements), r.ended), (2, 1))
        r = Recorder()
        r.feed(b"<a:stream xmlns:a='http://etherx.jabber.org/streams' xmlns:b='http://etherx.jabber.org/streams' xmlns='jabber:client'>")
        self.assertFalse(r.parser.release())
