"""
Ghosts (XEP-0045 §17.3.3, §11.1): when a stanza the room sent to an
occupant's session comes back as a delivery error, that session is gone;
it is removed with status 333.  Errors a client may return itself (a
private message it does not want) do not count.
"""

from __future__ import annotations

from components.muc.constants import ERROR_REMOVED, GHOST_CONDITIONS, NS_STANZAS
from components.muc.features.base import RoomFeature
from components.muc.presence import removeSession

#: For messages, the conditions only a server reports (a client may answer
#: service-unavailable to a private message it does not handle).
MESSAGE_CONDITIONS = GHOST_CONDITIONS - {"service-unavailable"}


def condition(stanza) -> str | None:
    error = None
    for e in stanza.elements():
        if e.name == "error":
            error = e
            break
    if error is None:
        return None
    for c in error.elements():
        if c.uri == NS_STANZAS and c.name != "text":
            return c.name
    return None


class Ghosts(RoomFeature):
    order = 100

    def occupantError(self, room, occupant, session, stanza):
        conditions = GHOST_CONDITIONS if stanza.name == "presence" else MESSAGE_CONDITIONS
        if condition(stanza) in conditions:
            removeSession(room, occupant, session, ERROR_REMOVED)
            return True
        return False
