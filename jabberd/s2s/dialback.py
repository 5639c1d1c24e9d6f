"""
Server dialback (XEP-0220) keys and elements.

Keys follow XEP-0185: HMAC-SHA256 keyed with the hex SHA-256 of a secret
over "receiving originating streamID", so the authoritative server (this
process) can check a key it generated without remembering it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from twisted.words.xish import domish

from jabberd.xmlstream import NS_CLIENT, NS_XMPP_STANZAS, ERROR_TYPES

NS_DB = "jabber:server:dialback"
NS_DB_FEATURE = "urn:xmpp:features:dialback"

__all__ = ["NS_DB", "NS_DB_FEATURE", "Keys", "dbElement", "dbError", "errorCondition"]


class Keys:
    """Makes and checks dialback keys with one secret (random unless configured)."""

    def __init__(self, secret: str = "") -> None:
        raw = secret.encode("utf-8") if secret else secrets.token_bytes(32)
        self._key = hashlib.sha256(raw).hexdigest().encode("ascii")

    def make(self, receiving: str, originating: str, streamId: str) -> str:
        """The key for the stream C{streamId} that C{originating} opened to C{receiving}."""
        message = f"{receiving} {originating} {streamId}".encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check(self, key: str, receiving: str, originating: str, streamId: str) -> bool:
        """Whether C{key} is the one this server made for those values (constant time)."""
        expected = self.make(receiving, originating, streamId)
        return hmac.compare_digest(expected.encode("ascii"), key.strip().encode("utf-8", "replace"))


def dbElement(
    name: str, sender: str, to: str, type_: str | None = None, id_: str | None = None, key: str | None = None
) -> domish.Element:
    """A C{<db:result/>} or C{<db:verify/>}; its children default to jabber:server on the wire."""
    element = domish.Element((NS_DB, name), defaultUri=NS_CLIENT)
    element["from"] = sender
    element["to"] = to
    if type_ is not None:
        element["type"] = type_
    if id_ is not None:
        element["id"] = id_
    if key is not None:
        element.addContent(key)
    return element


def dbError(name: str, sender: str, to: str, condition: str, id_: str | None = None) -> domish.Element:
    """A dialback error (XEP-0220 §2.4): type='error' with a stanza error condition inside."""
    element = dbElement(name, sender, to, "error", id_)
    error = element.addElement((NS_CLIENT, "error"))
    error["type"] = ERROR_TYPES.get(condition, "cancel")
    error.addElement((NS_XMPP_STANZAS, condition))
    return element


def errorCondition(element: domish.Element) -> str:
    """The stanza error condition inside a dialback error, or undefined-condition."""
    for error in element.elements():
        if error.name == "error":
            for child in error.elements():
                if child.uri == NS_XMPP_STANZAS and child.name != "text":
                    return child.name
    return "undefined-condition"
