"""
The XEP-0115 verification string (§5.1), shared by the server's caps module
and the client library.

A pure helper like L{jabberd.scram}: it imports nothing of the server, so
the client library may use it and still work against any server.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.words.xish import domish

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
NS_XML = "http://www.w3.org/XML/1998/namespace"

#: IANA hash names (as in the 'hash' attribute) -> hashlib names.
HASHES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}


class IllFormedInfo(ValueError):
    """A disco#info result that §5.4 says must not be hashed (duplicates, a bad FORM_TYPE)."""


def _octets(s: str) -> bytes:
    # §5.1: the "i;octet" collation, i.e. compare UTF-8 bytes.
    return s.encode("utf-8")


def _form(x: domish.Element) -> tuple[str | None, list[tuple[str, list[str]]]]:
    """(its hidden FORM_TYPE or None, [(var, values)] of the other fields) of a data form."""
    formType: str | None = None
    fields: list[tuple[str, list[str]]] = []
    for field in x.elements(NS_DATA, "field"):
        var = field.getAttribute("var", "")
        values = [str(v) for v in field.elements(NS_DATA, "value")]
        if var == "FORM_TYPE":
            if field.getAttribute("type") != "hidden" or not values:
                return None, []
            if len(set(values)) > 1:
                raise IllFormedInfo("a FORM_TYPE with differing values")
            formType = values[0]
        else:
            fields.append((var, values))
    return formType, fields


def verificationString(query: domish.Element, algorithm: str = "sha-1") -> str:
    """
    The §5.1 verification string of a disco#info C{<query/>} hashed with
    C{algorithm} (an IANA name in L{HASHES}): identities
    "category/type/lang/name<" sorted, features "<" sorted, then each
    extended form (XEP-0128) with a hidden FORM_TYPE sorted by it: the
    FORM_TYPE, then each other field's var and its sorted values.  Forms
    without a hidden FORM_TYPE are left out (§5.4 3.6).

    @raise IllFormedInfo: duplicate identities, features or FORM_TYPEs,
        or a FORM_TYPE with differing values (§5.4 3.3-3.5).
    @raise ValueError: an unknown hash name.
    """
    if algorithm not in HASHES:
        raise ValueError(f"unsupported caps hash {algorithm!r}")
    identities: list[str] = []
    features: list[str] = []
    forms: dict[str, list[tuple[str, list[str]]]] = {}
    for child in query.elements():
        if child.uri == NS_DISCO_INFO and child.name == "identity":
            identities.append(
                "/".join(
                    (
                        child.getAttribute("category", ""),
                        child.getAttribute("type", ""),
                        child.getAttribute((NS_XML, "lang"), ""),
                        child.getAttribute("name", ""),
                    )
                )
            )
        elif child.uri == NS_DISCO_INFO and child.name == "feature":
            features.append(child.getAttribute("var", ""))
        elif child.uri == NS_DATA and child.name == "x":
            formType, fields = _form(child)
            if formType is None:
                continue
            if formType in forms:
                raise IllFormedInfo(f"two forms with FORM_TYPE {formType}")
            forms[formType] = fields
    if len(set(identities)) != len(identities):
        raise IllFormedInfo("a duplicate identity")
    if len(set(features)) != len(features):
        raise IllFormedInfo("a duplicate feature")
    parts = [i + "<" for i in sorted(identities, key=_octets)]
    parts += [f + "<" for f in sorted(features, key=_octets)]
    for formType in sorted(forms, key=_octets):
        parts.append(formType + "<")
        for var, values in sorted(forms[formType], key=lambda f: _octets(f[0])):
            parts.append(var + "<")
            parts += [v + "<" for v in sorted(values, key=_octets)]
    digest = hashlib.new(HASHES[algorithm], "".join(parts).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")
