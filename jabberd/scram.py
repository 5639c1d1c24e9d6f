"""
SCRAM credentials (RFC 5802, RFC 7677) and the SASLprep profile (RFC 4013).

Everything here is pure computation with no I/O and no server state, so the
store, ``jabberdctl``, the c2s SASL mechanisms and the client library can all
share one implementation of the key derivation.  The server keeps only
``StoredKey`` and ``ServerKey`` (never the password, never ``SaltedPassword``),
which is all SCRAM needs to verify a client and to prove itself to it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata
from dataclasses import dataclass
from typing import Iterable

__all__ = [
    "HASHES",
    "MIN_ITERATIONS",
    "ScramCredential",
    "clientKey",
    "credentialFromSaltedPassword",
    "deriveCredential",
    "deriveCredentials",
    "downgradeProtectionHash",
    "hashName",
    "hmacDigest",
    "saltedPassword",
    "saslprep",
    "serverKey",
    "storedKey",
]

#: SCRAM mechanism family (without ``-PLUS``) -> :mod:`hashlib` name.
HASHES: dict[str, str] = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}

#: RFC 5802 §5.1 and RFC 7677 §4: the iteration count SHOULD be at least 4096.
MIN_ITERATIONS = 4096

_SALT_LENGTH = 16


@dataclass(frozen=True)
class ScramCredential:
    """
    What the server stores for one account and one SCRAM hash.

    The field names and order match the store's own ScramCredential so the
    two convert 1:1 (``ScramCredential(**vars(other))``).
    """

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


# --- SASLprep (RFC 4013) -----------------------------------------------------

# RFC 4013 §2.3: the prohibited output tables.  C.1.2 (non-ASCII spaces) is
# listed too, although §2.1 has already mapped those to U+0020.
_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(s: str, allowUnassigned: bool = False) -> str:
    """
    Prepare a user name or password with the SASLprep profile (RFC 4013).

    Both ends of a SCRAM exchange must feed identical bytes to PBKDF2, so a
    password typed as "I\\u00adX" or "\\u2168" must become "IX" on both.

    ``allowUnassigned`` selects the "query" rules of RFC 3454 §7; the default
    is the stricter "stored string" rules, which is what a password that is
    about to be turned into a stored credential must obey.

    @raise ValueError: the string contains a prohibited character, an
        unassigned code point (for stored strings) or violates the
        bidirectional rules of RFC 3454 §6.
    """
    # §2.1 mapping: non-ASCII space -> SPACE; "commonly mapped to nothing" -> ''.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in s
        if not stringprep.in_table_b1(c)
    )
    # §2.2 normalization: NFKC, with the Unicode 3.2 tables stringprep uses.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in prepared:
        if any(inTable(c) for inTable in _PROHIBITED):
            raise ValueError(f"SASLprep: prohibited character U+{ord(c):04X}")
        if not allowUnassigned and stringprep.in_table_a1(c):
            raise ValueError(f"SASLprep: unassigned code point U+{ord(c):04X}")
    # §2.4 / RFC 3454 §6: bidirectional text must be unambiguous.
    if any(stringprep.in_table_d1(c) for c in prepared):
        if any(stringprep.in_table_d2(c) for c in prepared):
            raise ValueError("SASLprep: mixes right-to-left and left-to-right text")
        if not (
            stringprep.in_table_d1(prepared[0])
            and stringprep.in_table_d1(prepared[-1])
        ):
            raise ValueError(
                "SASLprep: right-to-left text must start and end with an "
                "right-to-left character"
            )
    return prepared


# --- the SCRAM key ladder (RFC 5802 §3) --------------------------------------


def hashName(mechanism: str) -> str:
    """
    The :mod:`hashlib` name for a SCRAM mechanism, with or without ``-PLUS``.

    @raise ValueError: not a SCRAM mechanism this module knows.
    """
    family = mechanism.removesuffix("-PLUS")
    try:
        return HASHES[family]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}") from None


def hmacDigest(mechanism: str, key: bytes, message: bytes) -> bytes:
    """HMAC(key, message) with the mechanism's hash."""
    return hmac.new(key, message, hashName(mechanism)).digest()


def saltedPassword(
    password: str, mechanism: str, salt: bytes, iterations: int
) -> bytes:
    """
    SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3).

    Hi() is PBKDF2 with HMAC and a single output block, which is exactly
    :func:`hashlib.pbkdf2_hmac` with the default output length.

    @raise ValueError: the password fails SASLprep (query rules: a client
        or a PLAIN verifier must not reject what a store could hold).
    """
    prepared = saslprep(password, allowUnassigned=True)
    return hashlib.pbkdf2_hmac(
        hashName(mechanism), prepared.encode("utf-8"), salt, iterations
    )


def clientKey(mechanism: str, salted: bytes) -> bytes:
    """ClientKey := HMAC(SaltedPassword, "Client Key")."""
    return hmacDigest(mechanism, salted, b"Client Key")


def storedKey(mechanism: str, clientKey: bytes) -> bytes:
    """StoredKey := H(ClientKey)."""
    return hashlib.new(hashName(mechanism), clientKey).digest()


def serverKey(mechanism: str, salted: bytes) -> bytes:
    """ServerKey := HMAC(SaltedPassword, "Server Key")."""
    return hmacDigest(mechanism, salted, b"Server Key")


def credentialFromSaltedPassword(
    mechanism: str, salt: bytes, iterations: int, salted: bytes
) -> ScramCredential:
    """The stored credential for an already computed SaltedPassword."""
    return ScramCredential(
        mechanism=mechanism,
        salt=salt,
        iterations=iterations,
        stored_key=storedKey(mechanism, clientKey(mechanism, salted)),
        server_key=serverKey(mechanism, salted),
    )


def deriveCredential(
    password: str,
    mechanism: str,
    iterations: int = MIN_ITERATIONS,
    salt: bytes | None = None,
) -> ScramCredential:
    """
    Derive what the server stores for ``password`` under ``mechanism``.

    @param mechanism: a key of L{HASHES} (the family, not the ``-PLUS`` name:
        both variants share one credential).
    @param salt: injectable for tests and for re-deriving a known credential;
        a fresh random 16-byte salt by default so that equal passwords do not
        give equal credentials.
    @raise ValueError: unknown mechanism, fewer than L{MIN_ITERATIONS}
        iterations, an empty salt, or a password that is empty or fails
        SASLprep (stored-string rules).
    """
    if mechanism not in HASHES:
        raise ValueError(
            f"unknown SCRAM mechanism {mechanism!r}; expected one of {sorted(HASHES)}"
        )
    if iterations < MIN_ITERATIONS:
        raise ValueError(
            f"SCRAM iteration count must be at least {MIN_ITERATIONS}, got {iterations}"
        )
    if salt is None:
        salt = os.urandom(_SALT_LENGTH)
    elif not salt:
        raise ValueError("SCRAM salt must not be empty")
    # Stored-string rules first: an unassigned code point today could be
    # normalised differently by a later Unicode version, locking the user out.
    if not saslprep(password):
        raise ValueError("password is empty after SASLprep")
    return credentialFromSaltedPassword(
        mechanism, salt, iterations, saltedPassword(password, mechanism, salt, iterations)
    )


def deriveCredentials(
    password: str, iterations: int = MIN_ITERATIONS
) -> list[ScramCredential]:
    """One credential per SCRAM family in L{HASHES}, each with its own salt."""
    return [deriveCredential(password, family, iterations) for family in HASHES]


# --- XEP-0474: SASL SCRAM Downgrade Protection -------------------------------


def downgradeProtectionHash(
    mechanism: str,
    mechanisms: Iterable[str],
    channelBindings: Iterable[str] | None,
) -> str:
    """
    The XEP-0474 (v0.5.0, §5.1) value of the SCRAM attribute ``h``.

    S is the advertised SASL mechanisms sorted by octet, joined by %x1E; if
    channel-binding types were advertised with XEP-0440, then %x1F and those
    types, sorted and joined by %x1E.  S is hashed with the hash of the SCRAM
    mechanism in use and base64-encoded.  Server and client compute it from
    what each saw advertised; a MITM who edits either list changes the value,
    and the value is covered by the SCRAM proofs.

    @param channelBindings: the XEP-0440 types, or C{None} when no
        ``<sasl-channel-binding/>`` feature was sent.
    """

    def octetSorted(names: Iterable[str]) -> list[str]:
        # RFC 4790 "i;octet": compare the UTF-8 bytes.
        return sorted(names, key=lambda n: n.encode("utf-8"))

    s = "\x1e".join(octetSorted(mechanisms))
    if channelBindings is not None:
        s += "\x1f" + "\x1e".join(octetSorted(channelBindings))
    digest = hashlib.new(hashName(mechanism), s.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")
