"""
Federation with Prosody from Debian (tests.s2s.peers): SASL EXTERNAL
between a.example and b.example (certificates from a CA both trust),
dialback between d.example and c.example (self-signed certificates).
"""

from __future__ import annotations

from twisted.trial import unittest

from tests.s2s.interop import ConversationMixin
from tests.s2s.peers import Prosody


class ProsodyCertificateTests(ConversationMixin, unittest.TestCase):
    """jabberd a.example <-> Prosody b.example, authenticated by certificates (SASL EXTERNAL)."""

    peerClass = Prosody
    ours, theirs, method = "a.example", "b.example", "sasl"


class ProsodyDialbackTests(ConversationMixin, unittest.TestCase):
    """jabberd d.example <-> Prosody c.example, self-signed: server dialback."""

    peerClass = Prosody
    ours, theirs, method = "d.example", "c.example", "dialback"
