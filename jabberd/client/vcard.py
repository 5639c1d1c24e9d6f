"""
vcard-temp (XEP-0054): reading anyone's vCard and writing our own.

The vCard is returned as its C{<vCard/>} element: the format has dozens of
fields, and callers (the command line prints them) pick what they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

if TYPE_CHECKING:
    from jabberd.client.client import Client

__all__ = ["NS_VCARD", "VCard", "fields"]

NS_VCARD = "vcard-temp"


class VCard:
    """C{client.vcard.get(jid)}, C{client.vcard.set(element)}."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, entity: JID | str | None = None) -> defer.Deferred:
        """
        The vCard of C{entity} (default: our own), as a C{<vCard/>} element;
        an empty one when the server answers with none.
        """
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        if entity is not None:
            iq["to"] = entity if isinstance(entity, str) else entity.userhost()
        iq.addElement((NS_VCARD, "vCard"))

        def extract(result: domish.Element) -> domish.Element:
            for child in result.elements(NS_VCARD, "vCard"):
                return child
            return domish.Element((NS_VCARD, "vCard"))

        return self.client.request(iq).addCallback(extract)

    def set(self, vcard: domish.Element) -> defer.Deferred:
        """Publish C{vcard} (a C{<vCard xmlns='vcard-temp'/>}) as our own."""
        iq = domish.Element((None, "iq"))
        iq["type"] = "set"
        iq.addChild(vcard)
        return self.client.request(iq)


def fields(vcard: domish.Element, prefix: str = "") -> list[tuple[str, str]]:
    """
    The text fields of a vCard as (path, value) pairs in document order:
    C{("FN", "Juliet")}, C{("N/GIVEN", "Juliet")}, C{("EMAIL/USERID", ...)}.
    Binary photos are shown as their type only.
    """
    result: list[tuple[str, str]] = []
    for child in vcard.elements():
        path = prefix + child.name
        if child.name == "BINVAL":
            result.append((path, f"<{len(str(child).strip())} base64 characters>"))
            continue
        children = list(child.elements())
        if children:
            result += fields(child, path + "/")
        else:
            text = str(child).strip()
            result.append((path, text))
    return result
