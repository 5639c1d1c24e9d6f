"""
JIDs (RFC 7622) parsed through one bounded cache.

Twisted's C{internJID} caches every JID it ever sees, so a hostile client
could grow it without limit; C{functools.lru_cache} is bounded, C-implemented
and therefore both safe and fast on the hot path.  Objects are Twisted's
L{JID} so that tx_xmpp handlers accept them unchanged.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmpp_stringprep import (
    nameprep,
    nodeprep,
    resourceprep,
)

__all__ = ["JID", "InvalidJID", "parse", "prepNode", "prepDomain", "prepResource"]

MAX_PART_BYTES = 1023
CACHE_SIZE = 16384


class InvalidJID(ValueError):
    """A string that is not a valid JID; stanzas carrying one get jid-malformed."""


def _checkLength(part: str, what: str) -> None:
    if len(part.encode("utf-8")) > MAX_PART_BYTES:
        raise InvalidJID(f"{what} longer than {MAX_PART_BYTES} bytes")


def prepNode(node: str) -> str:
    """Apply nodeprep and the length rule to a localpart."""
    if not node:
        raise InvalidJID("empty localpart")
    try:
        prepped = nodeprep.prepare(node)
    except (UnicodeError, IndexError, ValueError) as e:
        raise InvalidJID(f"invalid localpart: {e}") from None
    if not prepped:
        raise InvalidJID("empty localpart")
    _checkLength(prepped, "localpart")
    return prepped


def prepDomain(domain: str) -> str:
    """Apply nameprep and the length rule to a domainpart."""
    # RFC 7622 §3.2: a final dot is stripped (once: "a.." has an empty label).
    stripped = domain.endswith(".")
    if stripped:
        domain = domain[:-1]
    if not domain:
        raise InvalidJID("empty domainpart")
    if domain.startswith("[") and domain.endswith("]"):
        # RFC 7622 §3.2.1: an IP-literal, which must hold an IPv6 address.
        try:
            ipaddress.IPv6Address(domain[1:-1])
        except ValueError:
            raise InvalidJID("invalid IPv6 literal") from None
        return domain.lower()
    try:
        prepped = nameprep.prepare(domain)
    except (UnicodeError, IndexError, ValueError) as e:
        raise InvalidJID(f"invalid domainpart: {e}") from None
    if prepped.endswith("."):
        # nameprep turned a final U+3002, U+FF0E or U+FF61 into a dot, which
        # is stripped like an ASCII one, but only one (found by bench/fuzz_atheris.py).
        if stripped:
            raise InvalidJID("empty label in domainpart")
        prepped = prepped[:-1]
    if not prepped:
        raise InvalidJID("empty domainpart")
    _checkLength(prepped, "domainpart")
    return prepped


def prepResource(resource: str) -> str:
    """Apply resourceprep and the length rule to a resourcepart."""
    if not resource:
        raise InvalidJID("empty resourcepart")
    try:
        prepped = resourceprep.prepare(resource)
    except (UnicodeError, IndexError, ValueError) as e:
        raise InvalidJID(f"invalid resourcepart: {e}") from None
    if not prepped:
        raise InvalidJID("empty resourcepart")
    _checkLength(prepped, "resourcepart")
    return prepped


@lru_cache(maxsize=CACHE_SIZE)
def parse(text: str) -> JID:
    """
    Parse and prepare C{text} into a L{JID}; raise L{InvalidJID}.

    Unlike Twisted's parser, empty parts (C{"@host"}, C{"user@"},
    C{"host/"}) are errors as RFC 7622 requires.
    """
    if len(text) > 3 * MAX_PART_BYTES + 2:
        raise InvalidJID("JID too long")
    node: str | None = None
    resource: str | None = None
    rest = text
    slash = rest.find("/")
    if slash != -1:
        resource = prepResource(rest[slash + 1 :])
        rest = rest[:slash]
    at = rest.find("@")
    if at != -1:
        node = prepNode(rest[:at])
        rest = rest[at + 1 :]
    domain = prepDomain(rest)
    # Build the JID without Twisted's constructor, which would prepare the
    # parts a second time.
    j = JID.__new__(JID)
    j.user, j.host, j.resource = node, domain, resource
    return j


def bare(j: JID) -> JID:
    """The bare JID of C{j}, through the cache."""
    if j.resource is None:
        return j
    return parse(j.userhost())
