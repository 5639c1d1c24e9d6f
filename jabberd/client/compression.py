"""
Stream compression (XEP-0138), client side: the zlib method.

Compression sits between the socket (or TLS) and the XML parser, so it is
two small objects the stream calls: L{Deflater} for what we send (a sync
flush after every write, so the server can read each stanza at once:
XEP-0138 §8) and L{Inflater} for what we receive, which hands out the
decompressed bytes in bounded pieces so a small hostile input cannot
expand into one huge allocation.

The negotiation itself is L{CompressionInitializer}: after TLS and SASL
(XEP-0170 order), offered as C{<compression><method>zlib</method>}; a
C{<failure/>} is not fatal, the stream simply stays uncompressed.

Off by default: XEP-0138 §9 deems zlib over TLS insecure (CRIME-style
attacks recover secrets from compressed sizes), so a caller asks for it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from twisted.internet import defer
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish

__all__ = [
    "NS_COMPRESS",
    "NS_COMPRESS_FEATURE",
    "CompressionInitializer",
    "Deflater",
    "Inflater",
]

NS_COMPRESS_FEATURE = "http://jabber.org/features/compress"
NS_COMPRESS = "http://jabber.org/protocol/compress"

#: Decompressed bytes handed to the parser at a time.
CHUNK = 65536


class Deflater:
    """Compress outgoing data, flushing after each write."""

    def __init__(self) -> None:
        self._z = zlib.compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)


class Inflater:
    """Decompress incoming data in pieces of at most L{CHUNK} bytes."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj()

    def decompress(self, data: bytes) -> Iterator[bytes]:
        """
        Yield the decompressed pieces of C{data}.

        @raise zlib.error: the data is not a valid zlib stream.
        """
        while data:
            out = self._z.decompress(data, CHUNK)
            data = self._z.unconsumed_tail
            if out:
                yield out


class CompressionInitializer(xmlstream.BaseFeatureInitiatingInitializer):
    """
    Negotiate zlib when the server offers it and the client wants it.

    The stream must provide C{startCompression()} (L{ClientXmlStream} does).
    C{result} ends up C{"zlib"}, the server's failure condition, or None
    when nothing was tried.
    """

    feature = (NS_COMPRESS_FEATURE, "compression")

    def __init__(self, xs: xmlstream.XmlStream, wanted: bool = False) -> None:
        super().__init__(xs, required=False)
        self.wanted = wanted
        self.result: str | None = None
        self._deferred: defer.Deferred | None = None

    def start(self) -> defer.Deferred | None:
        methods = [str(m).strip() for m in self.xmlstream.features[self.feature].elements() if m.name == "method"]
        if not self.wanted or "zlib" not in methods:
            return None
        self._deferred = defer.Deferred()
        self.xmlstream.addOnetimeObserver(f"/compressed[@xmlns='{NS_COMPRESS}']", self._onCompressed)
        self.xmlstream.addOnetimeObserver(f"/failure[@xmlns='{NS_COMPRESS}']", self._onFailure)
        request = domish.Element((NS_COMPRESS, "compress"))
        request.addElement("method", content="zlib")
        self.xmlstream.send(request)
        return self._deferred

    def _onCompressed(self, element: domish.Element) -> None:
        self.xmlstream.removeObserver(f"/failure[@xmlns='{NS_COMPRESS}']", self._onFailure)
        self.result = "zlib"
        xs = self.xmlstream
        xs.startCompression()
        xs.reset()
        xs.sendHeader()
        assert self._deferred is not None
        self._deferred.callback(xmlstream.Reset)

    def _onFailure(self, element: domish.Element) -> None:
        # XEP-0138 §3: not fatal; carry on uncompressed.
        self.xmlstream.removeObserver(f"/compressed[@xmlns='{NS_COMPRESS}']", self._onCompressed)
        child = next(element.elements(), None)
        self.result = child.name if child is not None else "failure"
        assert self._deferred is not None
        self._deferred.callback(None)
