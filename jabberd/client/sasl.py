"""
Client-side SASL mechanisms (RFC 6120 §6) and how one is chosen.

Twisted's SASL initializer knows DIGEST-MD5, PLAIN and ANONYMOUS; a server
today wants SCRAM. The mechanisms here follow Twisted's ISASLMechanism shape
(C{name}, C{getInitialResponse()}, C{getResponse(challenge)}) plus
C{checkSuccess(data)}, because SCRAM is mutual: the server must prove it
knows the password too, and a client that skips that check talks to anyone
who can answer "success".
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass, field
from typing import Protocol

from jabberd import scram
from jabberd.client.errors import AuthenticationFailed

__all__ = [
    "External",
    "Mechanism",
    "Plain",
    "SaslContext",
    "Scram",
    "chooseChannelBinding",
    "chooseMechanism",
    "create",
]

#: Preference order when the caller does not restrict the mechanisms.
SCRAM_PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1")

#: PBKDF2 iterations above this are refused: a hostile server could
#: otherwise make the client spin for minutes (RFC 5802 §9).
MAX_ITERATIONS = 1_000_000


class Mechanism(Protocol):
    """One client SASL exchange."""

    name: str

    def getInitialResponse(self) -> bytes | None: ...

    def getResponse(self, challenge: bytes) -> bytes: ...

    def checkSuccess(self, data: bytes | None) -> None: ...


@dataclass
class SaslContext:
    """
    What the stream knows when it picks and runs a mechanism.

    @ivar offered: the mechanisms in the server's <mechanisms/>, as sent.
    @ivar cbTypes: XEP-0440 channel-binding types the server advertised;
        None when it sent no <sasl-channel-binding/>.
    @ivar bindings: this connection's channel-binding data by type.
    @ivar tlsVersion: e.g. "TLSv1.3"; None without TLS.
    """

    username: str | None
    password: str | None
    offered: list[str]
    cbTypes: list[str] | None = None
    bindings: dict[str, bytes] = field(default_factory=dict)
    tlsVersion: str | None = None
    haveClientCertificate: bool = False
    authzid: str | None = None


# --- choosing ------------------------------------------------------------------


def chooseChannelBinding(ctx: SaslContext) -> str | None:
    """
    The channel-binding type for SCRAM-*-PLUS, or None if none can work.

    With the server's XEP-0440 list, the strongest type in it we can
    compute: tls-exporter binds the whole key schedule, tls-unique the
    handshake, tls-server-end-point only the certificate. Without the list,
    the protocol default: tls-exporter on TLS 1.3 (RFC 9266 §3), tls-unique
    on TLS 1.2 (RFC 5929).
    """
    if ctx.tlsVersion is None:
        return None
    if ctx.cbTypes is None:
        default = "tls-exporter" if ctx.tlsVersion == "TLSv1.3" else "tls-unique"
        return default if default in ctx.bindings else None
    if ctx.tlsVersion == "TLSv1.3":
        preference = ("tls-exporter", "tls-server-end-point")
    else:
        preference = ("tls-unique", "tls-exporter", "tls-server-end-point")
    for cbType in preference:
        if cbType in ctx.cbTypes and cbType in ctx.bindings:
            return cbType
    return None


def chooseMechanism(ctx: SaslContext, allowed: list[str] | None = None) -> str:
    """
    The mechanism to use, the strongest both sides support.

    EXTERNAL first when we hold a client certificate (the certificate is the
    credential); then SCRAM with channel binding, SCRAM, and PLAIN last and
    only under TLS, since it hands the password to the server. C{allowed}
    restricts (and orders) the choice.

    @raise AuthenticationFailed: C{no-acceptable-mechanism}.
    """
    candidates: list[str] = []
    if ctx.haveClientCertificate:
        candidates.append("EXTERNAL")
    if ctx.password is not None and ctx.username:
        if chooseChannelBinding(ctx) is not None:
            candidates += [f"{family}-PLUS" for family in SCRAM_PREFERENCE]
        candidates += list(SCRAM_PREFERENCE)
        if ctx.tlsVersion is not None:
            candidates.append("PLAIN")
    usable = [m for m in candidates if m in ctx.offered]
    if allowed is not None:
        usable = [m for m in allowed if m in usable]
    if not usable:
        why = f"the server offers {', '.join(ctx.offered) or 'nothing'}"
        if "PLAIN" in ctx.offered and ctx.tlsVersion is None:
            why += "; PLAIN is never used without TLS"
        if allowed is not None:
            why += f"; allowed here: {', '.join(allowed)}"
        raise AuthenticationFailed("no-acceptable-mechanism", why)
    return usable[0]


def create(name: str, ctx: SaslContext, nonce: str | None = None) -> Mechanism:
    """A fresh client mechanism named C{name} for this stream."""
    if name == "EXTERNAL":
        return External(ctx.authzid)
    if name == "PLAIN":
        if ctx.tlsVersion is None:
            raise AuthenticationFailed("no-acceptable-mechanism", "PLAIN is never used without TLS")
        assert ctx.username is not None and ctx.password is not None
        return Plain(ctx.username, ctx.password, ctx.authzid)
    family = name.removesuffix("-PLUS")
    if family in scram.HASHES:
        assert ctx.username is not None and ctx.password is not None
        cbType = chooseChannelBinding(ctx) if name.endswith("-PLUS") else None
        if name.endswith("-PLUS") and cbType is None:
            raise AuthenticationFailed("no-acceptable-mechanism", "no usable channel binding for -PLUS")
        serverOffersPlus = any(m.endswith("-PLUS") for m in ctx.offered)
        return Scram(
            name,
            ctx.username,
            ctx.password,
            cbType=cbType,
            cbData=ctx.bindings.get(cbType) if cbType else None,
            # RFC 5802 §6 "y": we could bind, but the server offered no -PLUS.
            clientSupportsBinding=chooseChannelBinding(ctx) is not None and not serverOffersPlus,
            offered=ctx.offered,
            cbTypes=ctx.cbTypes,
            authzid=ctx.authzid,
            nonce=nonce,
        )
    raise AuthenticationFailed("no-acceptable-mechanism", f"unknown mechanism {name}")


# --- mechanisms -----------------------------------------------------------------


class Plain:
    """PLAIN (RFC 4616): the password in the clear, so only ever inside TLS."""

    name = "PLAIN"

    def __init__(self, username: str, password: str, authzid: str | None = None) -> None:
        self._message = b"\0".join(
            (s or "").encode("utf-8") for s in (authzid, username, password)
        )

    def getInitialResponse(self) -> bytes:
        return self._message

    def getResponse(self, challenge: bytes) -> bytes:
        raise AuthenticationFailed("malformed-challenge", "PLAIN expects no challenge")

    def checkSuccess(self, data: bytes | None) -> None:
        """PLAIN has nothing to verify."""


class External:
    """EXTERNAL (XEP-0178): the TLS client certificate is the credential."""

    name = "EXTERNAL"

    def __init__(self, authzid: str | None = None) -> None:
        self._authzid = authzid

    def getInitialResponse(self) -> bytes:
        # Empty ("=") lets the server derive the identity from the certificate.
        return (self._authzid or "").encode("utf-8")

    def getResponse(self, challenge: bytes) -> bytes:
        return (self._authzid or "").encode("utf-8")

    def checkSuccess(self, data: bytes | None) -> None:
        """EXTERNAL has nothing to verify."""


def _saslname(value: str) -> str:
    """RFC 5802 §5.1: "," and "=" in names are written =2C and =3D."""
    return value.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: str) -> dict[str, str]:
    """Parse "a=1,b=2" into a dict; a bad attribute is a malformed challenge."""
    result: dict[str, str] = {}
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise AuthenticationFailed("malformed-challenge", f"bad SCRAM attribute {part!r}")
        result.setdefault(part[0], part[2:])
    return result


class Scram:
    """
    SCRAM-SHA-1/-256 and their -PLUS variants (RFC 5802, RFC 7677), client side.

    The server proves itself in the server-final-message (C{v=}); we
    compare it in constant time and refuse a success that lacks it. When
    the server sends the XEP-0474 C{h=} attribute we recompute it from the
    lists we saw, so a man in the middle who removed -PLUS or a channel
    binding type is caught before we send a proof.
    """

    def __init__(
        self,
        name: str,
        username: str,
        password: str,
        *,
        cbType: str | None = None,
        cbData: bytes | None = None,
        clientSupportsBinding: bool = False,
        offered: list[str] | None = None,
        cbTypes: list[str] | None = None,
        authzid: str | None = None,
        nonce: str | None = None,
    ) -> None:
        """
        @param nonce: the client nonce; injectable so tests can replay the
            RFC 5802/7677 examples byte for byte.
        """
        self.name = name
        self.family = name.removesuffix("-PLUS")
        scram.hashName(self.family)
        self.plus = name.endswith("-PLUS")
        #: the channel-binding type in use, for -PLUS
        self.cbType = cbType if self.plus else None
        if self.plus and (cbType is None or cbData is None):
            raise ValueError("-PLUS needs a channel-binding type and its data")
        self._password = password
        self._cbData = cbData or b""
        self._offered = list(offered or [])
        self._cbTypes = cbTypes
        self._nonce = nonce or base64.b64encode(os.urandom(18)).decode("ascii")
        if self.plus:
            flag = f"p={cbType}"
        else:
            flag = "y" if clientSupportsBinding else "n"
        authz = f"a={_saslname(authzid)}" if authzid else ""
        self._gs2Header = f"{flag},{authz},".encode("utf-8")
        self._clientFirstBare = f"n={_saslname(username)},r={self._nonce}"
        self._expectedSignature: bytes | None = None
        self._verified = False
        self._step = 0
        #: whether the server sent the XEP-0474 attribute (and it matched)
        self.downgradeProtected = False

    def getInitialResponse(self) -> bytes:
        return self._gs2Header + self._clientFirstBare.encode("utf-8")

    def getResponse(self, challenge: bytes) -> bytes:
        self._step += 1
        if self._step == 1:
            return self._clientFinal(challenge)
        # Some servers send server-final as a challenge, then an empty success.
        self.checkSuccess(challenge)
        return b""

    def _clientFinal(self, challenge: bytes) -> bytes:
        try:
            serverFirst = challenge.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed-challenge", "server-first-message is not UTF-8") from None
        if serverFirst.startswith("m="):
            raise AuthenticationFailed("malformed-challenge", "unsupported mandatory SCRAM extension")
        attrs = _attributes(serverFirst)
        nonce, saltText, iterationsText = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or saltText is None or iterationsText is None:
            raise AuthenticationFailed("malformed-challenge", "server-first-message lacks r, s or i")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationFailed("malformed-challenge", "the server's nonce does not extend ours")
        try:
            salt = base64.b64decode(saltText, validate=True)
            iterations = int(iterationsText)
        except (binascii.Error, ValueError):
            raise AuthenticationFailed("malformed-challenge", "bad salt or iteration count") from None
        if not salt or not 1 <= iterations <= MAX_ITERATIONS:
            raise AuthenticationFailed("malformed-challenge", f"unacceptable salt or iteration count {iterations}")
        if "h" in attrs:
            expected = scram.downgradeProtectionHash(self.family, self._offered, self._cbTypes)
            if not hmac.compare_digest(attrs["h"].encode(), expected.encode()):
                raise AuthenticationFailed(
                    "downgrade-detected",
                    "the mechanisms or channel bindings we saw differ from what the server advertised (XEP-0474)",
                )
            self.downgradeProtected = True

        try:
            salted = scram.saltedPassword(self._password, self.family, salt, iterations)
        except ValueError as e:
            raise AuthenticationFailed("malformed-request", f"password: {e}") from None
        binding = base64.b64encode(self._gs2Header + self._cbData).decode("ascii")
        withoutProof = f"c={binding},r={nonce}"
        authMessage = ",".join((self._clientFirstBare, serverFirst, withoutProof)).encode("utf-8")
        clientKey = scram.clientKey(self.family, salted)
        signature = scram.hmacDigest(self.family, scram.storedKey(self.family, clientKey), authMessage)
        proof = bytes(a ^ b for a, b in zip(clientKey, signature))
        self._expectedSignature = scram.hmacDigest(self.family, scram.serverKey(self.family, salted), authMessage)
        return f"{withoutProof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def checkSuccess(self, data: bytes | None) -> None:
        """
        Verify the server-final-message (C{v=ServerSignature}).

        @raise AuthenticationFailed: C{invalid-server-signature} when it is
            missing or wrong; the server's C{e=} error otherwise.
        """
        if self._verified and not data:
            return
        if self._expectedSignature is None:
            raise AuthenticationFailed("invalid-server-signature", "success before the SCRAM exchange finished")
        if not data:
            raise AuthenticationFailed("invalid-server-signature", "the server did not prove it knows the password")
        try:
            attrs = _attributes(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed-challenge", "server-final-message is not UTF-8") from None
        if "e" in attrs:
            raise AuthenticationFailed("not-authorized", attrs["e"])
        try:
            signature = base64.b64decode(attrs.get("v", ""), validate=True)
        except binascii.Error:
            signature = b""
        if not hmac.compare_digest(signature, self._expectedSignature):
            raise AuthenticationFailed("invalid-server-signature", "the server's signature is wrong")
        self._verified = True
