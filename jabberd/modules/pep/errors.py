"""
Pubsub errors (XEP-0060 §7-8): an RFC 6120 condition, often with a
pubsub-specific condition beside it (C{<precondition-not-met/>},
C{<unsupported feature='...'/>}, ...).  Raise L{PubsubError}; the module
answers the iq with L{PubsubError.reply}.
"""

from __future__ import annotations

from twisted.words.xish import domish

from jabberd.modules.pep.ns import NS_PUBSUB_ERRORS
from jabberd.xmlstream import errorReply


class PubsubError(Exception):
    """An iq that fails with C{condition} (and the pubsub condition C{pubsub}, if any)."""

    def __init__(self, condition: str, pubsub: str | None = None, text: str | None = None, feature: str | None = None) -> None:
        super().__init__(condition, pubsub, text)
        self.condition = condition
        self.pubsub = pubsub
        self.text = text
        self.feature = feature

    def reply(self, iq: domish.Element) -> domish.Element:
        """The error stanza answering C{iq}."""
        app = None
        if self.pubsub is not None:
            app = domish.Element((NS_PUBSUB_ERRORS, self.pubsub))
            if self.feature is not None:
                app["feature"] = self.feature
        return errorReply(iq, self.condition, self.text, appCondition=app)


def unsupported(feature: str, text: str | None = None) -> PubsubError:
    """feature-not-implemented with C{<unsupported feature='...'/>} (XEP-0060 §7.1.3.2 and others)."""
    return PubsubError("feature-not-implemented", "unsupported", text, feature=feature)


def nodeRequired() -> PubsubError:
    """A request that names no node (PEP has no root node to act on)."""
    return PubsubError("bad-request", "nodeid-required")


def noSuchNode() -> PubsubError:
    return PubsubError("item-not-found")
