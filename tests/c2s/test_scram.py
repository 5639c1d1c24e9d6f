"""
Tests for L{jabberd.scram}: credential derivation, SASLprep, and the RFC
5802 / RFC 7677 example exchanges reproduced byte for byte by the server.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from jabberd import scram
from jabberd.c2s.sasl import Challenge, SASLContext, ScramMechanism, Success


def b64(s: str) -> bytes:
    return base64.b64decode(s)


# RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256), user "user",
# password "pencil".  Each: salt, client-first, server nonce part,
# server-first, client-final, server-final.
RFC5802 = dict(
    mechanism="SCRAM-SHA-1",
    salt="QSXCR+Q6sek8bf92",
    clientFirst=b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    serverNonce="3rfcNHYJY1ZVvWVs7j",
    serverFirst=b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
    b"s=QSXCR+Q6sek8bf92,i=4096",
    clientFinal=b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
    b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    serverFinal=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
)
RFC7677 = dict(
    mechanism="SCRAM-SHA-256",
    salt="W22ZaJ0SNY7soEsUEjb6gQ==",
    clientFirst=b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    serverNonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    serverFirst=b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    clientFinal=b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    serverFinal=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
)


class RFCExampleTests(SynchronousTestCase):
    """The server reproduces the RFC example exchanges exactly."""

    def exchange(self, example: dict) -> None:
        credential = scram.deriveCredential(
            "pencil", example["mechanism"], 4096, salt=b64(example["salt"])
        )
        ctx = SASLContext(
            host="example.com",
            lookup=lambda username: succeed(
                {example["mechanism"]: credential} if username == "user" else None
            ),
            offeredMechanisms=[example["mechanism"]],
        )
        mechanism = ScramMechanism(
            example["mechanism"],
            ctx,
            serverNonce=lambda: example["serverNonce"],
            downgradeProtection=False,
        )
        challenge = self.successResultOf(mechanism.start(example["clientFirst"]))
        self.assertEqual(challenge, Challenge(example["serverFirst"]))
        success = self.successResultOf(mechanism.step(example["clientFinal"]))
        self.assertEqual(success, Success("user", example["serverFinal"]))

    def test_rfc5802(self) -> None:
        """The RFC 5802 §5 SCRAM-SHA-1 exchange is reproduced byte for byte."""
        self.exchange(RFC5802)

    def test_rfc7677(self) -> None:
        """The RFC 7677 §3 SCRAM-SHA-256 exchange is reproduced byte for byte."""
        self.exchange(RFC7677)

    def test_keyLadderGivesRFCProof(self) -> None:
        """The exported primitives compute the RFC 5802 client proof and server signature."""
        salted = scram.saltedPassword("pencil", "SCRAM-SHA-1", b64(RFC5802["salt"]), 4096)
        clientKey = scram.clientKey("SCRAM-SHA-1", salted)
        authMessage = b",".join(
            (
                RFC5802["clientFirst"][3:],
                RFC5802["serverFirst"],
                RFC5802["clientFinal"].rpartition(b",p=")[0],
            )
        )
        signature = scram.hmacDigest(
            "SCRAM-SHA-1", scram.storedKey("SCRAM-SHA-1", clientKey), authMessage
        )
        proof = bytes(a ^ b for a, b in zip(clientKey, signature))
        self.assertEqual(b"p=" + base64.b64encode(proof), RFC5802["clientFinal"].rpartition(b",")[2])
        verifier = scram.hmacDigest(
            "SCRAM-SHA-1", scram.serverKey("SCRAM-SHA-1", salted), authMessage
        )
        self.assertEqual(b"v=" + base64.b64encode(verifier), RFC5802["serverFinal"])


class DeriveCredentialTests(SynchronousTestCase):
    """Deriving what the store keeps."""

    def test_matchesIndependentComputation(self) -> None:
        """StoredKey and ServerKey follow RFC 5802 §3 computed with hashlib directly."""
        salt = b"0123456789abcdef"
        credential = scram.deriveCredential("pencil", "SCRAM-SHA-256", 5000, salt=salt)
        salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 5000)
        clientKey = hmac.new(salted, b"Client Key", "sha256").digest()
        self.assertEqual(
            credential,
            scram.ScramCredential(
                mechanism="SCRAM-SHA-256",
                salt=salt,
                iterations=5000,
                stored_key=hashlib.sha256(clientKey).digest(),
                server_key=hmac.new(salted, b"Server Key", "sha256").digest(),
            ),
        )

    def test_fieldOrder(self) -> None:
        """The fields are named and ordered like the store's ScramCredential."""
        self.assertEqual(
            [f.name for f in dataclasses.fields(scram.ScramCredential)],
            ["mechanism", "salt", "iterations", "stored_key", "server_key"],
        )

    def test_randomSalt(self) -> None:
        """Without a salt a fresh 16-byte one is drawn each time."""
        a = scram.deriveCredential("pencil", "SCRAM-SHA-1")
        b = scram.deriveCredential("pencil", "SCRAM-SHA-1")
        self.assertEqual(len(a.salt), 16)
        self.assertNotEqual(a.salt, b.salt)
        self.assertNotEqual(a.stored_key, b.stored_key)
        self.assertEqual(a.iterations, 4096)

    def test_fewIterationsRejected(self) -> None:
        """Fewer than 4096 iterations are refused (RFC 5802 §5.1, RFC 7677 §4)."""
        self.assertRaises(ValueError, scram.deriveCredential, "pencil", "SCRAM-SHA-1", 4095)
        self.assertRaises(ValueError, scram.deriveCredentials, "pencil", 1000)

    def test_unknownMechanismRejected(self) -> None:
        """Only the families in HASHES can be derived; -PLUS is not a family."""
        self.assertRaises(ValueError, scram.deriveCredential, "pencil", "SCRAM-MD5")
        self.assertRaises(ValueError, scram.deriveCredential, "pencil", "SCRAM-SHA-1-PLUS")

    def test_badPasswordsRejected(self) -> None:
        """Empty passwords, prohibited characters and empty salts are refused."""
        self.assertRaises(ValueError, scram.deriveCredential, "", "SCRAM-SHA-1")
        self.assertRaises(ValueError, scram.deriveCredential, "\u00ad", "SCRAM-SHA-1")
        self.assertRaises(ValueError, scram.deriveCredential, "a\x07b", "SCRAM-SHA-1")
        self.assertRaises(ValueError, scram.deriveCredential, "pencil", "SCRAM-SHA-1", salt=b"")

    def test_passwordIsSASLprepped(self) -> None:
        """Passwords equal under SASLprep give the same credential."""
        salt = b"s" * 16
        self.assertEqual(
            scram.deriveCredential("I\u00adX", "SCRAM-SHA-1", salt=salt),
            scram.deriveCredential("IX", "SCRAM-SHA-1", salt=salt),
        )

    def test_deriveCredentials(self) -> None:
        """One credential per family, each with its own salt."""
        credentials = scram.deriveCredentials("pencil", 4096)
        self.assertEqual([c.mechanism for c in credentials], list(scram.HASHES))
        self.assertNotEqual(credentials[0].salt, credentials[1].salt)
        self.assertEqual(len(credentials[1].stored_key), 32)


class SASLprepTests(SynchronousTestCase):
    """SASLprep (RFC 4013)."""

    def test_rfc4013Examples(self) -> None:
        """The examples of RFC 4013 §3 give the documented output."""
        self.assertEqual(scram.saslprep("I\u00adX"), "IX")
        self.assertEqual(scram.saslprep("user"), "user")
        self.assertEqual(scram.saslprep("USER"), "USER")
        self.assertEqual(scram.saslprep("\u00aa"), "a")
        self.assertEqual(scram.saslprep("\u2168"), "IX")

    def test_rfc4013Errors(self) -> None:
        """The error examples of RFC 4013 §3: a prohibited character and a bidi violation."""
        self.assertRaises(ValueError, scram.saslprep, "\u0007")
        self.assertRaises(ValueError, scram.saslprep, "\u0627\u0031")

    def test_nonAsciiSpace(self) -> None:
        """Non-ASCII spaces are mapped to SPACE (RFC 4013 §2.1)."""
        self.assertEqual(scram.saslprep("a\u00a0b\u3000c"), "a b c")

    def test_rightToLeft(self) -> None:
        """Right-to-left text that starts and ends right-to-left is accepted."""
        self.assertEqual(scram.saslprep("\u0627\u0031\u0628"), "\u0627\u0031\u0628")

    def test_unassigned(self) -> None:
        """Unassigned code points fail for stored strings but pass for queries."""
        self.assertRaises(ValueError, scram.saslprep, "a\u0221")
        self.assertEqual(scram.saslprep("a\u0221", allowUnassigned=True), "a\u0221")


class DowngradeProtectionHashTests(SynchronousTestCase):
    """The XEP-0474 hash."""

    def test_xepExample(self) -> None:
        """The XEP-0474 §5.3 example lists hash to G6k/rBLDqgOhRRaCuuatSDFkJ08=."""
        self.assertEqual(
            scram.downgradeProtectionHash(
                "SCRAM-SHA-1-PLUS",
                ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"],
                ["tls-server-end-point", "tls-exporter"],
            ),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08=",
        )

    def test_withoutChannelBindingFeature(self) -> None:
        """Without a XEP-0440 feature the string is only the sorted mechanisms, no %x1F."""
        self.assertEqual(
            scram.downgradeProtectionHash(
                "SCRAM-SHA-256", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"], None
            ),
            base64.b64encode(
                hashlib.sha256(b"PLAIN\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256").digest()
            ).decode(),
        )
