"""
A room's configuration and its muc#roomconfig data form (XEP-0045 §10.2, §15.5.3).

L{RoomConfig} holds the values; L{configForm} renders the form an owner
edits and L{applyForm} reads a submitted one back, answering
C{not-acceptable} for values the room cannot take.  Every field of the
registry that a server acts on is here; the affiliation fields
(C{roomadmins}, C{roomowners}) are read by the owner feature, which turns
them into affiliation changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from twisted.words.xish import domish

from components.muc.constants import MODERATOR, NS_DATA, NS_MUC_ROOMCONFIG, PARTICIPANT, VISITOR

ROLES_BROADCAST = (MODERATOR, PARTICIPANT, VISITOR)
ALLOW_PM = ("anyone", "participants", "moderators", "none")
WHOIS = ("moderators", "anyone")
MAXUSERS_CHOICES = ("10", "20", "30", "50", "100", "none")


@dataclass
class RoomConfig:
    """The settings of one room (mutable: the owner changes them)."""

    name: str = ""
    description: str = ""
    language: str = ""
    persistent: bool = False
    public: bool = True
    membersOnly: bool = False
    moderated: bool = False
    passwordProtected: bool = False
    password: str = ""
    maxUsers: int = 100  # 0: the service's limit
    whois: str = "moderators"
    allowInvites: bool = False
    changeSubject: bool = False
    historyLength: int = 20
    presenceBroadcast: frozenset = field(default_factory=lambda: frozenset(ROLES_BROADCAST))
    allowPM: str = "anyone"
    getMemberList: frozenset = field(default_factory=lambda: frozenset(ROLES_BROADCAST))
    enableLogging: bool = False

    @classmethod
    def fromDefaults(cls, defaults: Any) -> "RoomConfig":
        """From a L{jabberd.config.RoomDefaultsConfig}."""
        return cls(
            name=defaults.name,
            description=defaults.description,
            language=defaults.language,
            persistent=defaults.persistent,
            public=defaults.public,
            membersOnly=defaults.members_only,
            moderated=defaults.moderated,
            maxUsers=defaults.max_users,
            whois=defaults.whois,
            allowInvites=defaults.allow_invites,
            changeSubject=defaults.change_subject,
            historyLength=defaults.history_length,
            presenceBroadcast=frozenset(defaults.presence_broadcast),
            allowPM=defaults.allow_pm,
            getMemberList=frozenset(defaults.get_member_list),
            enableLogging=defaults.enable_logging,
        )

    def copy(self) -> "RoomConfig":
        return dataclasses.replace(self)

    def toDict(self) -> dict:
        """For the store (JSON)."""
        data = dataclasses.asdict(self)
        data["presenceBroadcast"] = sorted(self.presenceBroadcast)
        data["getMemberList"] = sorted(self.getMemberList)
        return data

    @classmethod
    def fromDict(cls, data: dict, defaults: "RoomConfig") -> "RoomConfig":
        """From the store; a key this version does not know is ignored, a missing one defaulted."""
        config = defaults.copy()
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key in names:
                if key in ("presenceBroadcast", "getMemberList"):
                    value = frozenset(value)
                setattr(config, key, value)
        return config

    @property
    def nonAnonymous(self) -> bool:
        return self.whois == "anyone"


class NotAcceptable(ValueError):
    """A submitted form the room cannot take (not-acceptable, with this text)."""


# -- the form ------------------------------------------------------------------------


def _field(form: domish.Element, var: str, type_: str, label: str | None, values: list[str] = (), options: list[tuple[str, str]] = ()) -> None:
    f = form.addElement("field")
    f["var"] = var
    f["type"] = type_
    if label:
        f["label"] = label
    for value in values:
        f.addElement("value", content=value)
    for value, optLabel in options:
        o = f.addElement("option")
        o["label"] = optLabel
        o.addElement("value", content=value)


def _bool(value: bool) -> list[str]:
    return ["1" if value else "0"]


def configForm(room: Any) -> domish.Element:
    """The muc#roomconfig form with the room's current values as defaults."""
    c: RoomConfig = room.config
    form = domish.Element((NS_DATA, "x"))
    form["type"] = "form"
    form.addElement("title", content=f"Configuration for {room.jid}")
    form.addElement("instructions", content="Complete this form to modify the configuration of the room.")
    _field(form, "FORM_TYPE", "hidden", None, [NS_MUC_ROOMCONFIG])
    roles = [(MODERATOR, "Moderator"), (PARTICIPANT, "Participant"), (VISITOR, "Visitor")]
    _field(form, "muc#roomconfig_roomname", "text-single", "Natural-Language Room Name", [c.name] if c.name else [])
    _field(form, "muc#roomconfig_roomdesc", "text-single", "Short Description of Room", [c.description] if c.description else [])
    _field(form, "muc#roomconfig_lang", "text-single", "Natural Language for Room Discussions", [c.language] if c.language else [])
    _field(form, "muc#roomconfig_enablelogging", "boolean", "Enable Public Logging?", _bool(c.enableLogging))
    _field(form, "muc#roomconfig_changesubject", "boolean", "Allow Occupants to Change Subject?", _bool(c.changeSubject))
    _field(form, "muc#roomconfig_allowinvites", "boolean", "Allow Members to Invite Others?", _bool(c.allowInvites))
    _field(form, "muc#roomconfig_allowpm", "list-single", "Who Can Send Private Messages?", [c.allowPM],
           [("anyone", "Anyone"), ("participants", "Anyone with Voice"), ("moderators", "Moderators Only"), ("none", "Nobody")])
    maxUsers = str(c.maxUsers) if c.maxUsers else "none"
    choices = list(MAXUSERS_CHOICES)
    if maxUsers not in choices:
        choices.insert(-1, maxUsers)
    _field(form, "muc#roomconfig_maxusers", "list-single", "Maximum Number of Occupants", [maxUsers],
           [(v, "None" if v == "none" else v) for v in choices])
    _field(form, "muc#roomconfig_presencebroadcast", "list-multi", "Roles for which Presence is Broadcasted",
           [r for r, _ in roles if r in c.presenceBroadcast], roles)
    _field(form, "muc#roomconfig_getmemberlist", "list-multi", "Roles and Affiliations that May Retrieve Member List",
           [r for r, _ in roles if r in c.getMemberList], roles)
    _field(form, "muc#roomconfig_publicroom", "boolean", "Make Room Publicly Searchable?", _bool(c.public))
    _field(form, "muc#roomconfig_persistentroom", "boolean", "Make Room Persistent?", _bool(c.persistent))
    _field(form, "muc#roomconfig_moderatedroom", "boolean", "Make Room Moderated?", _bool(c.moderated))
    _field(form, "muc#roomconfig_membersonly", "boolean", "Make Room Members-Only?", _bool(c.membersOnly))
    _field(form, "muc#roomconfig_passwordprotectedroom", "boolean", "Password Required to Enter?", _bool(c.passwordProtected))
    _field(form, "muc#roomconfig_roomsecret", "text-private", "Password", [c.password] if c.password else [])
    _field(form, "muc#roomconfig_whois", "list-single", "Who May Discover Real JIDs?", [c.whois],
           [("moderators", "Moderators Only"), ("anyone", "Anyone")])
    _field(form, "muc#maxhistoryfetch", "text-single", "Maximum Number of History Messages Returned by Room", [str(c.historyLength)])
    _field(form, "muc#roomconfig_roomadmins", "jid-multi", "Room Admins", room.affiliated("admin"))
    _field(form, "muc#roomconfig_roomowners", "jid-multi", "Room Owners", room.affiliated("owner"))
    return form


def formValues(form: domish.Element) -> dict[str, list[str]]:
    """The fields of a submitted form: var -> values."""
    values: dict[str, list[str]] = {}
    for f in form.elements(NS_DATA, "field"):
        var = f.getAttribute("var")
        if var:
            values[var] = [str(v) for v in f.elements(NS_DATA, "value")]
    return values


def _asBool(var: str, values: list[str]) -> bool:
    text = values[0].strip().lower() if values else ""
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise NotAcceptable(f"{var}: not a boolean")


def _asInt(var: str, values: list[str], minimum: int = 0) -> int:
    try:
        value = int(values[0].strip()) if values else -1
    except ValueError:
        raise NotAcceptable(f"{var}: not a number") from None
    if value < minimum:
        raise NotAcceptable(f"{var}: must be at least {minimum}")
    return value


def _single(var: str, values: list[str]) -> str:
    return values[0] if values else ""


def _choice(var: str, values: list[str], choices: tuple[str, ...]) -> str:
    value = _single(var, values).strip()
    if value not in choices:
        raise NotAcceptable(f"{var}: one of {', '.join(choices)}")
    return value


def _roles(var: str, values: list[str]) -> frozenset:
    roles = frozenset(v.strip() for v in values)
    if not roles <= set(ROLES_BROADCAST):
        raise NotAcceptable(f"{var}: roles are moderator, participant and visitor")
    return roles


_SETTERS = {
    "muc#roomconfig_roomname": ("name", _single),
    "muc#roomconfig_roomdesc": ("description", _single),
    "muc#roomconfig_lang": ("language", lambda var, v: _single(var, v).strip()),
    "muc#roomconfig_enablelogging": ("enableLogging", _asBool),
    "muc#roomconfig_changesubject": ("changeSubject", _asBool),
    "muc#roomconfig_allowinvites": ("allowInvites", _asBool),
    "muc#roomconfig_allowpm": ("allowPM", lambda var, v: _choice(var, v, ALLOW_PM)),
    "muc#roomconfig_presencebroadcast": ("presenceBroadcast", _roles),
    "muc#roomconfig_getmemberlist": ("getMemberList", _roles),
    "muc#roomconfig_publicroom": ("public", _asBool),
    "muc#roomconfig_persistentroom": ("persistent", _asBool),
    "muc#roomconfig_moderatedroom": ("moderated", _asBool),
    "muc#roomconfig_membersonly": ("membersOnly", _asBool),
    "muc#roomconfig_passwordprotectedroom": ("passwordProtected", _asBool),
    "muc#roomconfig_roomsecret": ("password", _single),
    "muc#roomconfig_whois": ("whois", lambda var, v: _choice(var, v, WHOIS)),
    "muc#maxhistoryfetch": ("historyLength", _asInt),
}


def applyForm(config: RoomConfig, values: dict[str, list[str]], maxOccupants: int, maxHistory: int) -> RoomConfig:
    """
    A new configuration: C{config} changed by the submitted C{values}.

    Fields not submitted keep their value (a client may send only what
    changed).  @raise NotAcceptable: a value the room cannot take.
    """
    new = config.copy()
    formType = values.get("FORM_TYPE")
    if formType is not None and formType != [NS_MUC_ROOMCONFIG]:
        raise NotAcceptable("FORM_TYPE must be " + NS_MUC_ROOMCONFIG)
    for var, (attr, convert) in _SETTERS.items():
        if var in values:
            setattr(new, attr, convert(var, values[var]))
    if "muc#roomconfig_maxusers" in values:
        text = _single("muc#roomconfig_maxusers", values["muc#roomconfig_maxusers"]).strip()
        new.maxUsers = 0 if text in ("none", "") else _asInt("muc#roomconfig_maxusers", [text], 1)
    if new.maxUsers > maxOccupants:
        raise NotAcceptable(f"muc#roomconfig_maxusers: at most {maxOccupants}")
    if new.historyLength > maxHistory:
        new.historyLength = maxHistory
    if "muc#roomconfig_roomsecret" in values and "muc#roomconfig_passwordprotectedroom" not in values:
        new.passwordProtected = bool(new.password)
    if new.passwordProtected and not new.password:
        raise NotAcceptable("a password-protected room needs a password")
    if not new.passwordProtected:
        new.password = ""
    return new
