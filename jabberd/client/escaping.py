"""
JID escaping (XEP-0106): putting characters a localpart may not contain
into one, and showing them to people again.

A localpart may not contain space " & ' / : < > @ (RFC 7622 / nodeprep), yet
people have such characters in email addresses, LDAP names and IRC nicks.
XEP-0106 writes each as a backslash and two hex digits; the backslash itself
is escaped only where it would otherwise start one of those ten sequences,
so that every existing localpart with a stray backslash keeps its meaning.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = [
    "escape",
    "escapeAddress",
    "jidFromURI",
    "unescape",
    "unescapeAddress",
]

#: XEP-0106 §3.1: the disallowed characters and their escapes.
ESCAPES: dict[str, str] = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}

# Only these exact (lower-case) sequences are escapes (§4.1 rule 3, §4.3).
_SEQUENCE = re.compile(r"\\(20|22|26|27|2f|3a|3c|3e|40|5c)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def escape(localpart: str) -> str:
    """
    The escaped (wire) form of a localpart a person typed.

    A backslash becomes \\5c only when it starts one of the ten escape
    sequences (XEP-0106 §4.1 rule 7); "c:\\net" keeps its backslash.

    @raise ValueError: the localpart starts or ends with a space, which
        would put \\20 first or last (§3.1, §4.1 rule 6).
    """
    if localpart[:1] == " " or localpart[-1:] == " ":
        raise ValueError("a JID localpart cannot start or end with a space (XEP-0106)")
    out = []
    for i, c in enumerate(localpart):
        if c == "\\":
            out.append("\\5c" if _SEQUENCE.match(localpart, i) else c)
        else:
            out.append(ESCAPES.get(c, c))
    return "".join(out)


def unescape(localpart: str) -> str:
    """The localpart as a person should see it: each escape sequence decoded, nothing else."""
    return _SEQUENCE.sub(lambda m: chr(int(m.group(1), 16)), localpart)


def _split(address: str) -> tuple[str | None, str]:
    # A person's input may have '@' in the localpart; the domain follows the last one.
    local, at, rest = address.rpartition("@")
    return (local, rest) if at else (None, address)


def escapeAddress(address: str) -> str:
    """
    Escape the localpart of an address a person typed ("user@host@example.com").

    Everything before the last "@" is the localpart; the domain (and any
    resource after it) is left alone, since escaping concerns localparts only.
    """
    local, rest = _split(address)
    return rest if local is None else f"{escape(local)}@{rest}"


def unescapeAddress(jid: str) -> str:
    """A wire JID (bare or full) with its localpart unescaped, for display."""
    local, at, rest = jid.partition("@")
    if not at or "/" in local:
        return jid  # no localpart: the '@' (if any) is in the resource
    return f"{unescape(local)}@{rest}"


def jidFromURI(uri: str) -> str:
    """
    The escaped JID for a mailto:, sip:, im:, pres: or wv: style address
    (XEP-0106 §4.2): drop the scheme and any ?headers, percent-decode,
    then escape the localpart.
    """
    address = _SCHEME.sub("", uri, count=1).split("?", 1)[0]
    return escapeAddress(unquote(address))
