"""Namespaces, roles, affiliations and status codes of XEP-0045 (and friends)."""

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_MUC_REQUEST = NS_MUC + "#request"
NS_MUC_ROOMCONFIG = NS_MUC + "#roomconfig"
NS_MUC_ROOMINFO = NS_MUC + "#roominfo"
NS_MUC_TRAFFIC = NS_MUC + "#traffic"
NS_MUC_STABLE_ID = NS_MUC + "#stable_id"
NS_MUC_SELF_PING = NS_MUC + "#self-ping-optimization"  # XEP-0410
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"
NS_PING = "urn:xmpp:ping"
NS_VCARD = "vcard-temp"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

#: The disco node a client asks for its reserved nickname (§7.12).
NODE_ROOMUSER = "x-roomuser-item"

OWNER, ADMIN, MEMBER, NONE, OUTCAST = "owner", "admin", "member", "none", "outcast"
AFFILIATIONS = (OWNER, ADMIN, MEMBER, NONE, OUTCAST)
AFFILIATION_RANK = {OUTCAST: -1, NONE: 0, MEMBER: 1, ADMIN: 2, OWNER: 3}

MODERATOR, PARTICIPANT, VISITOR = "moderator", "participant", "visitor"
ROLES = (MODERATOR, PARTICIPANT, VISITOR, NONE)
ROLE_RANK = {NONE: 0, VISITOR: 1, PARTICIPANT: 2, MODERATOR: 3}

# Status codes (§15.6).
NON_ANONYMOUS = "100"
CONFIG_CHANGED = "104"
SELF = "110"
LOGGING_ON = "170"
LOGGING_OFF = "171"
NOW_NON_ANONYMOUS = "172"
NOW_SEMI_ANONYMOUS = "173"
CREATED = "201"
NICK_MODIFIED = "210"
BANNED = "301"
NICK_CHANGED = "303"
KICKED = "307"
AFFILIATION_REMOVED = "321"
MEMBERS_ONLY_REMOVED = "322"
SHUTDOWN = "332"
ERROR_REMOVED = "333"

#: Delivery errors that mean an occupant's session is gone (§17.3.3 "ghosts");
#: service-unavailable is what this server answers for a vanished resource.
GHOST_CONDITIONS = frozenset((
    "gone", "item-not-found", "recipient-unavailable", "redirect",
    "remote-server-not-found", "remote-server-timeout", "service-unavailable",
))


def defaultRole(affiliation: str, moderated: bool) -> str:
    """§5.1.2: the role an occupant enters with."""
    if affiliation in (OWNER, ADMIN):
        return MODERATOR
    if affiliation == MEMBER or not moderated:
        return PARTICIPANT
    return VISITOR
