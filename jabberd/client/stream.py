"""
The client XML stream: Twisted's XmlStream with stream compression, and
the authenticator that lists the negotiation steps.

Everything stanza-level (handlers, IQ tracking) lives in
L{jabberd.client.client}; this module is only the framing and the order
of negotiation: [version check, STARTTLS (unless direct TLS), SASL,
compression, bind, session].
"""

from __future__ import annotations

import zlib
from typing import Any

from twisted.internet import protocol
from twisted.words.protocols.jabber import client as jclient
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.error import StreamError as TwistedStreamError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import BootstrapMixin

from jabberd.client.compression import NS_COMPRESS, CompressionInitializer, Deflater, Inflater
from jabberd.client.errors import StreamError
from jabberd.client.initializers import SASLInitializer, SessionInitializer, StartTLSInitializer

__all__ = ["ClientAuthenticator", "ClientXmlStream", "ClientStreamFactory"]


class ClientXmlStream(xmlstream.XmlStream):
    """An XmlStream that can switch to zlib compression (XEP-0138) mid-stream."""

    _deflater: Deflater | None = None
    _inflater: Inflater | None = None

    def startCompression(self) -> None:
        """From now on, compress what we send and decompress what we receive."""
        self._deflater = Deflater()
        self._inflater = Inflater()

    @property
    def compressed(self) -> bool:
        return self._deflater is not None

    def dataReceived(self, data: bytes) -> None:
        if self._inflater is None:
            super().dataReceived(data)
            return
        try:
            for piece in self._inflater.decompress(data):
                super().dataReceived(piece)
                if self.stream is None:  # connection lost while parsing
                    return
        except zlib.error:
            # XEP-0138 §3: a processing failure ends the stream.
            failure = domish.Element((NS_COMPRESS, "failure"))
            failure.addElement("processing-failed")
            self.sendStreamError(TwistedStreamError("undefined-condition", appCondition=failure))

    def send(self, obj: Any) -> None:
        if self._deflater is None:
            super().send(obj)
            return
        if domish.IElement.providedBy(obj):
            obj = obj.toXml(prefixes=self.prefixes, defaultUri=self.namespace, prefixesInScope=list(self.prefixes.values()))
        if isinstance(obj, str):
            obj = obj.encode("utf-8")
        if self.rawDataOutFn:
            self.rawDataOutFn(obj)
        self.transport.write(self._deflater.compress(obj))


class ClientAuthenticator(xmlstream.ConnectAuthenticator):
    """
    Negotiates a client stream: TLS, SASL, compression, bind, session.

    After negotiation C{jid} is the bound full JID, C{mechanism} the SASL
    mechanism used (C{channelBinding} its binding type for -PLUS,
    C{downgradeProtected} whether XEP-0474 was checked) and C{compression}
    the XEP-0138 initializer (its C{result}).
    """

    namespace = "jabber:client"

    def __init__(
        self,
        jid: JID,
        password: str | None,
        tlsOptions: Any,
        *,
        directTLS: bool = False,
        mechanisms: list[str] | None = None,
        compression: bool = False,
        haveClientCertificate: bool = False,
    ) -> None:
        super().__init__(jid.host)
        self.jid = jid
        self.password = password
        self.tlsOptions = tlsOptions
        self.directTLS = directTLS
        self.mechanisms = mechanisms
        self.wantCompression = compression
        self.haveClientCertificate = haveClientCertificate
        self.mechanism: str | None = None
        self.channelBinding: str | None = None
        self.downgradeProtected = False
        self.compression: CompressionInitializer | None = None

    def associateWithStream(self, xs: xmlstream.XmlStream) -> None:
        super().associateWithStream(xs)
        self.compression = CompressionInitializer(xs, wanted=self.wantCompression)
        steps: list[Any] = [jclient.CheckVersionInitializer(xs)]
        if not self.directTLS:
            steps.append(StartTLSInitializer(xs, self.tlsOptions))
        steps += [
            SASLInitializer(xs, allowed=self.mechanisms),
            self.compression,
            jclient.BindInitializer(xs, required=True),
            SessionInitializer(xs, required=False),
        ]
        xs.initializers = steps


class ClientStreamFactory(BootstrapMixin, protocol.ClientFactory):
    """
    Builds one L{ClientXmlStream} per connection, with the bootstrap
    observers (stream manager, connect logic) installed on it.
    """

    protocol = ClientXmlStream

    def __init__(self, authenticator: ClientAuthenticator) -> None:
        BootstrapMixin.__init__(self)
        self.authenticator = authenticator

    def buildProtocol(self, addr: Any) -> ClientXmlStream:
        xs = self.protocol(self.authenticator)
        xs.factory = self
        self.installBootstraps(xs)
        return xs


def streamErrorFrom(error: Any) -> StreamError:
    """Our L{StreamError} from Twisted's (condition, text)."""
    return StreamError(getattr(error, "condition", "undefined-condition"), getattr(error, "text", None))
