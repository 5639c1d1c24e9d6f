"""
Tests for L{jabberd.config}: typed TOML configuration and its error messages.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin, get_type_hints

from twisted.trial.unittest import SynchronousTestCase

from jabberd.config import (
    Config,
    ConfigError,
    HostConfig,
    defaultDataDir,
    fromDict,
    load,
    main,
    markdown,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "etc", "jabberd.toml")
DOCS = os.path.join(ROOT, "docs", "configuration.md")


def problemsOf(data: Mapping[str, Any]) -> list[str]:
    """The problems fromDict reports for C{data}, or [] when it is valid."""
    try:
        fromDict(data)
    except ConfigError as e:
        return e.problems
    return []


def uncommented(text: str) -> str:
    """The example file with every commented-out option made active."""
    return re.sub(r"(?m)^# (?=[A-Za-z0-9_-]+ = )", "", text)


def missingOptions(cls: type, data: Mapping[str, Any], where: str = "") -> Iterator[str]:
    """Key paths of the options of C{cls}, and of its nested sections, that C{data} lacks."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, path = hints[f.name], where + f.name
        if f.name not in data:
            yield path
        elif dataclasses.is_dataclass(hint):
            yield from missingOptions(hint, data[f.name], path + ".")
        elif get_origin(hint) is dict and dataclasses.is_dataclass(get_args(hint)[1]):
            if not data[f.name]:
                yield path + '."<name>"'
            for name, table in data[f.name].items():
                yield from missingOptions(get_args(hint)[1], table, f'{path}."{name}".')


def sectionOf(hint: Any) -> type | None:
    """The section class a field holds, directly or as a table of them, else None."""
    inner = get_args(hint)[1] if get_origin(hint) is dict else hint
    return inner if dataclasses.is_dataclass(inner) else None


def sections(cls: type) -> Iterator[type]:
    """C{cls} and every section class nested in it, directly or in tables."""
    yield cls
    for hint in get_type_hints(cls).values():
        if sectionOf(hint):
            yield from sections(sectionOf(hint))


class ProblemTestsMixin:
    """Assertions about the exact problems a configuration produces."""

    def assertProblems(self, data: Mapping[str, Any], *expected: str) -> None:
        """Assert that C{data} yields exactly the C{expected} problems, in order."""
        self.assertEqual(problemsOf(data), list(expected))  # type: ignore[attr-defined]


class DefaultsTests(SynchronousTestCase):
    """Zero configuration works and means the documented defaults."""

    def test_loadNone(self) -> None:
        """load(None) gives the same configuration as the class defaults."""
        self.assertEqual(load(None), Config())

    def test_emptyDict(self) -> None:
        """An empty table is a complete, valid configuration serving localhost."""
        config = fromDict({})
        self.assertEqual(config.hosts, ("localhost",))
        self.assertEqual(config.c2s.listen, ("tcp:5222",))
        self.assertEqual(config.c2s.stanza_size_limit, 262144)
        self.assertEqual(config.auth.scram_iterations, 4096)
        self.assertEqual(config.host, {})

    def test_defaultsPassTheirOwnChecks(self) -> None:
        """Every default, written out explicitly, validates back to the defaults."""
        config = Config()
        self.assertEqual(fromDict(dataclasses.asdict(config)), config)

    def test_frozen(self) -> None:
        """Sections cannot be changed after loading, so sharing them is safe."""
        config = Config()
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, config.c2s, "max_depth", 1)

    def test_databaseURLDefault(self) -> None:
        """With no database set, the store is a SQLite file inside data_dir."""
        config = fromDict({"data_dir": "/srv/jabberd"})
        self.assertEqual(config.databaseURL(), "sqlite:////srv/jabberd/jabberd.sqlite")

    def test_databaseURLPostgreSQL(self) -> None:
        """A PostgreSQL URL is accepted and used as given."""
        url = "postgresql+psycopg://jabberd:secret@db/jabberd"
        self.assertEqual(fromDict({"database": url}).databaseURL(), url)


class DataDirTests(SynchronousTestCase):
    """Where state lives when the configuration does not say."""

    def test_environment(self) -> None:
        """$JABBERD_DATA_DIR wins over everything else."""
        self.assertEqual(
            defaultDataDir({"JABBERD_DATA_DIR": "/var/lib/jabberd", "HOME": "/"}),
            "/var/lib/jabberd",
        )

    def test_writableHome(self) -> None:
        """With a writable $HOME the store goes to ~/.local/share/jabberd."""
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        self.assertEqual(
            defaultDataDir({"HOME": home}), os.path.join(home, ".local", "share", "jabberd")
        )

    def test_xdgDataHome(self) -> None:
        """An absolute $XDG_DATA_HOME replaces ~/.local/share."""
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        environ = {"HOME": home, "XDG_DATA_HOME": "/xdg"}
        self.assertEqual(defaultDataDir(environ), "/xdg/jabberd")

    def test_noHome(self) -> None:
        """Without a usable $HOME (a daemon account) the store goes to ./data."""
        self.assertEqual(
            defaultDataDir({"HOME": "/nonexistent/home"}), os.path.abspath("data")
        )
        self.assertEqual(defaultDataDir({}), os.path.abspath("data"))

    def test_expandedAndAbsolute(self) -> None:
        """A configured data_dir has ~ expanded and is made absolute at load time."""
        self.assertEqual(fromDict({"data_dir": "~/x"}).data_dir, os.path.expanduser("~/x"))
        self.assertEqual(fromDict({"data_dir": "rel"}).data_dir, os.path.abspath("rel"))


class TypeTests(ProblemTestsMixin, SynchronousTestCase):
    """Values of the wrong TOML type are errors naming the expected type."""

    def test_stringForInteger(self) -> None:
        """A string where an integer belongs names both types and the value."""
        self.assertProblems(
            {"c2s": {"stanza_size_limit": "big"}},
            'c2s.stanza_size_limit: expected an integer, got a string ("big")',
        )

    def test_integerForBoolean(self) -> None:
        """1 is not true: booleans must be TOML booleans."""
        self.assertProblems(
            {"c2s": {"require_tls": 1}},
            "c2s.require_tls: expected a boolean, got an integer (1)",
        )

    def test_booleanForInteger(self) -> None:
        """true is not 1: integers must be TOML integers."""
        self.assertProblems(
            {"c2s": {"max_depth": True}},
            "c2s.max_depth: expected an integer, got a boolean (true)",
        )

    def test_floatForInteger(self) -> None:
        """A float where an integer belongs is an error rather than silently truncated."""
        self.assertProblems(
            {"limits": {"max_roster_size": 10.5}},
            "limits.max_roster_size: expected an integer, got a float (10.5)",
        )

    def test_integerForFloat(self) -> None:
        """Integers are accepted for number options and become floats."""
        config = fromDict({"c2s": {"auth_timeout": 5}})
        self.assertEqual(config.c2s.auth_timeout, 5.0)
        self.assertIsInstance(config.c2s.auth_timeout, float)

    def test_notFinite(self) -> None:
        """TOML's nan and inf are not usable durations."""
        self.assertProblems(
            {"c2s": {"idle_timeout": float("nan")}}, "c2s.idle_timeout: must be a finite number"
        )

    def test_numberForString(self) -> None:
        """An unquoted version number gets a hint to quote it."""
        self.assertProblems(
            {"tls": {"min_version": 1.3}},
            "tls.min_version: expected a string, got a float (1.3); write it in quotes",
        )

    def test_stringForList(self) -> None:
        """A single string where a list belongs is an error naming the list type."""
        self.assertProblems(
            {"c2s": {"listen": "tcp:5222"}},
            'c2s.listen: expected an array of strings, got a string ("tcp:5222")',
        )

    def test_listItemType(self) -> None:
        """A wrong item in a list is named by its index."""
        self.assertProblems(
            {"modules": {"enabled": ["roster", 3]}},
            "modules.enabled[1]: expected a string, got an integer (3); write it in quotes",
        )

    def test_scalarForSection(self) -> None:
        """A value where a section belongs is an error, not a crash."""
        self.assertProblems({"limits": 3}, "limits: expected a table, got an integer (3)")

    def test_listsBecomeTuples(self) -> None:
        """TOML arrays are loaded as tuples so that the configuration stays immutable."""
        config = fromDict({"c2s": {"listen": ["tcp:5222", "tcp6:5222"]}})
        self.assertEqual(config.c2s.listen, ("tcp:5222", "tcp6:5222"))


class CheckTests(ProblemTestsMixin, SynchronousTestCase):
    """Every check reports its rule under the key path it applies to."""

    def test_hostsDomain(self) -> None:
        """A host that is not a domain name names its index and the reason."""
        self.assertProblems(
            {"hosts": ["a..b"]}, 'hosts[0]: "a..b" is not a valid domain name (Empty Label)'
        )

    def test_hostsNormalized(self) -> None:
        """Hosts are lowercased and nameprep'd the way JID domainparts are."""
        self.assertEqual(
            fromDict({"hosts": ["Example.ORG", "Straße.de", "bücher.de."]}).hosts,
            ("example.org", "strasse.de", "bücher.de"),
        )

    def test_hostsEmpty(self) -> None:
        """A server serving no domain is an error."""
        self.assertProblems({"hosts": []}, "hosts: must list at least one domain")

    def test_hostsDuplicate(self) -> None:
        """The same domain twice, after normalization, is an error."""
        self.assertProblems(
            {"hosts": ["example.org", "EXAMPLE.org"]},
            'hosts: "example.org" listed more than once',
        )

    def test_database(self) -> None:
        """Only SQLite and PostgreSQL URLs are accepted."""
        self.assertProblems(
            {"database": "mysql://db/x"},
            'database: "mysql://db/x" is not a SQLAlchemy URL for sqlite:// or postgresql://',
        )

    def test_logLevel(self) -> None:
        """An unknown log level lists the known ones and the nearest."""
        self.assertProblems(
            {"log_level": "warning"},
            'log_level: "warning" is not one of debug, info, warn, error (did you mean warn?)',
        )

    def test_endpoint(self) -> None:
        """A bare port number is not an endpoint string."""
        self.assertProblems(
            {"c2s": {"listen_tls": ["tcp:5223", "5223"]}},
            'c2s.listen_tls[1]: "5223" is not a Twisted endpoint string such as "tcp:5222"',
        )

    def test_stanzaSizeLimit(self) -> None:
        """The stanza size limit has a floor so that ordinary stanzas fit."""
        self.assertProblems(
            {"c2s": {"stanza_size_limit": 9999}},
            "c2s.stanza_size_limit: must be at least 10000",
        )

    def test_authTimeout(self) -> None:
        """A zero authentication timeout is an error."""
        self.assertProblems(
            {"c2s": {"auth_timeout": 0}}, "c2s.auth_timeout: must be greater than 0"
        )

    def test_idleTimeout(self) -> None:
        """A negative idle timeout is an error; zero means never."""
        self.assertProblems({"c2s": {"idle_timeout": -1}}, "c2s.idle_timeout: must be at least 0")
        self.assertEqual(fromDict({"c2s": {"idle_timeout": 0}}).c2s.idle_timeout, 0.0)

    def test_maxDepth(self) -> None:
        """XML depth has a floor so that ordinary stanzas fit."""
        self.assertProblems({"c2s": {"max_depth": 7}}, "c2s.max_depth: must be at least 8")

    def test_minVersion(self) -> None:
        """Only TLS 1.2 and 1.3 can be the minimum; with no one nearest choice, none is guessed."""
        self.assertProblems(
            {"tls": {"min_version": "1.1"}},
            'tls.min_version: "1.1" is not one of 1.2, 1.3',
        )

    def test_ciphers(self) -> None:
        """A cipher string OpenSSL matches nothing with is an error; a real one is fine."""
        self.assertProblems(
            {"tls": {"ciphers": "NOPE"}}, 'tls.ciphers: OpenSSL matches no cipher in "NOPE"'
        )
        self.assertEqual(fromDict({"tls": {"ciphers": "ECDHE+AESGCM"}}).tls.ciphers, "ECDHE+AESGCM")

    def test_keyWithoutCertificate(self) -> None:
        """A private key without its certificate is an error."""
        self.assertProblems({"tls": {"key": "/k.pem"}}, "tls.key: set without certificate")

    def test_paths(self) -> None:
        """Certificate paths are expanded and made absolute; "" stays unset."""
        tls = fromDict({"tls": {"certificate": "c.pem"}}).tls
        self.assertEqual((tls.certificate, tls.key), (os.path.abspath("c.pem"), ""))

    def test_scramIterations(self) -> None:
        """SCRAM iterations below the RFC 7677 minimum are an error."""
        self.assertProblems(
            {"auth": {"scram_iterations": 1000}}, "auth.scram_iterations: must be at least 4096"
        )

    def test_mechanisms(self) -> None:
        """An unknown mechanism is named by index, with the nearest known name."""
        self.assertProblems(
            {"auth": {"mechanisms": ["PLAIN", "SCRAM-SHA-265"]}},
            'auth.mechanisms[1]: "SCRAM-SHA-265" is not one of SCRAM-SHA-256-PLUS,'
            " SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, EXTERNAL, ANONYMOUS"
            " (did you mean SCRAM-SHA-256?)",
        )

    def test_maxAttempts(self) -> None:
        """At least one SASL attempt must be allowed."""
        self.assertProblems({"auth": {"max_attempts": 0}}, "auth.max_attempts: must be at least 1")

    def test_externalNeedsCA(self) -> None:
        """EXTERNAL without a client CA bundle is an error rather than trusting any CA."""
        self.assertProblems(
            {"auth": {"external": True}}, "auth.client_ca: required when external is true"
        )

    def test_externalNotAllowed(self) -> None:
        """EXTERNAL offered but excluded by the mechanism allow-list is a contradiction."""
        self.assertProblems(
            {"auth": {"external": True, "client_ca": "/ca.pem", "mechanisms": ["PLAIN"]}},
            "auth.external: true, but mechanisms does not list EXTERNAL",
        )

    def test_limits(self) -> None:
        """Every limit must be at least 1."""
        self.assertProblems(
            {
                "limits": {
                    "max_offline_messages": 0,
                    "max_roster_size": 0,
                    "max_vcard_size": 0,
                    "max_private_size": 0,
                }
            },
            "limits.max_offline_messages: must be at least 1",
            "limits.max_roster_size: must be at least 1",
            "limits.max_vcard_size: must be at least 1",
            "limits.max_private_size: must be at least 1",
        )

    def test_modulesContradiction(self) -> None:
        """A module both enabled and disabled is an error."""
        self.assertProblems(
            {"modules": {"enabled": ["roster", "vcard"], "disabled": ["vcard"]}},
            'modules.disabled: "vcard" is also in enabled',
        )

    def test_modulesNamesKept(self) -> None:
        """Module names are kept as given for the module loader to check."""
        modules = fromDict({"modules": {"enabled": ["roster"], "disabled": ["x"]}}).modules
        self.assertEqual((modules.enabled, modules.disabled), (("roster",), ("x",)))

    def test_contactAddressKey(self) -> None:
        """An unknown XEP-0157 field is an error with the nearest known field."""
        self.assertProblems(
            {"host": {"localhost": {"contact_addresses": {"abuse-adresses": ["mailto:a@b"]}}}},
            'host.localhost.contact_addresses.abuse-adresses: "abuse-adresses" is not one of'
            " abuse-addresses, admin-addresses, feedback-addresses, sales-addresses,"
            " security-addresses, status-addresses, support-addresses"
            " (did you mean abuse-addresses?)",
        )

    def test_contactAddressURI(self) -> None:
        """A contact address that is not a URI is named by field and index."""
        self.assertProblems(
            {"host": {"localhost": {"contact_addresses": {"admin-addresses": ["xmpp:a", "a@b"]}}}},
            'host.localhost.contact_addresses.admin-addresses[1]: "a@b" is not a URI'
            " such as mailto:admin@example.org",
        )


class UnknownKeyTests(ProblemTestsMixin, SynchronousTestCase):
    """Unknown keys are errors, with a suggestion when one is close."""

    def test_topLevel(self) -> None:
        """A misspelt top-level key suggests the real one."""
        self.assertProblems({"hots": ["x"]}, "hots: unknown key (did you mean hosts?)")

    def test_nested(self) -> None:
        """A misspelt key in a section suggests the real one with its section path."""
        self.assertProblems(
            {"c2s": {"stanza_size_limt": 20000}},
            "c2s.stanza_size_limt: unknown key (did you mean stanza_size_limit?)",
        )

    def test_inHost(self) -> None:
        """A misspelt key in a per-host table names the quoted host in its path."""
        self.assertProblems(
            {"hosts": ["example.org"], "host": {"example.org": {"registraton": True}}},
            'host."example.org".registraton: unknown key (did you mean registration?)',
        )

    def test_noSuggestion(self) -> None:
        """A key like nothing known is still an error, without a guess."""
        self.assertProblems({"tls": {"zzz": 1}}, "tls.zzz: unknown key")

    def test_unknownSection(self) -> None:
        """A misspelt section name suggests the real one."""
        self.assertProblems({"limit": {}}, "limit: unknown key (did you mean limits?)")


class HostTests(ProblemTestsMixin, SynchronousTestCase):
    """Per-host tables override the defaults for the domains in hosts."""

    def test_hostNotServed(self) -> None:
        """A table for a domain not in hosts is an error naming that table."""
        self.assertProblems(
            {"hosts": ["example.org"], "host": {"example.com": {}}},
            'host."example.com": not listed in hosts (did you mean example.org?)',
        )

    def test_hostKeyNormalized(self) -> None:
        """Table names are normalized like hosts, so case does not matter."""
        config = fromDict({"hosts": ["example.org"], "host": {"Example.ORG": {}}})
        self.assertEqual(list(config.host), ["example.org"])

    def test_hostKeyTwice(self) -> None:
        """Two tables for the same domain after normalization are an error."""
        self.assertProblems(
            {"hosts": ["a.org"], "host": {"a.org": {}, "A.org": {}}},
            'host."A.org": same as "a.org" once normalized',
        )

    def test_badHostKeys(self) -> None:
        """Each table named by something that is not a domain is one problem."""
        self.assertProblems(
            {"host": {"a b": {}, "c d": {}}},
            'host."a b": "a b" is not a valid domain name'
            " (Codepoint U+0020 at position 2 of 'a b' not allowed)",
            'host."c d": "c d" is not a valid domain name'
            " (Codepoint U+0020 at position 2 of 'c d' not allowed)",
        )

    def test_anonymousNotAllowed(self) -> None:
        """ANONYMOUS for a host but excluded by the allow-list is a contradiction."""
        self.assertProblems(
            {"auth": {"mechanisms": ["PLAIN"]}, "host": {"localhost": {"anonymous": True}}},
            "host.localhost.anonymous: true, but auth.mechanisms does not list ANONYMOUS",
        )

    def test_forHostDefaults(self) -> None:
        """A host without its own table gets the defaults and the [tls] certificate."""
        config = fromDict({"tls": {"certificate": "/c.pem", "key": "/k.pem"}})
        self.assertEqual(
            config.forHost("localhost"), HostConfig(certificate="/c.pem", key="/k.pem")
        )

    def test_forHostOverrides(self) -> None:
        """A host's own values win, and its certificate never pairs with the global key."""
        config = fromDict(
            {
                "hosts": ["localhost", "example.org"],
                "tls": {"certificate": "/c.pem", "key": "/k.pem"},
                "host": {
                    "example.org": {
                        "certificate": "/example.pem",
                        "registration": True,
                        "contact_addresses": {"admin-addresses": ["xmpp:admin@example.org"]},
                    }
                },
            }
        )
        self.assertEqual(
            config.forHost("example.org"),
            HostConfig(
                certificate="/example.pem",
                key="",
                registration=True,
                contact_addresses={"admin-addresses": ("xmpp:admin@example.org",)},
            ),
        )
        self.assertFalse(config.forHost("localhost").registration)

    def test_forHostUnknown(self) -> None:
        """Asking for a domain that is not served raises KeyError."""
        self.assertRaises(KeyError, Config().forHost, "example.org")


class ReportTests(ProblemTestsMixin, SynchronousTestCase):
    """All problems are reported together, one per line."""

    def test_manyProblems(self) -> None:
        """Problems in different sections and kinds come in one error."""
        self.assertProblems(
            {
                "hots": [],
                "log_level": "loud",
                "c2s": {"max_depth": 1, "require_tls": "yes"},
                "host": {"elsewhere.org": {}},
            },
            "hots: unknown key (did you mean hosts?)",
            'log_level: "loud" is not one of debug, info, warn, error',
            'c2s.require_tls: expected a boolean, got a string ("yes")',
            "c2s.max_depth: must be at least 8",
            'host."elsewhere.org": not listed in hosts',
        )

    def test_crossCheckSkippedAfterBadValue(self) -> None:
        """A rule spanning fields is not judged on a value that already failed."""
        self.assertProblems(
            {"hosts": ["a..b"], "host": {"a..b": {}}},
            'hosts[0]: "a..b" is not a valid domain name (Empty Label)',
            'host."a..b": "a..b" is not a valid domain name (Empty Label)',
        )

    def test_rulesNameRealFields(self) -> None:
        """Every cross-field rule declares fields that exist, or it could never be skipped."""
        for cls in sections(Config):
            names = {f.name for f in dataclasses.fields(cls)}
            for name, method in vars(cls).items():
                uses = set(getattr(method, "ruleUses", ()))
                self.assertEqual(uses - names, set(), f"{cls.__name__}.{name}")

    def test_str(self) -> None:
        """str() of the error is one problem per line."""
        error = ConfigError(["a: one", "b: two"])
        self.assertEqual(str(error), "a: one\nb: two")


class LoadTests(SynchronousTestCase):
    """Reading TOML files."""

    def write(self, text: str) -> str:
        """Write C{text} to a fresh file and return its path."""
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_file(self) -> None:
        """A TOML file loads into typed sections."""
        path = self.write('hosts = ["example.org"]\n[c2s]\nlisten = ["tcp:5222"]\n')
        config = load(path)
        self.assertEqual((config.hosts, config.c2s.listen), (("example.org",), ("tcp:5222",)))

    def test_notFound(self) -> None:
        """A missing file is one problem naming the file."""
        error = self.assertRaises(ConfigError, load, "/nonexistent.toml")
        self.assertEqual(error.problems, ["/nonexistent.toml: file not found"])

    def test_syntaxError(self) -> None:
        """A TOML syntax error names the file and the line."""
        path = self.write('hosts = ["a"]\nlog_level = \n')
        error = self.assertRaises(ConfigError, load, path)
        self.assertEqual(len(error.problems), 1)
        self.assertTrue(error.problems[0].startswith(f"{path}: "))
        self.assertIn("line 2", error.problems[0])

    def test_problemsInFile(self) -> None:
        """Problems in a file are reported with key paths and the file as source."""
        path = self.write("[c2s]\nmax_depth = 2\n")
        error = self.assertRaises(ConfigError, load, path)
        self.assertEqual(error.problems, ["c2s.max_depth: must be at least 8"])
        self.assertEqual(error.source, path)


class ExampleTests(SynchronousTestCase):
    """etc/jabberd.toml is a valid, complete example."""

    def test_validates(self) -> None:
        """The example loads as it ships."""
        self.assertEqual(load(EXAMPLE).hosts, ("localhost",))

    def test_commentedOptionsValidate(self) -> None:
        """With every commented option made active, the example is still valid."""
        with open(EXAMPLE, encoding="utf-8") as f:
            fromDict(tomllib.loads(uncommented(f.read())))

    def test_everyOption(self) -> None:
        """Every option of every section appears in the example, active or commented."""
        with open(EXAMPLE, encoding="utf-8") as f:
            data = tomllib.loads(uncommented(f.read()))
        self.assertEqual(list(missingOptions(Config, data)), [])


class DocsTests(SynchronousTestCase):
    """docs/configuration.md is generated and up to date."""

    def test_upToDate(self) -> None:
        """The committed docs equal the generated ones (regenerate with --markdown)."""
        with open(DOCS, encoding="utf-8") as f:
            committed = f.read()
        self.assertEqual(
            committed,
            markdown(),
            "run: python -m jabberd.config --markdown > docs/configuration.md",
        )

    def test_everyOptionDocumented(self) -> None:
        """Every option of every section carries a doc line and appears in the docs."""
        text = markdown()
        for cls in sections(Config):
            hints = get_type_hints(cls)
            for f in dataclasses.fields(cls):
                self.assertTrue(f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no doc")
                self.assertTrue(f.metadata["doc"] in text, f"{cls.__name__}.{f.name} not in docs")
                if not sectionOf(hints[f.name]):
                    row = f"| `{f.name}` |"
                    self.assertTrue(row in text, f"{cls.__name__}.{f.name} has no row")


class MainTests(SynchronousTestCase):
    """python -m jabberd.config."""

    def test_checkOK(self) -> None:
        """--check on a valid file prints ok and exits 0."""
        out = io.StringIO()
        self.assertEqual(main(["--check", EXAMPLE], out), 0)
        self.assertEqual(out.getvalue(), "ok\n")

    def test_checkProblems(self) -> None:
        """--check prints one problem per line and exits 1."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("log_level = 1\n[c2s]\nmax_depth = 2\n")
        out = io.StringIO()
        self.assertEqual(main(["--check", path], out), 1)
        self.assertEqual(
            out.getvalue(),
            "log_level: expected a string, got an integer (1); write it in quotes\n"
            "c2s.max_depth: must be at least 8\n",
        )

    def test_markdown(self) -> None:
        """--markdown prints the generated docs."""
        out = io.StringIO()
        self.assertEqual(main(["--markdown"], out), 0)
        self.assertEqual(out.getvalue(), markdown())

    def test_module(self) -> None:
        """The module runs as a script with python -m."""
        result = subprocess.run(
            [sys.executable, "-m", "jabberd.config", "--check", EXAMPLE],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual((result.returncode, result.stdout), (0, "ok\n"))
