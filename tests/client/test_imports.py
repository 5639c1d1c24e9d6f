"""
The client library imports nothing of the server (docs/ARCHITECTURE.md,
"Who may import whom"), so it works against any server and installs
without the server's dependencies being exercised.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial import unittest

#: The pure helpers the client may share with the server.
ALLOWED = ["jabberd", "jabberd.capshash", "jabberd.jid", "jabberd.scram", "jabberd.srv"]


class ImportRuleTests(unittest.TestCase):
    """Checked in a fresh interpreter: this one has the server loaded already."""

    def test_onlyPureHelpers(self) -> None:
        """Importing the library and the command line loads no jabberd module but the pure helpers capshash, jid, scram and srv."""
        code = (
            "import sys, jabberd.client, jabberd.client.cli;"
            "print(sorted(m for m in sys.modules if m.startswith('jabberd') and not m.startswith('jabberd.client')))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
        self.assertEqual(out.strip(), repr(ALLOWED))
