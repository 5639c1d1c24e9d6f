"""
The standalone MUC component's configuration (components/config.py):
etc/muc.toml is valid and complete, docs/muc.md is generated from the
classes, and problems are reported with key paths like the server's.
"""

from __future__ import annotations

import io
import os
import re
import tomllib

from twisted.trial.unittest import SynchronousTestCase

from components.config import MucComponentConfig, fromMucDict, loadMuc, main, markdown
from jabberd.config import ConfigError, fromDict
from tests.test_config import missingOptions, uncommented

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "etc", "muc.toml")
DOCS = os.path.join(ROOT, "docs", "muc.md")
BEGIN, END = "<!-- BEGIN generated: python -m components.config --markdown -->", "<!-- END generated -->"


class ComponentConfigTests(SynchronousTestCase):
    """The component's own file."""

    def test_exampleValidates(self):
        """etc/muc.toml loads as it ships."""
        self.assertEqual(loadMuc(EXAMPLE).component.domain, "conference.localhost")

    def test_exampleComplete(self):
        """Every option appears in etc/muc.toml, and with all of them active it is still valid."""
        with open(EXAMPLE, encoding="utf-8") as f:
            data = tomllib.loads(uncommented(f.read()))
        self.assertEqual(list(missingOptions(MucComponentConfig, data)), [])
        fromMucDict(data)

    def test_secretRequired(self):
        """Without a secret the component cannot connect: a problem, even without a [component] table."""
        with self.assertRaises(ConfigError) as e:
            fromMucDict({})
        self.assertEqual(e.exception.problems, ["component.secret: required: the secret of this domain in the server's [components] secrets"])

    def test_sharesTheServerDatabase(self):
        """By default the component uses the server's SQLite file in the same data_dir."""
        config = fromMucDict({"data_dir": "/srv/jabberd", "component": {"secret": "s"}})
        self.assertEqual(config.databaseURL(), fromDict({"data_dir": "/srv/jabberd"}).databaseURL())

    def test_check(self):
        """python -m components.config --check reports ok or the problems."""
        out = io.StringIO()
        self.assertEqual(main(["--check", EXAMPLE], out), 0)
        self.assertEqual(out.getvalue(), "ok\n")

    def test_docsUpToDate(self):
        """docs/muc.md carries the tables generated from the classes."""
        with open(DOCS, encoding="utf-8") as f:
            text = f.read()
        generated = re.search(re.escape(BEGIN) + r"\n(.*)" + re.escape(END), text, re.S)
        self.assertIsNotNone(generated, "docs/muc.md lacks the generated section")
        self.assertEqual(generated.group(1), markdown(), "regenerate the tables of docs/muc.md")


class ServerMucConfigTests(SynchronousTestCase):
    """The server's [components] and [muc] sections."""

    def test_defaults(self):
        """Zero configuration: MUC in-process as conference.<host>, no component secrets, loopback listener."""
        config = fromDict({"hosts": ["localhost", "example.org"]})
        self.assertEqual(config.mucDomains(), ["conference.localhost", "conference.example.org"])
        self.assertEqual(config.components.listen, ("tcp:5347:interface=127.0.0.1",))
        self.assertEqual(config.components.secrets, {})

    def test_disabled(self):
        """muc.enabled = false runs no MUC in-process."""
        self.assertEqual(fromDict({"muc": {"enabled": False}}).mucDomains(), [])

    def test_componentClashes(self):
        """A component domain that is a host or the in-process MUC is a problem."""
        with self.assertRaises(ConfigError) as e:
            fromDict({"components": {"secrets": {"localhost": "a", "conference.localhost": "b"}}})
        self.assertEqual(e.exception.problems, [
            "components.secrets.localhost: is also listed in hosts",
            'components.secrets."conference.localhost": is also the in-process MUC service;'
            " set muc.enabled = false to run it as a component",
        ])

    def test_checks(self):
        """Secrets are non-empty, domains normalized, subdomain one label, admins bare JIDs."""
        with self.assertRaises(ConfigError) as e:
            fromDict({"components": {"secrets": {"Muc.Example.org": ""}},
                      "muc": {"subdomain": "chat.rooms", "admins": ["a@b/c"], "room_defaults": {"whois": "none"}}})
        self.assertEqual(e.exception.problems, [
            'components.secrets."muc.example.org": must not be empty',
            'muc.admins[0]: "a@b/c" is a full JID; give the bare JID',
            'muc.room_defaults.whois: "none" is not one of moderators, anyone (did you mean anyone?)',
            'muc.subdomain: "chat.rooms" is not a single lowercase DNS label such as "conference"',
        ])
