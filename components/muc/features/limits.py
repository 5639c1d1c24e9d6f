"""
Message rate per occupant: a token bucket (C{message_burst} tokens, refilled
at C{message_rate} per second) over everything an occupant sends to the
room or through it; beyond it, policy-violation (type wait) and nothing is
relayed.  Service-wide limits (rooms per service and per user) are checked
where rooms are created (L{components.muc.service.MUCService.mayCreate});
occupants per room in L{components.muc.features.entry.MaxUsers}.
"""

from __future__ import annotations

from components.muc.features.base import RoomFeature


class RateLimit(RoomFeature):
    order = 0

    def beforeMessage(self, room, occupant, stanza):
        config = self.service.config
        now = self.clock.seconds()
        tokens = occupant.tokens + (now - occupant.refilled) * config.message_rate
        occupant.tokens = min(float(config.message_burst), tokens)
        occupant.refilled = now
        if occupant.tokens < 1.0:
            self.error(stanza, "policy-violation", "you are sending messages too fast", errorType="wait", by=room.jid)
            return True
        occupant.tokens -= 1.0
        return False
