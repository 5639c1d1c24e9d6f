"""
Moderated rooms (XEP-0045 §5.1, §8.3): newcomers without an affiliation
enter as visitors (see L{components.muc.constants.defaultRole}); when the
room stops being moderated its visitors get their voice back.
"""

from __future__ import annotations

from components.muc.constants import PARTICIPANT, VISITOR
from components.muc.features.base import RoomFeature


class Moderated(RoomFeature):
    order = 150

    def configChanged(self, room, old, new):
        if old.moderated and not new.moderated:
            for occupant in list(room.occupants.values()):
                if occupant.role == VISITOR:
                    occupant.role = PARTICIPANT
                    room.broadcastPresence(occupant, stanzaID=None)

    def discoFeatures(self, room):
        return ["muc_moderated" if room.config.moderated else "muc_unmoderated"]
