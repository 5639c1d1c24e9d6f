"""
Node configuration (XEP-0060 §8.2) and publish-options preconditions
(XEP-0060 §7.1.5, XEP-0223, XEP-0222).

L{NodeConfig} holds the options a PEP node supports, with XEP-0163's
"smart defaults": access model C{presence}, the last item sent when a
contact comes online (C{on_sub_and_presence}), notifications with payloads,
one item kept.  Each option is one C{pubsub#...} field of the
C{pubsub#node_config} data form (L{FIELDS}): L{configForm} renders a node's
configuration, L{applyForm} reads a submitted form (configure, create and
configure, or publish-options creating a node), L{unmetPrecondition} checks
publish-options against an existing node.

C{pubsub#max_items} accepts C{max} (the server's C{[limits] max_pep_items},
stored as L{MAX} so that it follows the limit) and numbers up to that limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Iterable

from twisted.words.xish import domish

NS_DATA = "jabber:x:data"
NS_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("open", "presence", "roster", "whitelist")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
NOTIFICATION_TYPES = ("headline", "normal")
PUBLISH_MODELS = ("publishers",)  # PEP: one publisher per node, the owner (XEP-0163 §3.2)

#: C{pubsub#max_items} of "max": as many as the server allows.
MAX = -1


class ConfigError(ValueError):
    """A submitted field that cannot be applied: the message says which and why."""


@dataclass(frozen=True)
class NodeConfig:
    """The configuration of one PEP node; the defaults are XEP-0163's (§8)."""

    title: str = ""
    type: str = ""
    access_model: str = "presence"
    roster_groups_allowed: tuple[str, ...] = ()
    publish_model: str = "publishers"
    persist_items: bool = True
    max_items: int = 1
    send_last_published_item: str = "on_sub_and_presence"
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    notify_retract: bool = True
    notify_delete: bool = True
    notification_type: str = "headline"

    def keep(self, limit: int) -> int:
        """How many items the node keeps, with the server's C{limit}."""
        return limit if self.max_items == MAX else min(self.max_items, limit)

    def toDict(self) -> dict[str, Any]:
        """What the store keeps (JSON)."""
        data = asdict(self)
        data["roster_groups_allowed"] = list(self.roster_groups_allowed)
        return data

    @classmethod
    def fromDict(cls, data: dict[str, Any]) -> "NodeConfig":
        """A configuration read back from the store; unknown keys and bad values fall back to defaults."""
        default = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value, expected = data[f.name], type(getattr(default, f.name))
            if expected is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
                values[f.name] = tuple(value)
            elif isinstance(value, expected) and (expected is not int or not isinstance(value, bool)):
                values[f.name] = value
        return replace(default, **values)


# -- fields --------------------------------------------------------------------------


def _boolean(values: list[str], limit: int) -> bool:
    value = values[0].strip().lower() if values else ""
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise ConfigError("must be a boolean (true, false, 1 or 0)")


def _maxItems(values: list[str], limit: int) -> int:
    value = values[0].strip() if values else ""
    if value == "max":
        return MAX
    if not value.isdigit() or int(value) < 1:
        raise ConfigError('must be a positive number or "max"')
    if int(value) > limit:
        raise ConfigError(f'may be at most {limit} (or "max")')
    return int(value)


def _oneOf(*choices: str) -> Callable[[list[str], int], str]:
    def parse(values: list[str], limit: int) -> str:
        value = values[0].strip() if values else ""
        if value not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _text(values: list[str], limit: int) -> str:
    return values[0] if values else ""


def _list(values: list[str], limit: int) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class Field:
    """One C{pubsub#...} form field: the option it sets, its form type, label and parser."""

    var: str
    attr: str
    kind: str
    label: str
    parse: Callable[[list[str], int], Any]
    options: tuple[str, ...] = ()


FIELDS: dict[str, Field] = {
    f.var: f
    for f in (
        Field("pubsub#title", "title", "text-single", "A friendly name for the node", _text),
        Field("pubsub#type", "type", "text-single", "The semantic type of the payload", _text),
        Field("pubsub#access_model", "access_model", "list-single", "Who may subscribe and retrieve items", _oneOf(*ACCESS_MODELS), ACCESS_MODELS),
        Field("pubsub#roster_groups_allowed", "roster_groups_allowed", "list-multi", "Roster groups allowed to subscribe", _list),
        Field("pubsub#publish_model", "publish_model", "list-single", "Who may publish", _oneOf(*PUBLISH_MODELS), PUBLISH_MODELS),
        Field("pubsub#persist_items", "persist_items", "boolean", "Persist items to storage", _boolean),
        Field("pubsub#max_items", "max_items", "text-single", "Max # of items to persist; `max` for the server's limit", _maxItems),
        Field("pubsub#send_last_published_item", "send_last_published_item", "list-single", "When to send the last published item", _oneOf(*SEND_LAST), SEND_LAST),
        Field("pubsub#deliver_notifications", "deliver_notifications", "boolean", "Whether to deliver event notifications", _boolean),
        Field("pubsub#deliver_payloads", "deliver_payloads", "boolean", "Whether to deliver payloads with event notifications", _boolean),
        Field("pubsub#notify_retract", "notify_retract", "boolean", "Notify subscribers when items are removed from the node", _boolean),
        Field("pubsub#notify_delete", "notify_delete", "boolean", "Notify subscribers when the node is deleted", _boolean),
        Field("pubsub#notification_type", "notification_type", "list-single", "The message type of event notifications", _oneOf(*NOTIFICATION_TYPES), NOTIFICATION_TYPES),
    )
}


def formValues(x: domish.Element) -> dict[str, list[str]]:
    """The fields of a submitted data form: var -> values (FORM_TYPE included)."""
    values: dict[str, list[str]] = {}
    for field in x.elements(NS_DATA, "field"):
        var = field.getAttribute("var")
        if var:
            values[var] = [str(v) for v in field.elements(NS_DATA, "value")]
    return values


def formOf(parent: domish.Element | None) -> domish.Element | None:
    """The data form inside C{parent} (C{<configure/>}, C{<publish-options/>}), if any."""
    if parent is None:
        return None
    return next(parent.elements(NS_DATA, "x"), None)


def checkFormType(values: dict[str, list[str]], formType: str) -> None:
    """A form naming another FORM_TYPE is not for us (leaving it out is tolerated)."""
    given = values.get("FORM_TYPE")
    if given and given[0] != formType:
        raise ConfigError(f"FORM_TYPE must be {formType}")


def applyForm(config: NodeConfig, values: dict[str, list[str]], limit: int) -> NodeConfig:
    """C{config} with the submitted C{values} applied; L{ConfigError} names a field that cannot be."""
    changes: dict[str, Any] = {}
    for var, given in values.items():
        if var == "FORM_TYPE":
            continue
        field = FIELDS.get(var)
        if field is None:
            raise ConfigError(f"{var} is not a supported option")
        try:
            changes[field.attr] = field.parse(given, limit)
        except ConfigError as e:
            raise ConfigError(f"{var} {e}") from None
    new = replace(config, **changes)
    if new.access_model == "roster" and not new.roster_groups_allowed:
        raise ConfigError("the roster access model needs pubsub#roster_groups_allowed")
    return new


def unmetPrecondition(config: NodeConfig, values: dict[str, list[str]], limit: int) -> str | None:
    """
    The first publish-options field the existing node's C{config} does not
    satisfy (an unknown field is never satisfied, XEP-0060 §7.1.5), or None.
    """
    for var, given in values.items():
        if var == "FORM_TYPE":
            continue
        field = FIELDS.get(var)
        if field is None:
            return var
        try:
            wanted = field.parse(given, limit)
        except ConfigError:
            return var
        have = getattr(config, field.attr)
        if field.attr == "max_items":
            # "max" and the number it stands for are the same precondition.
            wanted = limit if wanted == MAX else wanted
            have = config.keep(limit)
        if wanted != have:
            return var
    return None


def _value(config: NodeConfig, field: Field) -> list[str]:
    value = getattr(config, field.attr)
    if field.kind == "boolean":
        return ["1" if value else "0"]
    if field.attr == "max_items":
        return ["max" if value == MAX else str(value)]
    if isinstance(value, tuple):
        return list(value)
    return [value] if value else []


def configForm(config: NodeConfig, formType: str = "form", groups: Iterable[str] = ()) -> domish.Element:
    """
    The C{pubsub#node_config} data form of C{config}: a form to fill in
    (C{formType} "form", with labels and options; C{groups} the owner's
    roster groups) or a result.
    """
    x = domish.Element((NS_DATA, "x"))
    x["type"] = formType
    hidden = x.addElement("field")
    hidden["var"] = "FORM_TYPE"
    hidden["type"] = "hidden"
    hidden.addElement("value", content=NS_NODE_CONFIG)
    for field in FIELDS.values():
        e = x.addElement("field")
        e["var"] = field.var
        if formType == "form":
            e["type"] = field.kind
            e["label"] = field.label
            options = sorted(set(groups)) if field.attr == "roster_groups_allowed" else field.options
            for option in options:
                e.addElement("option").addElement("value", content=option)
        for value in _value(config, field):
            e.addElement("value", content=value)
    return x
