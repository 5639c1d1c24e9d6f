"""
Discussion history (XEP-0045 §7.2.12, §7.2.13): the last groupchat messages
of the room, sent to a newcomer after its self-presence, each with an
XEP-0203 delay from the room, limited by the room's length and by the
client's C{maxchars}, C{maxstanzas}, C{seconds} and C{since} (the smallest
amount that meets all of them, in whole stanzas).

Each entry is the stanza that was broadcast, with its delay already added:
sending history builds nothing, it only sets the C{to}.
"""

from __future__ import annotations

from datetime import datetime

from components.muc.features.base import RoomFeature
from components.muc.room import HistoryEntry


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _since(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


def select(entries, request, now: float, recipient: str) -> list[HistoryEntry]:
    """The newest entries meeting every limit in C{request} (a <history/> element or None)."""
    maxchars = maxstanzas = cutoff = None
    if request is not None:
        maxchars = _int(request.getAttribute("maxchars"))
        maxstanzas = _int(request.getAttribute("maxstanzas"))
        seconds = _int(request.getAttribute("seconds"))
        if seconds is not None:
            cutoff = now - seconds
        since = _since(request.getAttribute("since"))
        if since is not None:
            cutoff = since if cutoff is None else max(cutoff, since)
    chosen: list[HistoryEntry] = []
    chars = 0
    extra = len(f" to='{recipient}'")
    for entry in reversed(entries):
        if maxstanzas is not None and len(chosen) >= maxstanzas:
            break
        if cutoff is not None and entry.time < cutoff:
            break
        if maxchars is not None:
            chars += entry.size() + extra
            if chars > maxchars:
                break
        chosen.append(entry)
    chosen.reverse()
    return chosen


class History(RoomFeature):
    order = 10

    def broadcasted(self, room, occupant, template):
        if room.history.maxlen:
            now = self.clock.seconds()
            room.history.append(HistoryEntry(now, room.delayed(template, now)))

    def afterJoin(self, room, occupant, session, join):
        if not room.history:
            return
        send = self.service.broadcast
        for entry in select(room.history, join.history, self.clock.seconds(), session):
            send(entry.stanza, [session])
