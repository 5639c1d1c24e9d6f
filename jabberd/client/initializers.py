"""
The steps of client stream negotiation (RFC 6120 §5-§7) as Twisted
initializers: STARTTLS, SASL and the legacy session.

Twisted runs C{xs.initializers} in order each time stream features arrive;
a step that restarts the stream returns C{Reset}. We replace three of
Twisted's own steps: STARTTLS, to turn "not offered" and "refused" into a
L{TLSFailed} a person understands; SASL, for SCRAM, channel binding,
EXTERNAL and verifying the server's proof; and the session, which RFC 6121
made optional (C{<optional/>}) and which we then skip.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from twisted.internet import defer
from twisted.words.protocols.jabber import client as jclient
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish

from jabberd.client import sasl
from jabberd.client.errors import AuthenticationFailed, TLSFailed
from jabberd.client.tls import channelBindings, tlsConnection

__all__ = [
    "NS_SASL",
    "NS_SASL_CB",
    "SASLInitializer",
    "SessionInitializer",
    "StartTLSInitializer",
]

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"


class StartTLSInitializer(xmlstream.TLSInitiatingInitializer):
    """STARTTLS, always required: this client never authenticates in the clear."""

    def __init__(self, xs: xmlstream.XmlStream, configurationForTLS: Any) -> None:
        super().__init__(xs, required=True, configurationForTLS=configurationForTLS)

    def initialize(self) -> Any:
        if self.feature not in self.xmlstream.features:
            raise TLSFailed("the server does not offer STARTTLS; refusing to continue unencrypted")
        return self.start()

    def onFailure(self, obj: Any) -> None:
        self.xmlstream.removeObserver("/proceed", self.onProceed)
        self._deferred.errback(TLSFailed("the server refused STARTTLS"))


def _decode(element: domish.Element) -> bytes | None:
    """The base64 payload of a SASL element; None when empty, b"" for "="."""
    text = str(element).strip()
    if not text:
        return None
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("malformed-challenge", "the server sent invalid base64") from None


class SASLInitializer(xmlstream.BaseFeatureInitiatingInitializer):
    """
    SASL authentication with our mechanisms (see L{jabberd.client.sasl}).

    The chosen mechanism's name is stored on the authenticator
    (C{authenticator.mechanism}) so callers can see what was used.
    """

    feature = (NS_SASL, "mechanisms")

    def __init__(self, xs: xmlstream.XmlStream, allowed: list[str] | None = None, nonce: str | None = None) -> None:
        super().__init__(xs, required=True)
        self.allowed = allowed
        self._nonce = nonce
        self._deferred: defer.Deferred | None = None
        self.mechanism: sasl.Mechanism | None = None

    def context(self) -> sasl.SaslContext:
        """What SASL knows of this stream: offers, channel bindings, credentials."""
        xs = self.xmlstream
        auth = xs.authenticator
        offered = [str(m).strip() for m in xs.features[self.feature].elements(NS_SASL, "mechanism")]
        cb = xs.features.get((NS_SASL_CB, "sasl-channel-binding"))
        cbTypes = None
        if cb is not None:
            cbTypes = [c["type"] for c in cb.elements(NS_SASL_CB, "channel-binding") if c.getAttribute("type")]
        conn = tlsConnection(xs.transport)
        return sasl.SaslContext(
            username=auth.jid.user,
            password=auth.password,
            offered=offered,
            cbTypes=cbTypes,
            bindings=channelBindings(conn) if conn is not None else {},
            tlsVersion=conn.get_protocol_version_name() if conn is not None else None,
            haveClientCertificate=auth.haveClientCertificate,
        )

    def start(self) -> defer.Deferred:
        ctx = self.context()
        name = sasl.chooseMechanism(ctx, self.allowed)
        self.mechanism = sasl.create(name, ctx, nonce=self._nonce)
        self.xmlstream.authenticator.mechanism = name
        self.xmlstream.authenticator.channelBinding = getattr(self.mechanism, "cbType", None)
        self._deferred = defer.Deferred()
        xs = self.xmlstream
        xs.addObserver(f"/challenge[@xmlns='{NS_SASL}']", self._onChallenge)
        xs.addOnetimeObserver(f"/success[@xmlns='{NS_SASL}']", self._onSuccess)
        xs.addOnetimeObserver(f"/failure[@xmlns='{NS_SASL}']", self._onFailure)
        auth = domish.Element((NS_SASL, "auth"))
        auth["mechanism"] = name
        initial = self.mechanism.getInitialResponse()
        if initial is not None:
            auth.addContent(base64.b64encode(initial).decode("ascii") or "=")
        xs.send(auth)
        return self._deferred

    def _cleanup(self) -> None:
        xs = self.xmlstream
        xs.removeObserver(f"/challenge[@xmlns='{NS_SASL}']", self._onChallenge)
        xs.removeObserver(f"/success[@xmlns='{NS_SASL}']", self._onSuccess)
        xs.removeObserver(f"/failure[@xmlns='{NS_SASL}']", self._onFailure)

    def _fail(self, error: Exception, abort: bool) -> None:
        self._cleanup()
        if abort:
            self.xmlstream.send(domish.Element((NS_SASL, "abort")))
        if self._deferred is not None and not self._deferred.called:
            self._deferred.errback(error)

    def _onChallenge(self, element: domish.Element) -> None:
        assert self.mechanism is not None
        try:
            response = self.mechanism.getResponse(_decode(element) or b"")
        except AuthenticationFailed as e:
            self._fail(e, abort=True)
            return
        reply = domish.Element((NS_SASL, "response"))
        if response:
            reply.addContent(base64.b64encode(response).decode("ascii"))
        self.xmlstream.send(reply)

    def _onSuccess(self, element: domish.Element) -> None:
        assert self.mechanism is not None
        try:
            self.mechanism.checkSuccess(_decode(element))
        except AuthenticationFailed as e:
            # Never restart the stream with a server that failed to prove itself.
            self._fail(e, abort=False)
            return
        self._cleanup()
        xs = self.xmlstream
        xs.authenticator.downgradeProtected = getattr(self.mechanism, "downgradeProtected", False)
        xs.reset()
        xs.sendHeader()
        assert self._deferred is not None
        self._deferred.callback(xmlstream.Reset)

    def _onFailure(self, element: domish.Element) -> None:
        condition, text = "not-authorized", None
        for child in element.elements():
            if child.name == "text":
                text = str(child).strip() or None
            else:
                condition = child.name
        self._fail(AuthenticationFailed(condition, text), abort=False)


class SessionInitializer(jclient.SessionInitializer):
    """The RFC 3921 session, only when the server still requires it."""

    def initialize(self) -> Any:
        feature = self.xmlstream.features.get(self.feature)
        if feature is None or any(c.name == "optional" for c in feature.elements()):
            return None
        return self.start()
