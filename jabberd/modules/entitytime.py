"""
Entity Time (XEP-0202) of the server: asked of a hosted domain, it answers
the current time in UTC in the XEP-0082 dateTime profile, with a zone
offset of +00:00 (the server reports UTC, so its local zone is not
revealed).  The time comes from the server's injected reactor, so tests
drive it with a Clock.

(The file is not called time.py so that it never shadows the standard
library's C{time}.)
"""

from __future__ import annotations

from datetime import datetime, timezone

from jabberd import bus as B
from jabberd.module import Module
from jabberd.xmlstream import iqResult

NS_TIME = "urn:xmpp:time"


def xep82DateTime(seconds: float) -> str:
    """C{seconds} since the epoch as an XEP-0082 UTC dateTime, whole seconds: C{1970-01-01T00:00:00Z}."""
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EntityTimeModule(Module):
    """Answers urn:xmpp:time for hosted domains."""

    name = "entitytime"
    features = (NS_TIME,)

    def hooks(self):
        return [(B.iq("get", B.HOST, NS_TIME, "time"), self.time, B.PRIORITY_NORMAL)]

    def time(self, iq, fromJID, toJID) -> bool:
        reply = iqResult(iq)
        element = reply.addElement((NS_TIME, "time"))
        element.addElement("tzo", content="+00:00")
        element.addElement("utc", content=xep82DateTime(self.server.reactor.seconds()))
        self.server.router.route(reply)
        return True
