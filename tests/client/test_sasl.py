"""
Client SASL: SCRAM against the RFC 5802 / RFC 7677 examples byte for
byte, the server-signature check, XEP-0474 downgrade protection (the
XEP's own example, and a MITM against jabberd's real server mechanism),
and how a mechanism and a channel binding are chosen.
"""

from __future__ import annotations

import base64

from twisted.trial import unittest

from jabberd import scram
from jabberd.c2s import sasl as serversasl
from jabberd.client.errors import AuthenticationFailed
from jabberd.client.sasl import SaslContext, Scram, chooseChannelBinding, chooseMechanism, create


class ScramExampleTests(unittest.TestCase):
    """The published test vectors."""

    def test_rfc5802Example(self) -> None:
        """RFC 5802 §5: user/pencil with SCRAM-SHA-1 produces the RFC's messages and accepts its server signature."""
        m = Scram("SCRAM-SHA-1", "user", "pencil", nonce="fyko+d2lbbFgONRv9qkxdawL")
        self.assertEqual(m.getInitialResponse(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
        final = m.getResponse(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        self.assertEqual(final, b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
        m.checkSuccess(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")

    def test_rfc7677Example(self) -> None:
        """RFC 7677 §3: user/pencil with SCRAM-SHA-256 produces the RFC's messages and accepts its server signature."""
        m = Scram("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
        self.assertEqual(m.getInitialResponse(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        final = m.getResponse(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        self.assertEqual(
            final,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        )
        m.checkSuccess(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")

    def test_wrongServerSignature(self) -> None:
        """A server that does not know the password (wrong v=) is refused: invalid-server-signature."""
        m = Scram("SCRAM-SHA-1", "user", "pencil", nonce="fyko+d2lbbFgONRv9qkxdawL")
        m.getResponse(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        e = self.assertRaises(AuthenticationFailed, m.checkSuccess, b"v=" + base64.b64encode(b"x" * 20))
        self.assertEqual(e.condition, "invalid-server-signature")

    def test_successWithoutSignature(self) -> None:
        """A bare <success/> after SCRAM is refused: the server never proved itself."""
        m = Scram("SCRAM-SHA-1", "user", "pencil", nonce="fyko+d2lbbFgONRv9qkxdawL")
        m.getResponse(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        self.assertEqual(self.assertRaises(AuthenticationFailed, m.checkSuccess, None).condition, "invalid-server-signature")

    def test_nonceMustExtendOurs(self) -> None:
        """A server nonce that does not start with ours is a malformed challenge."""
        m = Scram("SCRAM-SHA-1", "user", "pencil", nonce="abc")
        e = self.assertRaises(AuthenticationFailed, m.getResponse, b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096")
        self.assertEqual(e.condition, "malformed-challenge")

    def test_absurdIterationCount(self) -> None:
        """An iteration count meant to make us spin is refused before any hashing."""
        m = Scram("SCRAM-SHA-1", "user", "pencil", nonce="abc")
        e = self.assertRaises(AuthenticationFailed, m.getResponse, b"r=abcdef,s=QSXCR+Q6sek8bf92,i=100000000")
        self.assertEqual(e.condition, "malformed-challenge")

    def test_channelBindingHeader(self) -> None:
        """-PLUS sends p=<type> and binds the channel data into c=."""
        m = Scram("SCRAM-SHA-256-PLUS", "user", "pencil", cbType="tls-exporter", cbData=b"\x01\x02", nonce="abc")
        self.assertEqual(m.getInitialResponse(), b"p=tls-exporter,,n=user,r=abc")
        final = m.getResponse(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096")
        self.assertTrue(final.startswith(b"c=" + base64.b64encode(b"p=tls-exporter,,\x01\x02") + b",r=abcdef,p="))

    def test_usernameEscaping(self) -> None:
        """"," and "=" in the user name are sent as =2C and =3D (RFC 5802 §5.1)."""
        self.assertEqual(Scram("SCRAM-SHA-1", "a,b=c", "pw", nonce="n").getInitialResponse(), b"n,,n=a=2Cb=3Dc,r=n")


class DowngradeProtectionTests(unittest.TestCase):
    """XEP-0474: the h attribute."""

    def test_xep0474Example(self) -> None:
        """The XEP's example: SCRAM-SHA-1-PLUS with tls-exporter sends its initial response and accepts h=G6k/..."""
        m = Scram(
            "SCRAM-SHA-1-PLUS",
            "user",
            "pencil",
            cbType="tls-exporter",
            cbData=b"exported",
            offered=["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"],
            cbTypes=["tls-server-end-point", "tls-exporter"],
            nonce="12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6",
        )
        self.assertEqual(
            base64.b64encode(m.getInitialResponse()),
            b"cD10bHMtZXhwb3J0ZXIsLG49dXNlcixyPTEyQzRDRDVDLUUzOEUtNEE5OC04RjZELTE1QzM4RjUxQ0NDNg==",
        )
        m.getResponse(
            b"r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,"
            b"s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08="
        )
        self.assertTrue(m.downgradeProtected)

    def test_strippedPlusDetected(self) -> None:
        """A MITM removed -PLUS from the offer: jabberd's server mechanism's h no longer matches, and we stop before sending a proof."""
        offered = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"]
        credential = scram.deriveCredential("pencil", "SCRAM-SHA-256")
        ctx = serversasl.SASLContext(
            host="localhost",
            lookup=lambda user: {"SCRAM-SHA-256": credential},
            channelBindings={"tls-exporter": b"x" * 32},
            offeredMechanisms=offered,
            tlsActive=True,
        )
        server = serversasl.ScramMechanism("SCRAM-SHA-256", ctx)
        # What the client saw after the MITM: no -PLUS, no XEP-0440 list.
        client = Scram("SCRAM-SHA-256", "user", "pencil", offered=["SCRAM-SHA-256", "SCRAM-SHA-1"], cbTypes=None)
        challenge = self.successResultOf(server.start(client.getInitialResponse()))
        e = self.assertRaises(AuthenticationFailed, client.getResponse, challenge.data)
        self.assertEqual(e.condition, "downgrade-detected")

    def test_untamperedAgainstServer(self) -> None:
        """The same exchange without a MITM completes, h checked, and the server's proof verifies."""
        offered = ["SCRAM-SHA-256", "SCRAM-SHA-1"]
        credential = scram.deriveCredential("pencil", "SCRAM-SHA-256")
        ctx = serversasl.SASLContext(host="localhost", lookup=lambda user: {"SCRAM-SHA-256": credential}, offeredMechanisms=offered, tlsActive=True)
        server = serversasl.ScramMechanism("SCRAM-SHA-256", ctx)
        client = Scram("SCRAM-SHA-256", "user", "pencil", offered=offered, cbTypes=None)
        challenge = self.successResultOf(server.start(client.getInitialResponse()))
        success = self.successResultOf(server.step(client.getResponse(challenge.data)))
        client.checkSuccess(success.data)
        self.assertEqual((success.username, client.downgradeProtected), ("user", True))


def context(**kw) -> SaslContext:
    kw.setdefault("username", "user")
    kw.setdefault("password", "pencil")
    kw.setdefault("offered", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
    return SaslContext(**kw)


TLS13 = {"tls-exporter": b"e" * 32, "tls-server-end-point": b"s" * 32}
TLS12 = {"tls-unique": b"u" * 12, "tls-server-end-point": b"s" * 32}


class ChoiceTests(unittest.TestCase):
    """Picking the mechanism and the channel binding."""

    def test_tls13PicksExporter(self) -> None:
        """On TLS 1.3 with both types advertised (XEP-0440), tls-exporter wins."""
        ctx = context(tlsVersion="TLSv1.3", bindings=TLS13, cbTypes=["tls-server-end-point", "tls-exporter"])
        self.assertEqual((chooseMechanism(ctx), chooseChannelBinding(ctx)), ("SCRAM-SHA-256-PLUS", "tls-exporter"))

    def test_tls12PicksUnique(self) -> None:
        """On TLS 1.2, tls-unique is preferred over tls-server-end-point."""
        ctx = context(tlsVersion="TLSv1.2", bindings=TLS12, cbTypes=["tls-server-end-point", "tls-unique"])
        self.assertEqual(chooseChannelBinding(ctx), "tls-unique")

    def test_serverEndPointWhenOnlyOne(self) -> None:
        """If the server lists only tls-server-end-point, that is what we use."""
        ctx = context(tlsVersion="TLSv1.3", bindings=TLS13, cbTypes=["tls-server-end-point"])
        self.assertEqual(chooseChannelBinding(ctx), "tls-server-end-point")

    def test_defaultsWithoutList(self) -> None:
        """Without XEP-0440: tls-exporter on TLS 1.3 (RFC 9266), tls-unique on TLS 1.2 (RFC 5929)."""
        self.assertEqual(chooseChannelBinding(context(tlsVersion="TLSv1.3", bindings=TLS13)), "tls-exporter")
        self.assertEqual(chooseChannelBinding(context(tlsVersion="TLSv1.2", bindings=TLS12)), "tls-unique")

    def test_noCommonTypeMeansNoPlusAndFlagN(self) -> None:
        """No common channel-binding type: plain SCRAM with GS2 flag "n" (we cannot bind to what the server offers)."""
        ctx = context(tlsVersion="TLSv1.3", bindings=TLS13, cbTypes=["tls-future"])
        name = chooseMechanism(ctx)
        self.assertEqual((name, create(name, ctx, nonce="abc").getInitialResponse()), ("SCRAM-SHA-256", b"n,,n=user,r=abc"))

    def test_flagYWhenServerOffersNoPlus(self) -> None:
        """We could bind but the server offers no -PLUS: GS2 flag "y", so a stripped offer is caught (RFC 5802 §6)."""
        ctx = context(tlsVersion="TLSv1.3", bindings=TLS13, offered=["SCRAM-SHA-256", "SCRAM-SHA-1"])
        self.assertEqual(create(chooseMechanism(ctx), ctx, nonce="abc").getInitialResponse(), b"y,,n=user,r=abc")

    def test_plainNeverWithoutTLS(self) -> None:
        """A server offering only PLAIN on an unencrypted stream gets no password: no-acceptable-mechanism."""
        e = self.assertRaises(AuthenticationFailed, chooseMechanism, context(offered=["PLAIN"]))
        self.assertEqual(
            (e.condition, e.text), ("no-acceptable-mechanism", "the server offers PLAIN; PLAIN is never used without TLS")
        )

    def test_plainLastUnderTLS(self) -> None:
        """PLAIN under TLS only when nothing stronger is offered."""
        self.assertEqual(chooseMechanism(context(tlsVersion="TLSv1.3", offered=["PLAIN", "SCRAM-SHA-1"])), "SCRAM-SHA-1")
        self.assertEqual(chooseMechanism(context(tlsVersion="TLSv1.3", offered=["PLAIN"])), "PLAIN")

    def test_externalFirstWithCertificate(self) -> None:
        """With a client certificate, EXTERNAL is preferred when offered."""
        ctx = context(tlsVersion="TLSv1.3", bindings=TLS13, haveClientCertificate=True, offered=["SCRAM-SHA-256", "EXTERNAL"])
        self.assertEqual(chooseMechanism(ctx), "EXTERNAL")

    def test_allowedRestrictsAndOrders(self) -> None:
        """An allow-list restricts the choice and sets the order."""
        ctx = context(tlsVersion="TLSv1.3", bindings=TLS13, cbTypes=["tls-exporter"])
        self.assertEqual(chooseMechanism(ctx, ["SCRAM-SHA-1", "SCRAM-SHA-256"]), "SCRAM-SHA-1")
        e = self.assertRaises(AuthenticationFailed, chooseMechanism, ctx, ["DIGEST-MD5"])
        self.assertEqual(e.condition, "no-acceptable-mechanism")
