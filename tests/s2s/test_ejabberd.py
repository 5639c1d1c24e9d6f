"""
Federation with ejabberd from Debian (tests.s2s.peers): SASL EXTERNAL
between a.example and b.example (certificates from a CA both trust),
dialback between d.example and c.example (self-signed certificates).

ejabberd 23.01 finds jabberd through the tests' DNS server for its SRV
lookup only: it resolves SRV targets with the C library's getaddrinfo,
which does not read its inetrc, so the SRV records also name 127.0.0.1
as a second target (L{tests.s2s.peers.ejabberdTarget}).
"""

from __future__ import annotations

from twisted.trial import unittest

from tests.s2s.interop import ConversationMixin
from tests.s2s.peers import Ejabberd


class EjabberdCertificateTests(ConversationMixin, unittest.TestCase):
    """jabberd a.example <-> ejabberd b.example, authenticated by certificates (SASL EXTERNAL)."""

    peerClass = Ejabberd
    ours, theirs, method = "a.example", "b.example", "sasl"


class EjabberdDialbackTests(ConversationMixin, unittest.TestCase):
    """jabberd d.example <-> ejabberd c.example, self-signed: server dialback (ejabberd calls back to verify)."""

    peerClass = Ejabberd
    ours, theirs, method = "d.example", "c.example", "dialback"
