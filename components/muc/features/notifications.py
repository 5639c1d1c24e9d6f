"""
Configuration change notices (XEP-0045 §10.2.1): a message to the room with
status codes: 170/171 logging on/off, 172 now non-anonymous, 173 now
semi-anonymous, and 104 for any other change.  Also status 104 is what
tells clients to fetch the new room information.
"""

from __future__ import annotations

import dataclasses

from components.muc.constants import CONFIG_CHANGED, LOGGING_OFF, LOGGING_ON, NOW_NON_ANONYMOUS, NOW_SEMI_ANONYMOUS
from components.muc.features.base import RoomFeature

PRIVACY = ("enableLogging", "whois")


class Notifications(RoomFeature):
    order = 200  # after the features that remove or promote occupants

    def configChanged(self, room, old, new):
        codes = []
        if new.enableLogging != old.enableLogging:
            codes.append(LOGGING_ON if new.enableLogging else LOGGING_OFF)
        if new.whois != old.whois:
            codes.append(NOW_NON_ANONYMOUS if new.nonAnonymous else NOW_SEMI_ANONYMOUS)
        others = [f.name for f in dataclasses.fields(new) if f.name not in PRIVACY]
        if any(getattr(old, name) != getattr(new, name) for name in others):
            codes.append(CONFIG_CHANGED)
        if codes and room.occupants:
            room.statusMessage(codes)
