"""
Tests for L{jabberd.c2s.sasl}: each mechanism driven with plain bytes by a
minimal client written here (independent of L{jabberd.scram}'s primitives).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.xmpp_stringprep import nodeprep

from jabberd import scram
from jabberd.c2s import sasl
from jabberd.c2s.sasl import Challenge, SASLContext, SASLFailure, ScramMechanism, Success

CB_DATA = {
    "tls-exporter": b"exporter-keying-material-32bytes",
    "tls-server-end-point": b"certificate-hash",
    "tls-unique": b"finished-message",
}
CERT = object()


class ScramClient:
    """
    A minimal SCRAM client (RFC 5802 §3, §7) computed with hashlib directly.

    ``flag`` overrides the GS2 channel-binding flag to play a misbehaving or
    manipulated client; ``cbData`` is what the client believes the channel's
    binding data is.
    """

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        authzid: str = "",
        cbType: str | None = None,
        cbData: bytes | None = None,
        flag: str | None = None,
        nonce: str = "cl1entN0nce",
    ) -> None:
        self.hash = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[
            mechanism.removesuffix("-PLUS")
        ]
        if flag is None:
            flag = f"p={cbType}" if cbType else "n"
        escape = lambda s: s.replace("=", "=3D").replace(",", "=2C")
        self.gs2 = f"{flag},{'a=' + escape(authzid) if authzid else ''},".encode()
        self.cbData = CB_DATA[cbType] if cbType and cbData is None else (cbData or b"")
        self.password = password.encode()
        self.nonce = nonce
        self.bare = f"n={escape(username)},r={nonce}".encode()

    def first(self) -> bytes:
        return self.gs2 + self.bare

    def final(self, serverFirst: bytes, extensions: bytes = b"", nonce: bytes | None = None) -> bytes:
        """The client-final-message; ``nonce`` replaces the r= it echoes."""
        attrs = dict(a.split(b"=", 1) for a in serverFirst.split(b","))
        assert attrs[b"r"].startswith(self.nonce.encode())
        salted = hashlib.pbkdf2_hmac(
            self.hash, self.password, base64.b64decode(attrs[b"s"]), int(attrs[b"i"])
        )
        clientKey = hmac.new(salted, b"Client Key", self.hash).digest()
        withoutProof = (
            b"c=" + base64.b64encode(self.gs2 + self.cbData) + b",r=" + (nonce or attrs[b"r"]) + extensions
        )
        self.authMessage = self.bare + b"," + serverFirst + b"," + withoutProof
        signature = hmac.new(
            hashlib.new(self.hash, clientKey).digest(), self.authMessage, self.hash
        ).digest()
        self.serverKey = hmac.new(salted, b"Server Key", self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(clientKey, signature))
        return withoutProof + b",p=" + base64.b64encode(proof)

    def verifierOK(self, serverFinal: bytes) -> bool:
        expected = hmac.new(self.serverKey, self.authMessage, self.hash).digest()
        return serverFinal == b"v=" + base64.b64encode(expected)


class Accounts:
    """An in-memory credential lookup that records what it was asked."""

    def __init__(self) -> None:
        self.credentials: dict[str, dict[str, scram.ScramCredential]] = {
            "juliet": {c.mechanism: c for c in scram.deriveCredentials("r0m30!")},
            "romeo": {c.mechanism: c for c in scram.deriveCredentials("jul1et")},
            "olduser": {"SCRAM-SHA-1": scram.deriveCredential("sha1only", "SCRAM-SHA-1")},
            "nokeys": {},
        }
        self.asked: list[str] = []

    def lookup(self, username: str) -> Deferred[dict[str, scram.ScramCredential] | None]:
        self.asked.append(username)
        return succeed(self.credentials.get(username))


def makeContext(
    accounts: Accounts,
    *,
    tls: bool = True,
    channelBindings: dict[str, bytes] | None = None,
    offered: list[str] | None = None,
    certificate: object | None = None,
    externalUsernames: Any = None,
) -> SASLContext:
    """A context; by default offering everything available()."""
    ctx = SASLContext(
        host="example.com",
        lookup=accounts.lookup,
        channelBindings=dict(CB_DATA if channelBindings is None else channelBindings),
        tlsActive=tls,
        peerCertificate=certificate,
        externalUsernames=externalUsernames,
    )
    ctx.offeredMechanisms = (
        offered if offered is not None else sasl.available(ctx, True, True)
    )
    return ctx


class MechanismTestCase(SynchronousTestCase):
    """Helpers to drive a mechanism and check its outcome."""

    def setUp(self) -> None:
        self.accounts = Accounts()

    def assertFails(self, d: Deferred, condition: str, text: str | None = None) -> SASLFailure:
        failure = self.failureResultOf(d, SASLFailure).value
        self.assertEqual(failure.condition, condition, repr(failure))
        if text is not None:
            self.assertEqual(failure.text, text)
        return failure

    def scram(
        self, name: str, client: ScramClient, ctx: SASLContext | None = None, **kw: Any
    ) -> tuple[ScramMechanism, Deferred]:
        """Run client-first and client-final; return the mechanism and the last Deferred."""
        mechanism = ScramMechanism(name, ctx or makeContext(self.accounts), **kw)
        challenge = self.successResultOf(mechanism.start(client.first()))
        self.assertIsInstance(challenge, Challenge)
        return mechanism, mechanism.step(client.final(challenge.data))

    def serverFirst(self, name: str, clientFirst: bytes, ctx: SASLContext | None = None) -> bytes:
        mechanism = sasl.create(name, ctx or makeContext(self.accounts))
        return self.successResultOf(mechanism.start(clientFirst)).data


class ScramTests(MechanismTestCase):
    """SCRAM-SHA-1 and SCRAM-SHA-256 without channel binding."""

    def test_success(self) -> None:
        """Both hashes authenticate the right password and prove the server to the client."""
        for name in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
            client = ScramClient(name, "juliet", "r0m30!")
            _, d = self.scram(name, client)
            success = self.successResultOf(d)
            self.assertEqual(success.username, "juliet")
            self.assertTrue(client.verifierOK(success.data))

    def test_viaCreate(self) -> None:
        """create() gives a working mechanism that carries its name."""
        mechanism = sasl.create("SCRAM-SHA-256", makeContext(self.accounts))
        self.assertEqual(mechanism.name, "SCRAM-SHA-256")
        client = ScramClient("SCRAM-SHA-256", "juliet", "r0m30!")
        challenge = self.successResultOf(mechanism.start(client.first()))
        self.assertIsInstance(self.successResultOf(mechanism.step(client.final(challenge.data))), Success)

    def test_noInitialResponse(self) -> None:
        """Without an initial response the server sends an empty challenge first."""
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        self.assertEqual(self.successResultOf(mechanism.start(None)), Challenge(b""))
        client = ScramClient("SCRAM-SHA-1", "juliet", "r0m30!")
        challenge = self.successResultOf(mechanism.step(client.first()))
        self.assertEqual(self.successResultOf(mechanism.step(client.final(challenge.data))).username, "juliet")

    def test_emptyInitialResponse(self) -> None:
        """An empty initial response is no client-first-message: malformed-request."""
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        self.assertFails(mechanism.start(b""), "malformed-request")

    def test_wrongPassword(self) -> None:
        """A wrong password fails at the proof with not-authorized."""
        _, d = self.scram("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", "juliet", "wrong"))
        self.assertFails(d, "not-authorized", "invalid-proof")

    def test_unknownUserIndistinguishable(self) -> None:
        """An unknown user gets a well-formed, stable challenge and the same failure as a wrong password."""
        known = self.serverFirst("SCRAM-SHA-256", b"n,,n=juliet,r=abc").split(b",")
        unknown1 = self.serverFirst("SCRAM-SHA-256", b"n,,n=nobody,r=abc").split(b",")
        unknown2 = self.serverFirst("SCRAM-SHA-256", b"n,,n=nobody,r=abc").split(b",")
        other = self.serverFirst("SCRAM-SHA-256", b"n,,n=someone,r=abc").split(b",")
        self.assertEqual([a[:2] for a in unknown1], [a[:2] for a in known])
        self.assertEqual(len(base64.b64decode(unknown1[1][2:])), len(base64.b64decode(known[1][2:])))
        self.assertEqual(unknown1[2], known[2])
        self.assertEqual(unknown1[1], unknown2[1])
        self.assertNotEqual(unknown1[1], other[1])

        _, wrong = self.scram("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", "juliet", "x"))
        _, missing = self.scram("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", "nobody", "x"))
        self.assertEqual(
            repr(self.assertFails(wrong, "not-authorized")),
            repr(self.assertFails(missing, "not-authorized")),
        )

    def test_fakeCredentialNeverAccepted(self) -> None:
        """Even a proof that fits the stand-in credential of an unknown user is refused."""
        known = scram.deriveCredentials("guess")
        self.patch(sasl, "_fakeCredential", lambda username, family, secret: next(
            c for c in known if c.mechanism == family))
        _, d = self.scram("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", "nobody", "guess"))
        self.assertFails(d, "not-authorized")
        plain = sasl.create("PLAIN", makeContext(self.accounts)).start(b"\0nobody\0guess")
        self.assertFails(plain, "not-authorized")

    def test_fakeSaltKeyedBySecret(self) -> None:
        """The fake salt depends on the per-process secret, so outsiders cannot predict it."""
        salts = set()
        for secret in (b"a" * 32, b"b" * 32):
            mechanism = ScramMechanism("SCRAM-SHA-1", makeContext(self.accounts), fakeSecret=secret)
            salts.add(self.successResultOf(mechanism.start(b"n,,n=nobody,r=abc")).data.split(b",")[1])
        self.assertEqual(len(salts), 2)

    def test_accountWithoutThatHash(self) -> None:
        """An account lacking a credential for the hash fails at the proof like a wrong password."""
        _, d = self.scram("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", "olduser", "sha1only"))
        self.assertFails(d, "not-authorized")
        _, d = self.scram("SCRAM-SHA-1", ScramClient("SCRAM-SHA-1", "olduser", "sha1only"))
        self.assertEqual(self.successResultOf(d).username, "olduser")

    def test_usernameNodeprepped(self) -> None:
        """The authcid is nodeprep'd before lookup and the prepared name is returned."""
        _, d = self.scram("SCRAM-SHA-1", ScramClient("SCRAM-SHA-1", "JuLiEt", "r0m30!"))
        self.assertEqual(self.successResultOf(d).username, "juliet")
        self.assertEqual(self.accounts.asked, ["juliet"])

    def test_usernameEscapes(self) -> None:
        """=2C and =3D in the username decode to comma and equals before lookup."""
        self.serverFirst("SCRAM-SHA-1", b"n,,n=a=2Cb=3Dc,r=abc")
        self.assertEqual(self.accounts.asked, ["a,b=c"])

    def test_badUsernameEscape(self) -> None:
        """An "=" not starting =2C or =3D is malformed-request."""
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        self.assertFails(mechanism.start(b"n,,n=a=b,r=abc"), "malformed-request")

    def test_invalidLocalpart(self) -> None:
        """A username that nodeprep refuses is not-authorized without a lookup."""
        for raw in (b"jul@iet", b"a\xc2\xa0b"):
            mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
            self.assertFails(mechanism.start(b"n,,n=" + raw + b",r=abc"), "not-authorized")
        self.assertEqual(self.accounts.asked, [])

    def test_authzidOwnJID(self) -> None:
        """An authzid equal to the account's bare JID (in any case) is accepted."""
        for authzid in ("juliet@example.com", "JULIET@Example.COM"):
            client = ScramClient("SCRAM-SHA-256", "juliet", "r0m30!", authzid=authzid)
            _, d = self.scram("SCRAM-SHA-256", client)
            self.assertEqual(self.successResultOf(d).username, "juliet")

    def test_authzidOtherJID(self) -> None:
        """Another user, another domain, a full JID or a bare domain are invalid-authzid."""
        for authzid in (
            "romeo@example.com",
            "juliet@example.org",
            "juliet@example.com/balcony",
            "example.com",
            "@example.com",
        ):
            client = ScramClient("SCRAM-SHA-256", "juliet", "r0m30!", authzid=authzid)
            _, d = self.scram("SCRAM-SHA-256", client)
            self.assertFails(d, "invalid-authzid")

    def test_authzidWithWrongPassword(self) -> None:
        """Authentication comes before authorization: a wrong password with a foreign authzid is not-authorized."""
        client = ScramClient("SCRAM-SHA-256", "juliet", "x", authzid="romeo@example.com")
        _, d = self.scram("SCRAM-SHA-256", client)
        self.assertFails(d, "not-authorized")

    def test_clientFinalExtensions(self) -> None:
        """Unknown optional attributes in client-final-message are covered by the proof and accepted."""
        client = ScramClient("SCRAM-SHA-1", "juliet", "r0m30!")
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        challenge = self.successResultOf(mechanism.start(client.first()))
        final = client.final(challenge.data, extensions=b",x=19C6532F")
        self.assertEqual(self.successResultOf(mechanism.step(final)).username, "juliet")

    def test_wrongNonce(self) -> None:
        """A client-final-message echoing another nonce fails even with a proof over what it sent."""
        for nonce in (b"cl1entN0nce", b"cl1entN0nceOLDSERVERNONCE"):
            client = ScramClient("SCRAM-SHA-1", "juliet", "r0m30!")
            mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
            challenge = self.successResultOf(mechanism.start(client.first()))
            final = client.final(challenge.data, nonce=nonce)
            self.assertFails(mechanism.step(final), "not-authorized", "nonce mismatch")

    def test_malformedClientFirst(self) -> None:
        """Broken client-first-messages are malformed-request."""
        for message in (
            b"n=juliet,r=abc",  # no GS2 header
            b"x,,n=juliet,r=abc",  # bad flag
            b"n,b=juliet,n=juliet,r=abc",  # authzid field without a=
            b"n,a=,n=juliet,r=abc",  # empty authzid
            b"n,,r=abc,n=juliet",  # wrong order
            b"n,,n=juliet",  # no nonce
            b"n,,n=juliet,r=",  # empty nonce
            b"n,,n=juliet,r=a\x01b",  # unprintable nonce
            b"n,,m=ext,n=juliet,r=abc",  # mandatory extension (RFC 5802 §5.1)
            b"n,,n=juliet,r=abc,1=x",  # not an attribute
            b"n,,n=,r=abc",  # empty username
            b"n,,n=\xff,r=abc",  # not UTF-8
            b"p=tls exporter,,n=juliet,r=abc",  # bad cb-name
        ):
            mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
            self.assertFails(mechanism.start(message), "malformed-request")

    def test_mandatoryExtension(self) -> None:
        """A reserved m= attribute fails with RFC 5802's extensions-not-supported."""
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        d = mechanism.start(b"n,,m=ext,n=juliet,r=abc")
        self.assertFails(d, "malformed-request", "extensions-not-supported")

    def test_malformedClientFinal(self) -> None:
        """Broken client-final-messages are malformed-request."""
        for final in (
            b"c=biws,r=NONCE",  # no proof
            b"r=NONCE,c=biws,p=AAAA",  # wrong order
            b"c=biws,p=AAAA",  # no nonce
            b"c=biws,r=NONCE,p=AAAA",  # proof of the wrong length
            b"c=biws,r=NONCE,p=\xff",  # not UTF-8
        ):
            mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
            nonce = self.successResultOf(mechanism.start(b"n,,n=juliet,r=abc")).data.split(b",")[0][2:]
            self.assertFails(mechanism.step(final.replace(b"NONCE", nonce)), "malformed-request")

    def test_badBase64(self) -> None:
        """Bad base64 in c= or p= is incorrect-encoding."""
        for final in (b"c=bi!s,r=NONCE,p=AAAA", b"c=biws,r=NONCE,p=AA*A", b"c=biw,r=NONCE,p=AAAA"):
            mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
            nonce = self.successResultOf(mechanism.start(b"n,,n=juliet,r=abc")).data.split(b",")[0][2:]
            self.assertFails(mechanism.step(final.replace(b"NONCE", nonce)), "incorrect-encoding")

    def test_outOfTurn(self) -> None:
        """Messages after the end or while the store is busy fail instead of mixing state."""
        client = ScramClient("SCRAM-SHA-1", "juliet", "r0m30!")
        mechanism, d = self.scram("SCRAM-SHA-1", client)
        self.successResultOf(d)
        self.assertFails(mechanism.step(b"c=biws"), "malformed-request")
        self.assertFails(mechanism.start(b"n,,n=juliet,r=abc"), "malformed-request")

        pending: Deferred = Deferred()
        ctx = makeContext(self.accounts)
        ctx.lookup = lambda username: pending
        mechanism = sasl.create("SCRAM-SHA-1", ctx)
        first = mechanism.start(b"n,,n=juliet,r=abc")
        self.assertFails(mechanism.step(b"c=biws,r=x,p=AAAA"), "malformed-request")
        pending.callback(self.accounts.credentials["juliet"])
        self.assertIsInstance(self.successResultOf(first), Challenge)

    def test_failedExchangeIsOver(self) -> None:
        """After a failure the mechanism accepts nothing more."""
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        self.assertFails(mechanism.start(b"garbage"), "malformed-request")
        self.assertFails(mechanism.step(b"n,,n=juliet,r=abc"), "malformed-request")

    def test_storeError(self) -> None:
        """A failing lookup is temporary-auth-failure and is logged."""
        ctx = makeContext(self.accounts)
        ctx.lookup = lambda username: fail(RuntimeError("database is down"))
        mechanism = sasl.create("SCRAM-SHA-1", ctx)
        self.assertFails(mechanism.start(b"n,,n=juliet,r=abc"), "temporary-auth-failure")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ChannelBindingTests(MechanismTestCase):
    """SCRAM-*-PLUS and the GS2 channel-binding flag."""

    def test_plusEachType(self) -> None:
        """Both -PLUS mechanisms succeed with every offered channel-binding type."""
        for name in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"):
            for cbType in CB_DATA:
                client = ScramClient(name, "juliet", "r0m30!", cbType=cbType)
                _, d = self.scram(name, client)
                success = self.successResultOf(d)
                self.assertEqual(success.username, "juliet")
                self.assertTrue(client.verifierOK(success.data))

    def test_plusWithAuthzid(self) -> None:
        """The c= check covers the whole GS2 header, authzid included."""
        client = ScramClient(
            "SCRAM-SHA-256-PLUS", "juliet", "r0m30!", cbType="tls-exporter", authzid="juliet@example.com"
        )
        _, d = self.scram("SCRAM-SHA-256-PLUS", client)
        self.assertEqual(self.successResultOf(d).username, "juliet")

    def test_wrongChannelBindingData(self) -> None:
        """Binding data from another TLS channel (a MITM) fails."""
        client = ScramClient("SCRAM-SHA-256-PLUS", "juliet", "r0m30!", cbType="tls-exporter", cbData=b"mitm")
        _, d = self.scram("SCRAM-SHA-256-PLUS", client)
        self.assertFails(d, "not-authorized", "channel-bindings-dont-match")

    def test_cbTypeNotOffered(self) -> None:
        """A channel-binding type the server does not have fails, known name or not."""
        ctx = makeContext(self.accounts, channelBindings={"tls-exporter": b"x"})
        for cbType in ("tls-unique", "tls-made-up"):
            mechanism = sasl.create("SCRAM-SHA-256-PLUS", ctx)
            d = mechanism.start(f"p={cbType},,n=juliet,r=abc".encode())
            self.assertFails(d, "not-authorized", "unsupported-channel-binding-type")

    def test_plusWithoutBindingFlag(self) -> None:
        """A -PLUS mechanism with the n or y flag is malformed-request."""
        for flag in (b"n", b"y"):
            mechanism = sasl.create("SCRAM-SHA-1-PLUS", makeContext(self.accounts))
            self.assertFails(mechanism.start(flag + b",,n=juliet,r=abc"), "malformed-request")

    def test_pFlagForNonPlus(self) -> None:
        """Asking for channel binding under a non-PLUS mechanism is malformed-request."""
        mechanism = sasl.create("SCRAM-SHA-256", makeContext(self.accounts))
        self.assertFails(mechanism.start(b"p=tls-exporter,,n=juliet,r=abc"), "malformed-request")

    def test_yFlagWhenPlusOffered(self) -> None:
        """The y flag while -PLUS was advertised reveals a stripped offer and fails (RFC 5802 §6)."""
        mechanism = sasl.create("SCRAM-SHA-256", makeContext(self.accounts))
        self.assertFails(
            mechanism.start(b"y,,n=juliet,r=abc"), "not-authorized", "server-does-support-channel-binding"
        )

    def test_yFlagWhenPlusNotOffered(self) -> None:
        """The y flag without -PLUS on offer is fine, and c= must then be base64 of "y,,"."""
        ctx = makeContext(self.accounts, tls=False, channelBindings={})
        self.assertNotIn("SCRAM-SHA-256-PLUS", ctx.offeredMechanisms)
        client = ScramClient("SCRAM-SHA-256", "juliet", "r0m30!", flag="y")
        _, d = self.scram("SCRAM-SHA-256", client, ctx)
        self.assertEqual(self.successResultOf(d).username, "juliet")

    def test_nFlagWhenPlusOffered(self) -> None:
        """A client without channel-binding support may still use plain SCRAM with n."""
        _, d = self.scram("SCRAM-SHA-1", ScramClient("SCRAM-SHA-1", "juliet", "r0m30!"))
        self.assertEqual(self.successResultOf(d).username, "juliet")

    def test_gs2HeaderSwap(self) -> None:
        """A c= that does not repeat the GS2 header actually sent fails."""
        client = ScramClient("SCRAM-SHA-1", "juliet", "r0m30!")
        mechanism = sasl.create("SCRAM-SHA-1", makeContext(self.accounts))
        challenge = self.successResultOf(mechanism.start(client.first()))
        client.gs2 = b"y,,"
        self.assertFails(mechanism.step(client.final(challenge.data)), "not-authorized")


class DowngradeProtectionTests(MechanismTestCase):
    """XEP-0474: the h attribute in server-first-message."""

    def test_xepFullExample(self) -> None:
        """The XEP-0474 §5.3 SCRAM-SHA-1-PLUS example is reproduced byte for byte, h included."""
        self.accounts.credentials["user"] = {
            "SCRAM-SHA-1": scram.deriveCredential(
                "pencil", "SCRAM-SHA-1", salt=base64.b64decode("QSXCR+Q6sek8bf92")
            )
        }
        ctx = makeContext(
            self.accounts,
            channelBindings={"tls-server-end-point": b"other", "tls-exporter": b"THIS IS FAKE CB DATA"},
            offered=["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"],
        )
        mechanism = ScramMechanism(
            "SCRAM-SHA-1-PLUS", ctx, serverNonce=lambda: "a09117a6-ac50-4f2f-93f1-93799c2bddf6"
        )
        initial = base64.b64decode(
            "cD10bHMtZXhwb3J0ZXIsLG49dXNlcixyPTEyQzRDRDVDLUUzOEUtNEE5OC04RjZELTE1QzM4RjUxQ0NDNg=="
        )
        challenge = self.successResultOf(mechanism.start(initial))
        self.assertEqual(
            challenge.data,
            base64.b64decode(
                "cj0xMkM0Q0Q1Qy1FMzhFLTRBOTgtOEY2RC0xNUMzOEY1MUNDQzZhMDkxMTdhNi1hYzUwLTRmMmYtOTNmMS05Mzc5OWMyYmRkZjYscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5NixoPUc2ay9yQkxEcWdPaFJSYUN1dWF0U0RGa0owOD0="
            ),
        )
        self.assertTrue(challenge.data.endswith(b",h=G6k/rBLDqgOhRRaCuuatSDFkJ08="))
        response = base64.b64decode(
            "Yz1jRDEwYkhNdFpYaHdiM0owWlhJc0xGUklTVk1nU1ZNZ1JrRkxSU0JEUWlCRVFWUkIscj0xMkM0Q0Q1Qy1FMzhFLTRBOTgtOEY2RC0xNUMzOEY1MUNDQzZhMDkxMTdhNi1hYzUwLTRmMmYtOTNmMS05Mzc5OWMyYmRkZjYseD0xOUM2NTMyRi0xQ0Y0LTRBMjctQTE4RC1EQzlDRUE0MUJCQjMscD1NL1NJRGpUK2RmY3hVaDg5alpFeXBSdkZ4QjQ9"
        )
        success = self.successResultOf(mechanism.step(response))
        self.assertEqual(success, Success("user", base64.b64decode("dj1NUXJNUHZ2N3l2NHg0Q3E0VzRJaDI1RXFTMmM9")))

    def test_hashOfThisOffer(self) -> None:
        """h is the hash of the offered mechanisms and channel-binding types, computed independently."""
        ctx = makeContext(self.accounts)
        expected = "\x1e".join(sorted(ctx.offeredMechanisms)) + "\x1f" + "\x1e".join(sorted(CB_DATA))
        for name, hashName in (("SCRAM-SHA-256", "sha256"), ("SCRAM-SHA-1-PLUS", "sha1")):
            flag = b"p=tls-unique" if name.endswith("PLUS") else b"n"
            serverFirst = self.serverFirst(name, flag + b",,n=juliet,r=abc", ctx)
            h = base64.b64encode(hashlib.new(hashName, expected.encode()).digest())
            self.assertEqual(serverFirst.split(b",")[3], b"h=" + h)

    def test_hashWithoutChannelBinding(self) -> None:
        """Without TLS there is no XEP-0440 feature, so no %x1F part."""
        ctx = makeContext(self.accounts, tls=False, channelBindings={})
        serverFirst = self.serverFirst("SCRAM-SHA-256", b"n,,n=juliet,r=abc", ctx)
        expected = hashlib.sha256(b"ANONYMOUS\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256").digest()
        self.assertEqual(serverFirst.split(b",")[3], b"h=" + base64.b64encode(expected))

    def test_hashCoveredByProof(self) -> None:
        """A MITM who rewrites h breaks the proof: the client signs the server-first it saw."""
        client = ScramClient("SCRAM-SHA-256", "juliet", "r0m30!")
        mechanism = sasl.create("SCRAM-SHA-256", makeContext(self.accounts))
        challenge = self.successResultOf(mechanism.start(client.first()))
        forged = challenge.data.rpartition(b",h=")[0] + b",h=" + base64.b64encode(b"\0" * 32)
        self.assertFails(mechanism.step(client.final(forged)), "not-authorized")


class PlainTests(MechanismTestCase):
    """PLAIN (RFC 4616) against stored SCRAM credentials."""

    def plain(self, message: bytes, ctx: SASLContext | None = None) -> Deferred:
        return sasl.create("PLAIN", ctx or makeContext(self.accounts)).start(message)

    def test_success(self) -> None:
        """The right password authenticates; the username is nodeprep'd."""
        self.assertEqual(self.successResultOf(self.plain(b"\0juliet\0r0m30!")), Success("juliet", None))
        self.assertEqual(self.successResultOf(self.plain(b"\0JULIET\0r0m30!")).username, "juliet")

    def test_sha1OnlyAccount(self) -> None:
        """An account with only a SHA-1 credential still logs in with PLAIN."""
        self.assertEqual(self.successResultOf(self.plain(b"\0olduser\0sha1only")).username, "olduser")

    def test_passwordSASLprepped(self) -> None:
        """A password is compared after SASLprep, so a soft hyphen does not matter."""
        self.accounts.credentials["ix"] = {
            c.mechanism: c for c in scram.deriveCredentials("I\u00adX")
        }
        self.assertEqual(self.successResultOf(self.plain(b"\0ix\0IX")).username, "ix")

    def test_wrongPassword(self) -> None:
        """A wrong password, an unknown user and an account without keys are all not-authorized."""
        for message in (b"\0juliet\0wrong", b"\0nobody\0r0m30!", b"\0nokeys\0x", b"\0juliet\0a\x07b"):
            self.assertFails(self.plain(message), "not-authorized")

    def test_authzid(self) -> None:
        """The own bare JID as authzid is accepted, any other is invalid-authzid."""
        self.assertEqual(
            self.successResultOf(self.plain(b"juliet@example.com\0juliet\0r0m30!")).username, "juliet"
        )
        self.assertFails(self.plain(b"romeo@example.com\0juliet\0r0m30!"), "invalid-authzid")

    def test_malformed(self) -> None:
        """Wrong field counts, empty authcid or password, and non-UTF-8 are malformed-request."""
        for message in (b"", b"juliet\0r0m30!", b"\0\0r0m30!", b"\0juliet\0", b"\0a\0b\0c", b"\0juliet\0\xff"):
            self.assertFails(self.plain(message), "malformed-request")

    def test_noInitialResponse(self) -> None:
        """Without an initial response the server asks with an empty challenge."""
        mechanism = sasl.create("PLAIN", makeContext(self.accounts))
        self.assertEqual(self.successResultOf(mechanism.start(None)), Challenge(b""))
        self.assertEqual(self.successResultOf(mechanism.step(b"\0juliet\0r0m30!")).username, "juliet")

    def test_withoutTLS(self) -> None:
        """PLAIN is refused on an unencrypted stream with encryption-required, even if offered."""
        ctx = makeContext(self.accounts, tls=False, offered=["PLAIN"])
        e = self.assertRaises(SASLFailure, sasl.create, "PLAIN", ctx)
        self.assertEqual(e.condition, "encryption-required")
        self.assertFails(sasl.PlainMechanism(ctx).start(b"\0juliet\0r0m30!"), "encryption-required")


class ExternalTests(MechanismTestCase):
    """EXTERNAL with a client certificate (XEP-0178)."""

    def external(self, names: list[str], message: bytes | None, host: str = "example.com") -> Deferred:
        ctx = makeContext(self.accounts, certificate=CERT, externalUsernames=lambda cert: list(names))
        ctx.host = host
        mechanism = sasl.create("EXTERNAL", ctx)
        return mechanism.start(message)

    def test_singleNameNoAuthzid(self) -> None:
        """A certificate naming one account and an empty authzid authenticates as it."""
        self.assertEqual(self.successResultOf(self.external(["juliet"], b"")), Success("juliet", None))

    def test_mapperGetsCertificate(self) -> None:
        """The mapper is asked about the stream's verified certificate."""
        seen = []
        ctx = makeContext(
            self.accounts, certificate=CERT, externalUsernames=lambda cert: seen.append(cert) or ["Juliet"]
        )
        self.assertEqual(self.successResultOf(sasl.create("EXTERNAL", ctx).start(b"")).username, "juliet")
        self.assertEqual(seen, [CERT])

    def test_severalNamesNoAuthzid(self) -> None:
        """Several candidate accounts and no authzid is invalid-authzid."""
        self.assertFails(self.external(["juliet", "romeo"], b""), "invalid-authzid")

    def test_severalNamesWithAuthzid(self) -> None:
        """An authzid picks one of the certificate's accounts."""
        d = self.external(["juliet", "romeo"], b"romeo@example.com")
        self.assertEqual(self.successResultOf(d).username, "romeo")

    def test_authzidNotCovered(self) -> None:
        """An authzid the certificate does not cover is invalid-authzid."""
        for authzid in (b"nurse@example.com", b"romeo@other.example", b"romeo@example.com/r"):
            self.assertFails(self.external(["juliet", "romeo"], authzid), "invalid-authzid")

    def test_nothingMapped(self) -> None:
        """A certificate that maps to no valid username is not-authorized."""
        self.assertFails(self.external([], b""), "not-authorized")
        self.assertFails(self.external(["bad@name"], b""), "not-authorized")

    def test_accountGone(self) -> None:
        """A mapped name without an account is not-authorized."""
        self.assertFails(self.external(["nurse"], b""), "not-authorized")

    def test_noInitialResponse(self) -> None:
        """Without an initial response, an empty challenge, then the (empty) authzid."""
        ctx = makeContext(self.accounts, certificate=CERT, externalUsernames=lambda cert: ["juliet"])
        mechanism = sasl.create("EXTERNAL", ctx)
        self.assertEqual(self.successResultOf(mechanism.start(None)), Challenge(b""))
        self.assertEqual(self.successResultOf(mechanism.step(b"")).username, "juliet")

    def test_unavailableWithoutCertificate(self) -> None:
        """EXTERNAL cannot be created without a certificate and a mapper."""
        ctx = makeContext(self.accounts, offered=["EXTERNAL"])
        e = self.assertRaises(SASLFailure, sasl.create, "EXTERNAL", ctx)
        self.assertEqual(e.condition, "invalid-mechanism")


class AnonymousTests(MechanismTestCase):
    """ANONYMOUS (XEP-0175)."""

    def test_randomUsername(self) -> None:
        """Each exchange succeeds at once with a fresh UUID that is a valid localpart."""
        names = set()
        for initial in (None, b"", b"trace@example.com"):
            success = self.successResultOf(sasl.create("ANONYMOUS", makeContext(self.accounts)).start(initial))
            self.assertIsNone(success.data)
            uuid.UUID(success.username)
            self.assertEqual(nodeprep.prepare(success.username), success.username)
            names.add(success.username)
        self.assertEqual(len(names), 3)
        self.assertEqual(self.accounts.asked, [])


class OfferTests(SynchronousTestCase):
    """available(), channelBindingTypes() and create()."""

    def setUp(self) -> None:
        self.accounts = Accounts()

    def test_everything(self) -> None:
        """With TLS, binding data and a certificate, all mechanisms strongest first."""
        ctx = makeContext(self.accounts, certificate=CERT, externalUsernames=lambda c: [])
        self.assertEqual(
            sasl.available(ctx, allowPlain=True, allowAnonymous=True),
            [
                "SCRAM-SHA-256-PLUS",
                "SCRAM-SHA-1-PLUS",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "PLAIN",
                "EXTERNAL",
                "ANONYMOUS",
            ],
        )

    def test_withoutTLS(self) -> None:
        """Without TLS: no -PLUS, no PLAIN even if allowed."""
        ctx = makeContext(self.accounts, tls=False, channelBindings={})
        self.assertEqual(sasl.available(ctx, True, False), ["SCRAM-SHA-256", "SCRAM-SHA-1"])

    def test_tlsWithoutBindingData(self) -> None:
        """TLS without usable binding data: no -PLUS; empty data counts as absent."""
        ctx = makeContext(self.accounts, channelBindings={"tls-unique": b""})
        self.assertEqual(sasl.channelBindingTypes(ctx), [])
        self.assertEqual(sasl.available(ctx, True, False), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])

    def test_gating(self) -> None:
        """PLAIN and ANONYMOUS follow the policy; EXTERNAL needs a certificate and a mapper."""
        ctx = makeContext(self.accounts, channelBindings={}, certificate=CERT)
        self.assertEqual(sasl.available(ctx, False, False), ["SCRAM-SHA-256", "SCRAM-SHA-1"])
        ctx.externalUsernames = lambda c: []
        ctx.peerCertificate = None
        self.assertNotIn("EXTERNAL", sasl.available(ctx, False, False))

    def test_channelBindingTypes(self) -> None:
        """Types come preferred first and only when present; unknown ones are ignored."""
        ctx = makeContext(self.accounts)
        self.assertEqual(
            sasl.channelBindingTypes(ctx), ["tls-exporter", "tls-server-end-point", "tls-unique"]
        )
        ctx.channelBindings = {"tls-unique": b"u", "tls-server-end-point": b"e", "x-made-up": b"?"}
        self.assertEqual(sasl.channelBindingTypes(ctx), ["tls-server-end-point", "tls-unique"])

    def test_createRefuses(self) -> None:
        """Unknown or unoffered names are invalid-mechanism."""
        ctx = makeContext(self.accounts, tls=False, channelBindings={}, offered=["SCRAM-SHA-1", "BOGUS"])
        for name in ("BOGUS", "DIGEST-MD5", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "ANONYMOUS"):
            e = self.assertRaises(SASLFailure, sasl.create, name, ctx)
            self.assertEqual(e.condition, "invalid-mechanism", name)

    def test_plusWithoutBindingData(self) -> None:
        """A -PLUS name offered by mistake without binding data is still refused."""
        ctx = makeContext(self.accounts, channelBindings={}, offered=["SCRAM-SHA-1-PLUS"])
        e = self.assertRaises(SASLFailure, sasl.create, "SCRAM-SHA-1-PLUS", ctx)
        self.assertEqual(e.condition, "invalid-mechanism")

    def test_failureConditions(self) -> None:
        """SASLFailure takes only RFC 6120 §6.5 conditions."""
        self.assertRaises(ValueError, SASLFailure, "bad-password")
        self.assertEqual(SASLFailure("aborted", "why").text, "why")
