"""
What service discovery says about a room (XEP-0045 §6.4, §6.5, §15.5.4):
the features that describe it (public/hidden, persistent/temporary,
non-/semi-anonymous; the entry features add theirs), the muc#roominfo
form, and its items: the occupants' room JIDs, to its occupants, and to
anyone in a public room that is not members-only.
"""

from __future__ import annotations

from tx_xmpp import data_form

from components.muc.constants import NS_MUC_ROOMINFO, NS_MUC_SELF_PING
from components.muc.features.base import RoomFeature


def roomInfoForm(fields) -> data_form.Form:
    """An XEP-0128 result form of (var, label, values) triples."""
    form = data_form.Form("result", formNamespace=NS_MUC_ROOMINFO)
    for var, label, values in fields:
        form.addField(data_form.Field(None, var, values=list(values), label=label))
    return form


class Discovery(RoomFeature):
    order = 100

    def discoFeatures(self, room):
        c = room.config
        return [
            "muc_public" if c.public else "muc_hidden",
            "muc_persistent" if c.persistent else "muc_temporary",
            "muc_nonanonymous" if c.nonAnonymous else "muc_semianonymous",
            NS_MUC_SELF_PING,
        ]

    def roomInfo(self, room):
        c = room.config
        fields = [
            ("muc#roominfo_description", "Description", [c.description] if c.description else []),
            ("muc#roominfo_occupants", "Number of occupants", [str(room.count())]),
            ("muc#roominfo_subject", "Current Discussion Topic", [room.subject] if room.subject else []),
            ("muc#roominfo_subjectmod", "The room subject can be modified by participants", ["1" if c.changeSubject else "0"]),
            ("muc#maxhistoryfetch", "Maximum Number of History Messages Returned by Room", [str(room.historyCap())]),
        ]
        if c.language:
            fields.append(("muc#roominfo_lang", "Language of discussion", [c.language]))
        if c.nonAnonymous:
            fields.append(("muc#roominfo_contactjid", "Contact Addresses", room.owners()))
        if c.name:
            fields.append(("muc#roomconfig_roomname", "Natural-Language Room Name", [c.name]))
        return fields

    def discoItems(self, room, requestor):
        inRoom = requestor is not None and requestor.full() in room.sessions
        if inRoom or (room.config.public and not room.config.membersOnly):
            return [room.occupantJID(nick) for nick in sorted(room.occupants)]
        return []
