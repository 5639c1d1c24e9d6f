"""
The features of a room, one small file each, hooking room events (see
L{components.muc.features.base}).  L{DEFAULT_FEATURES} is what a MUC
service runs; a deployment or a test can pass its own list.
"""

from components.muc.features.admin import Admin
from components.muc.features.chat import GroupChat
from components.muc.features.discovery import Discovery
from components.muc.features.entry import Bans, MaxUsers, MembersOnly, Nicknames, Passwords
from components.muc.features.ghosts import Ghosts
from components.muc.features.history import History
from components.muc.features.invitations import Invitations
from components.muc.features.iqrelay import IqRelay
from components.muc.features.limits import RateLimit
from components.muc.features.moderated import Moderated
from components.muc.features.notifications import Notifications
from components.muc.features.owner import Owner
from components.muc.features.privatemessages import PrivateMessages
from components.muc.features.subject import Subject
from components.muc.features.voicerequests import VoiceRequests

DEFAULT_FEATURES = (
    RateLimit,
    Bans,
    MembersOnly,
    Passwords,
    MaxUsers,
    Nicknames,
    History,
    Subject,
    GroupChat,
    PrivateMessages,
    Invitations,
    VoiceRequests,
    Admin,
    Owner,
    Moderated,
    Notifications,
    Discovery,
    IqRelay,
    Ghosts,
)

__all__ = ["DEFAULT_FEATURES"]
