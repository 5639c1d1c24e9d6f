"""
Server-side SASL mechanisms for client streams (RFC 6120 §6), free of streams.

Each mechanism is a small state machine fed the decoded bytes of ``<auth/>``
and ``<response/>`` and answering, through a Deferred, a L{Challenge}, a
L{Success} or a L{SASLFailure}.  The stream owns the XML, the base64 of the
XML payload, the ``=`` convention for an empty initial response, attempt
counting and timeouts; this module owns the mechanisms, so they can be tested
with plain bytes and reused by any transport (TCP, BOSH, WebSocket).

Mechanisms: SCRAM-SHA-1 and SCRAM-SHA-256 with their -PLUS variants
(RFC 5802, RFC 7677, channel binding per RFC 5929 / RFC 9266 / XEP-0440, the
downgrade-protection attribute of XEP-0474), PLAIN (RFC 4616), EXTERNAL
(XEP-0178) and ANONYMOUS (RFC 4505, XEP-0175).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable, Protocol

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.xmpp_stringprep import nameprep, nodeprep

from jabberd import scram
from jabberd.scram import ScramCredential
from jabberd.store.database import StoreUnavailable, logFailure

__all__ = [
    "CONDITIONS",
    "Challenge",
    "Mechanism",
    "SASLContext",
    "SASLFailure",
    "ScramMechanism",
    "Success",
    "available",
    "channelBindingTypes",
    "create",
]

log = Logger()

#: RFC 6120 §6.5: the defined failure conditions.
CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)


class SASLFailure(Exception):
    """
    Authentication failed; the stream answers ``<failure><{condition}/>``.

    ``text`` is for logs and the optional ``<text/>``; where RFC 5802 names
    the error (``server-error-value``) the text uses that name.
    """

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"not an RFC 6120 SASL condition: {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def __repr__(self) -> str:
        return f"SASLFailure({self.condition!r}, {self.text!r})"


@dataclass
class Challenge:
    """Send ``<challenge/>`` with this data and wait for a response."""

    data: bytes


@dataclass
class Success:
    """
    Authentication done.

    ``username`` is the authenticated localpart (nodeprep'd); ``data`` is the
    additional data with success (the SCRAM server-final-message), or None.
    """

    username: str
    data: bytes | None = None


class Mechanism(Protocol):
    """One SASL exchange, server side.  Both methods errback L{SASLFailure}."""

    name: str

    def start(self, initial: bytes | None) -> Deferred[Challenge | Success]:
        """Begin, with the initial response (None: the client sent none)."""

    def step(self, response: bytes) -> Deferred[Challenge | Success]:
        """Continue with the client's response to the last challenge."""


CredentialLookup = Callable[[str], "Deferred[dict[str, ScramCredential] | None]"]


@dataclass
class SASLContext:
    """
    Everything a mechanism may know about the stream it authenticates.

    The stream advertises exactly ``available(...)`` as ``offeredMechanisms``
    and exactly ``channelBindingTypes(ctx)`` (when non-empty) as its XEP-0440
    feature: both feed the XEP-0474 hash and the "y" downgrade check.
    """

    #: the stream's domain (the domainpart of every JID authenticated here)
    host: str
    #: nodeprep'd username -> SCRAM credentials by family, None: no account
    lookup: CredentialLookup
    #: channel-binding type -> data for this TLS connection; empty without TLS
    channelBindings: dict[str, bytes] = field(default_factory=dict)
    #: the mechanism names as advertised in <mechanisms/>
    offeredMechanisms: list[str] = field(default_factory=list)
    tlsActive: bool = False
    #: the verified client certificate (cryptography x509.Certificate)
    peerCertificate: object | None = None
    #: client certificate -> usernames it may act as (XEP-0178); None: no EXTERNAL
    externalUsernames: Callable[[object], list[str]] | None = None


# --- what to offer -----------------------------------------------------------

#: SCRAM families, strongest first.
_SCRAM_FAMILIES = ("SCRAM-SHA-256", "SCRAM-SHA-1")
assert set(_SCRAM_FAMILIES) == set(scram.HASHES)

#: XEP-0440 types we can check, preferred first: tls-exporter (RFC 9266) binds
#: the key schedule; tls-server-end-point (RFC 5929) only the certificate, but
#: is the one every client implements; tls-unique is undefined on TLS 1.3.
CHANNEL_BINDING_PREFERENCE = ("tls-exporter", "tls-server-end-point", "tls-unique")


def channelBindingTypes(ctx: SASLContext) -> list[str]:
    """The channel-binding types to advertise (XEP-0440), preferred first."""
    return [t for t in CHANNEL_BINDING_PREFERENCE if ctx.channelBindings.get(t)]


def available(ctx: SASLContext, allowPlain: bool, allowAnonymous: bool) -> list[str]:
    """
    The mechanism names to advertise on this stream, strongest first.

    -PLUS only when there is channel-binding data to check; PLAIN only under
    TLS (the password crosses the wire); EXTERNAL only with a verified client
    certificate and a way to map it to accounts.
    """
    names: list[str] = []
    if channelBindingTypes(ctx):
        names += [f"{family}-PLUS" for family in _SCRAM_FAMILIES]
    names += list(_SCRAM_FAMILIES)
    if allowPlain and ctx.tlsActive:
        names.append("PLAIN")
    if ctx.peerCertificate is not None and ctx.externalUsernames is not None:
        names.append("EXTERNAL")
    if allowAnonymous:
        names.append("ANONYMOUS")
    return names


def create(name: str, ctx: SASLContext) -> Mechanism:
    """
    A fresh mechanism for an ``<auth mechanism=name>``.

    Only what the stream advertised (``ctx.offeredMechanisms``) may be used;
    that list is where the stream's policy (PLAIN, ANONYMOUS) lives.

    @raise SASLFailure: invalid-mechanism for unknown or unoffered names;
        encryption-required for PLAIN without TLS.
    """
    if name == "PLAIN" and not ctx.tlsActive:
        raise SASLFailure("encryption-required", "PLAIN needs TLS")
    if name not in ctx.offeredMechanisms:
        raise SASLFailure("invalid-mechanism", f"{name!r} is not offered")
    family = name.removesuffix("-PLUS")
    if family in scram.HASHES:
        if name.endswith("-PLUS") and not channelBindingTypes(ctx):
            raise SASLFailure("invalid-mechanism", "no channel binding here")
        return ScramMechanism(name, ctx)
    if name == "PLAIN":
        return PlainMechanism(ctx)
    if name == "EXTERNAL":
        if ctx.peerCertificate is None or ctx.externalUsernames is None:
            raise SASLFailure("invalid-mechanism", "no client certificate")
        return ExternalMechanism(ctx)
    if name == "ANONYMOUS":
        return AnonymousMechanism(ctx)
    raise SASLFailure("invalid-mechanism", f"unknown mechanism {name!r}")


# --- shared helpers ----------------------------------------------------------

# RFC 7622 §3.3.1: a localpart is at most 1023 octets.
_MAX_LOCALPART = 1023


def _prepUsername(raw: str) -> str:
    """Nodeprep a client-supplied username; no valid localpart, no account."""
    try:
        username = nodeprep.prepare(raw)
    except UnicodeError:
        raise SASLFailure("not-authorized", "username is not a valid localpart") from None
    if not username or len(username.encode("utf-8")) > _MAX_LOCALPART:
        raise SASLFailure("not-authorized", "username is not a valid localpart")
    return username


def _isOwnJID(authzid: str, username: str, host: str) -> bool:
    """Whether authzid is the bare JID username@host (after preparation)."""
    local, at, domain = authzid.partition("@")
    if not at or "/" in domain:
        return False
    try:
        return (
            _prepUsername(local) == username
            and nameprep.prepare(domain) == nameprep.prepare(host)
        )
    except (SASLFailure, UnicodeError):
        return False


def _authorize(authzid: str, username: str, host: str) -> None:
    """
    Allow an authzid only if it is the authenticated account's own bare JID.

    RFC 6120 §6.3.8: a c2s authzid is a bare JID; we offer no proxy
    authorization, so any other identity is invalid-authzid.
    """
    if authzid and not _isOwnJID(authzid, username, host):
        raise SASLFailure("invalid-authzid", "authzid is not the account's bare JID")


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLFailure("malformed-request", "not UTF-8") from None


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure("incorrect-encoding", "bad base64") from None


def _lookup(ctx: SASLContext, username: str) -> Deferred[dict[str, ScramCredential] | None]:
    """ctx.lookup, with store errors turned into temporary-auth-failure."""

    def storeError(failure: Failure) -> Failure:
        if failure.check(SASLFailure):
            return failure
        logFailure(log, failure, "credential lookup for {username!r} failed", username=username)
        raise SASLFailure("temporary-auth-failure", StoreUnavailable.clientText)

    return maybeDeferred(ctx.lookup, username).addErrback(storeError)


# A per-process secret for the fake salts of accounts that do not exist: stable
# for a username (so repeated probes see the same salt, like a real account) yet
# unpredictable from outside.
_FAKE_SECRET = os.urandom(32)


def _fakeCredential(username: str, family: str, secret: bytes) -> ScramCredential:
    """
    A credential for a username with none, that no proof can satisfy.

    It lets the exchange for an unknown account look like a wrong password
    until the very end (RFC 5802 §9: do not reveal whether a user exists).
    """
    salt = hmac.new(secret, f"{family}\0{username}".encode(), "sha256").digest()[:16]
    size = hashlib.new(scram.HASHES[family]).digest_size
    return ScramCredential(
        mechanism=family,
        salt=salt,
        iterations=scram.MIN_ITERATIONS,
        stored_key=os.urandom(size),
        server_key=os.urandom(size),
    )


class _Exchange:
    """
    The turn-taking shared by all mechanisms.

    ``_expect`` is the handler for the next client message; it is None while
    a handler is running (e.g. waiting for the store) and after the end, so
    a message out of turn fails instead of corrupting state.
    """

    name: str
    #: whether ``start(None)`` asks for the first message with an empty
    #: challenge (RFC 6120 §6.4.2) rather than treating it as empty
    _challengeWithoutInitial = True

    def __init__(self, ctx: SASLContext) -> None:
        self.ctx = ctx
        self._started = False
        self._expect: Callable[[bytes], Challenge | Success | Deferred] | None = self._first

    def _first(self, data: bytes) -> Challenge | Success | Deferred:
        raise NotImplementedError

    def start(self, initial: bytes | None) -> Deferred[Challenge | Success]:
        if self._started:
            return fail(SASLFailure("malformed-request", "already started"))
        self._started = True
        if initial is None and self._challengeWithoutInitial:
            return succeed(Challenge(b""))
        return self._feed(initial or b"")

    def step(self, response: bytes) -> Deferred[Challenge | Success]:
        if not self._started:
            return fail(SASLFailure("malformed-request", "not started"))
        return self._feed(response)

    def _feed(self, data: bytes) -> Deferred[Challenge | Success]:
        handler, self._expect = self._expect, None
        if handler is None:
            return fail(SASLFailure("malformed-request", "no response expected now"))
        return maybeDeferred(handler, data)


# --- SCRAM (RFC 5802, RFC 7677) ----------------------------------------------

# RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma); cb-name per RFC 5056.
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")
_EXTENSION = re.compile(r"[A-Za-z]=.*", re.DOTALL)
_SASLNAME_ESCAPE = re.compile(r"=(2C|3D)")


def _saslname(value: str) -> str:
    """Decode an RFC 5802 saslname: "=2C" is ",", "=3D" is "=", other "=" is bad."""
    if not value or "=" in _SASLNAME_ESCAPE.sub("", value):
        raise SASLFailure("malformed-request", "invalid-username-encoding")
    return _SASLNAME_ESCAPE.sub(lambda m: "," if m.group(1) == "2C" else "=", value)


def _randomNonce() -> str:
    # 18 random bytes: 144 bits, and base64 without padding or commas.
    return base64.b64encode(os.urandom(18)).decode("ascii")


class ScramMechanism(_Exchange):
    """
    SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants, server side.

    The server needs no PBKDF2: it holds StoredKey and ServerKey, recovers
    ClientKey from the proof, and checks H(ClientKey) == StoredKey.
    """

    def __init__(
        self,
        name: str,
        ctx: SASLContext,
        *,
        serverNonce: Callable[[], str] = _randomNonce,
        fakeSecret: bytes = _FAKE_SECRET,
        downgradeProtection: bool = True,
    ) -> None:
        """
        @param serverNonce: makes the server's part of the nonce; injectable
            so tests can reproduce the RFC examples byte for byte.
        @param fakeSecret: keys the fake salts of unknown users.
        @param downgradeProtection: send the XEP-0474 ``h`` attribute; off
            only to reproduce RFC 5802/7677 examples, which predate it.
        """
        super().__init__(ctx)
        self.name = name
        self.family = name.removesuffix("-PLUS")
        self.plus = name.endswith("-PLUS")
        scram.hashName(self.family)  # ValueError for a name that is no SCRAM
        self._serverNonce = serverNonce
        self._fakeSecret = fakeSecret
        self._downgradeProtection = downgradeProtection

    def _first(self, data: bytes) -> Deferred[Challenge]:
        """client-first-message: gs2-header, then n=user, r=nonce."""
        text = _utf8(data)
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SASLFailure("malformed-request", "no GS2 header")
        flag, authzidField, bare = parts
        self._gs2Header = f"{flag},{authzidField},".encode("utf-8")
        self._cbType = self._checkFlag(flag)

        if authzidField and not authzidField.startswith("a="):
            raise SASLFailure("malformed-request", "bad authzid field")
        self._authzid = _saslname(authzidField[2:]) if authzidField else ""

        attributes = bare.split(",")
        if attributes[0].startswith("m="):
            raise SASLFailure("malformed-request", "extensions-not-supported")
        if (
            len(attributes) < 2
            or not attributes[0].startswith("n=")
            or not attributes[1].startswith("r=")
            or not all(_EXTENSION.fullmatch(a) for a in attributes[2:])
        ):
            raise SASLFailure("malformed-request", "bad client-first-message")
        username = _prepUsername(_saslname(attributes[0][2:]))
        clientNonce = attributes[1][2:]
        if not _PRINTABLE.fullmatch(clientNonce):
            raise SASLFailure("malformed-request", "bad nonce")

        self._username = username
        self._clientFirstBare = bare
        self._nonce = clientNonce + self._serverNonce()
        return _lookup(self.ctx, username).addCallback(self._serverFirst)

    def _checkFlag(self, flag: str) -> str | None:
        """
        The GS2 channel-binding flag against the mechanism and the offer.

        Returns the channel-binding type the client chose, or None.
        """
        if flag.startswith("p="):
            cbType = flag[2:]
            if not _CB_NAME.fullmatch(cbType):
                raise SASLFailure("malformed-request", "bad channel-binding name")
            if not self.plus:
                raise SASLFailure(
                    "malformed-request", "channel binding requires a -PLUS mechanism"
                )
            if cbType not in channelBindingTypes(self.ctx):
                raise SASLFailure("not-authorized", "unsupported-channel-binding-type")
            return cbType
        if flag not in ("n", "y"):
            raise SASLFailure("malformed-request", "bad GS2 channel-binding flag")
        if self.plus:
            raise SASLFailure("malformed-request", "-PLUS requires channel binding")
        if flag == "y" and any(m.endswith("-PLUS") for m in self.ctx.offeredMechanisms):
            # RFC 5802 §6: the client would bind but saw no -PLUS, yet we
            # offered one: someone removed it on the way.
            raise SASLFailure("not-authorized", "server-does-support-channel-binding")
        return None

    def _serverFirst(self, credentials: dict[str, ScramCredential] | None) -> Challenge:
        credential = (credentials or {}).get(self.family)
        self._known = credential is not None
        if credential is None:
            credential = _fakeCredential(self._username, self.family, self._fakeSecret)
        self._credential = credential
        message = "r={},s={},i={}".format(
            self._nonce,
            base64.b64encode(credential.salt).decode("ascii"),
            credential.iterations,
        )
        if self._downgradeProtection:
            cbTypes = channelBindingTypes(self.ctx)
            message += ",h=" + scram.downgradeProtectionHash(
                self.family, self.ctx.offeredMechanisms, cbTypes or None
            )
        self._serverFirstMessage = message
        self._expect = self._final
        return Challenge(message.encode("ascii"))

    def _final(self, data: bytes) -> Success:
        """client-final-message: c=binding, r=nonce, [extensions,] p=proof."""
        text = _utf8(data)
        withoutProof, sep, proofField = text.rpartition(",p=")
        attributes = withoutProof.split(",")
        if (
            not sep
            or len(attributes) < 2
            or not attributes[0].startswith("c=")
            or not attributes[1].startswith("r=")
            or not all(_EXTENSION.fullmatch(a) for a in attributes[2:])
        ):
            raise SASLFailure("malformed-request", "bad client-final-message")
        binding = _b64decode(attributes[0][2:])
        proof = _b64decode(proofField)

        expected = self._gs2Header
        if self._cbType is not None:
            expected += self.ctx.channelBindings[self._cbType]
        if not hmac.compare_digest(binding, expected):
            raise SASLFailure("not-authorized", "channel-bindings-dont-match")
        if not hmac.compare_digest(attributes[1][2:].encode(), self._nonce.encode()):
            raise SASLFailure("not-authorized", "nonce mismatch")

        credential = self._credential
        if len(proof) != len(credential.stored_key):
            raise SASLFailure("malformed-request", "proof has the wrong length")
        authMessage = ",".join(
            (self._clientFirstBare, self._serverFirstMessage, withoutProof)
        ).encode("utf-8")
        signature = scram.hmacDigest(self.family, credential.stored_key, authMessage)
        clientKey = bytes(p ^ s for p, s in zip(proof, signature))
        valid = hmac.compare_digest(
            scram.storedKey(self.family, clientKey), credential.stored_key
        )
        if not (valid and self._known):
            raise SASLFailure("not-authorized", "invalid-proof")
        _authorize(self._authzid, self._username, self.ctx.host)

        verifier = scram.hmacDigest(self.family, credential.server_key, authMessage)
        return Success(self._username, b"v=" + base64.b64encode(verifier))


# --- PLAIN (RFC 4616) --------------------------------------------------------


class PlainMechanism(_Exchange):
    """
    PLAIN, checked against the stored SCRAM credential (no clear passwords).

    The password is turned into SaltedPassword with the stored salt and
    iterations and its StoredKey compared in constant time.
    """

    name = "PLAIN"

    def _first(self, data: bytes) -> Deferred[Success]:
        if not self.ctx.tlsActive:  # create() refuses too; never send it in clear
            raise SASLFailure("encryption-required", "PLAIN needs TLS")
        parts = _utf8(data).split("\0")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise SASLFailure("malformed-request", "expected authzid NUL authcid NUL passwd")
        authzid, authcid, password = parts
        username = _prepUsername(authcid)

        def verify(credentials: dict[str, ScramCredential] | None) -> Success:
            credentials = credentials or {}
            # The strongest stored hash; any one proves the password.
            family = next((f for f in _SCRAM_FAMILIES if f in credentials), None)
            known = family is not None
            if family is None:
                # Same work as for a real account, so timing does not tell.
                family = _SCRAM_FAMILIES[0]
                credential = _fakeCredential(username, family, _FAKE_SECRET)
            else:
                credential = credentials[family]
            # PBKDF2 inline on the reactor thread, not deferToThread: hashlib's
            # C loop does 4096 iterations in about 1 ms (measured, SHA-256),
            # less than a thread hop costs in latency, and the stream bounds
            # attempts.  Only PLAIN pays this; SCRAM does no PBKDF2 on the
            # server.  Revisit if stored iteration counts grow large.
            try:
                salted = scram.saltedPassword(
                    password, family, credential.salt, credential.iterations
                )
            except ValueError:
                raise SASLFailure("not-authorized", "password fails SASLprep") from None
            valid = hmac.compare_digest(
                scram.storedKey(family, scram.clientKey(family, salted)),
                credential.stored_key,
            )
            if not (valid and known):
                raise SASLFailure("not-authorized")
            _authorize(authzid, username, self.ctx.host)
            return Success(username)

        return _lookup(self.ctx, username).addCallback(verify)


# --- EXTERNAL (XEP-0178) -----------------------------------------------------


class ExternalMechanism(_Exchange):
    """
    EXTERNAL: the verified TLS client certificate is the credential.

    Failure conditions follow XEP-0178 §4 step 8: nothing mapped is
    not-authorized; several candidates and no authzid, or an authzid the
    certificate does not cover, is invalid-authzid.
    """

    name = "EXTERNAL"

    def _first(self, data: bytes) -> Deferred[Success]:
        authzid = _utf8(data)
        assert self.ctx.externalUsernames is not None
        candidates: list[str] = []
        for raw in self.ctx.externalUsernames(self.ctx.peerCertificate):
            try:
                username = _prepUsername(raw)
            except SASLFailure:
                continue  # a certificate name that can be no account here
            if username not in candidates:
                candidates.append(username)
        if not candidates:
            raise SASLFailure("not-authorized", "certificate maps to no account")

        if authzid:
            matching = [u for u in candidates if _isOwnJID(authzid, u, self.ctx.host)]
            if not matching:
                raise SASLFailure("invalid-authzid", "authzid not covered by the certificate")
            username = matching[0]
        elif len(candidates) == 1:
            username = candidates[0]
        else:
            raise SASLFailure("invalid-authzid", "certificate names several accounts")

        def exists(credentials: dict[str, ScramCredential] | None) -> Success:
            # A certificate may outlive its account.
            if credentials is None:
                raise SASLFailure("not-authorized", "no such account")
            return Success(username)

        return _lookup(self.ctx, username).addCallback(exists)


# --- ANONYMOUS (RFC 4505, XEP-0175) ------------------------------------------


class AnonymousMechanism(_Exchange):
    """
    ANONYMOUS: a fresh, random account name for this session.

    XEP-0175 recommends a UUID as the localpart.  Trace data, if any, is
    ignored (XEP-0175 §3: the server must not use it).
    """

    name = "ANONYMOUS"
    # XEP-0175: <auth mechanism='ANONYMOUS'/> is answered with success.
    _challengeWithoutInitial = False

    def _first(self, data: bytes) -> Success:
        return Success(str(uuid.uuid4()))
