"""
Typed configuration from one TOML file.

Each section is a frozen dataclass whose fields carry their default, their
check and a one-line doc together (see L{option}), so that validation, the
defaults and C{docs/configuration.md} all come from the same place and cannot
drift apart.  The loader is generic over nested dataclasses, tuples, dicts and
basic types: a new section is a new dataclass plus one field on L{Config}.
A rule that spans fields is a section method marked with L{rule}.

Every problem is collected before anything is reported, each one naming its
key path (C{c2s.stanza_size_limit: must be at least 10000}), so a user fixes a
file in one round instead of one error per restart.

Usage::

    python -m jabberd.config --check etc/jabberd.toml
    python -m jabberd.config --markdown > docs/configuration.md
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO, get_args, get_origin, get_type_hints

import idna

from jabberd.jid import prepDomain

__all__ = [
    "AuthConfig",
    "C2SConfig",
    "Check",
    "ComponentsConfig",
    "Config",
    "ConfigError",
    "HTTPConfig",
    "HostConfig",
    "LimitsConfig",
    "ModulesConfig",
    "S2SConfig",
    "TLSConfig",
    "VersionConfig",
    "defaultDataDir",
    "fromDict",
    "load",
    "main",
    "markdown",
    "option",
    "section",
]


class ConfigError(Exception):
    """
    Everything wrong with a configuration, reported at once.

    @ivar problems: one message per problem, each starting with its key path
        (or with the file name when the file itself is unusable).
    @ivar source: where the configuration came from (a path or C{"<config>"}).
    """

    def __init__(self, problems: list[str], source: str = "<config>") -> None:
        super().__init__(problems)
        self.problems = list(problems)
        self.source = source

    def __str__(self) -> str:
        return "\n".join(self.problems)


# -- checks -------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """
    A rule a value must follow, with the words the docs use for it.

    C{test} returns the value, possibly normalized (a lowercased domain, an
    absolute path), or raises C{ValueError} whose message follows the key
    path in the report.  Keeping the text beside the test means the generated
    docs state exactly the rule that is enforced.
    """

    text: str
    test: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        return self.test(value)


def _suggest(word: str, choices: list[str]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close or two are equally close."""
    scores = sorted(
        ((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in choices), reverse=True
    )
    if not scores or scores[0][0] < 0.6 or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return ""
    return f" (did you mean {scores[0][1]}?)"


def atLeast(minimum: float) -> Check:
    """Numbers below C{minimum} are errors."""

    def test(value: float) -> float:
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return Check(f"at least {minimum}", test)


def greaterThan(minimum: float) -> Check:
    """Numbers not above C{minimum} are errors."""

    def test(value: float) -> float:
        if not value > minimum:
            raise ValueError(f"must be greater than {minimum}")
        return value

    return Check(f"greater than {minimum}", test)


def oneOf(*choices: str) -> Check:
    """Strings outside C{choices} are errors, with the nearest as a hint."""
    listed = ", ".join(choices)

    def test(value: str) -> str:
        if value not in choices:
            hint = _suggest(value, list(choices))
            raise ValueError(f"{_show(value)} is not one of {listed}{hint}")
        return value

    return Check(f"one of {listed}", test)


def _domain(value: str) -> str:
    """
    Validate a domain with IDNA 2008 and normalize it as JIDs are.

    The result goes through the same C{prepDomain} as every JID the server
    parses, so a configured host compares equal to the domainpart of the
    stanzas addressed to it.
    """
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        try:
            idna.encode(value.rstrip("."), uts46=True)
        except idna.IDNAError as e:
            raise ValueError(f"{_show(value)} is not a valid domain name ({e})") from None
    try:
        return prepDomain(value)
    except (ValueError, UnicodeError) as e:
        raise ValueError(f"{_show(value)} is not a valid domain name ({e})") from None


domainName = Check("a domain name (IDNA; normalized to lowercase)", _domain)


def _hostList(value: tuple[str, ...]) -> tuple[str, ...]:
    """A server must serve something, and each domain once."""
    if not value:
        raise ValueError("must list at least one domain")
    twice = sorted({h for h in value if value.count(h) > 1})
    if twice:
        raise ValueError(f"{', '.join(map(_show, twice))} listed more than once")
    return value


hostList = Check("at least one, no duplicates", _hostList)


def _path(value: str) -> str:
    """
    Expand C{~} and make a path absolute now, before twistd may change the
    working directory; C{""} keeps meaning "not set".
    """
    return os.path.abspath(os.path.expanduser(value)) if value else value


filePath = Check("a file system path; ~ is expanded, relative paths are made absolute", _path)


def _endpoint(value: str) -> str:
    """Catch the usual slip (a bare port number) before the reactor does."""
    if not re.match(r"[A-Za-z][A-Za-z0-9_+.-]*:\S", value):
        raise ValueError(f'{_show(value)} is not a Twisted endpoint string such as "tcp:5222"')
    return value


endpointString = Check("a Twisted server endpoint string", _endpoint)


def _databaseURL(value: str) -> str:
    """The store speaks SQLite and PostgreSQL only."""
    if value and not re.match(r"(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError(
            f"{_show(value)} is not a SQLAlchemy URL for sqlite:// or postgresql://"
        )
    return value


sqlalchemyURL = Check('"", sqlite://... or postgresql://...', _databaseURL)


def _cipherString(value: str) -> str:
    """Ask OpenSSL itself, so a typo fails at --check rather than at the first TLS handshake."""
    if not value:
        return value
    from OpenSSL import SSL

    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(value.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise ValueError(f"OpenSSL matches no cipher in {_show(value)}") from None
    return value


cipherString = Check("an OpenSSL cipher string", _cipherString)


def _uri(value: str) -> str:
    """XEP-0157 addresses are URIs (mailto:, xmpp:, https:), not bare addresses."""
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:\S", value):
        raise ValueError(f"{_show(value)} is not a URI such as mailto:admin@example.org")
    return value


uri = Check("a URI (mailto:, xmpp:, https:)", _uri)


# -- declaring options --------------------------------------------------------


def option(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    check: Check | None = None,
    *,
    each: Check | None = None,
    keys: Check | None = None,
    factory: Callable[[], Any] | None = None,
    shown: str | None = None,
) -> Any:
    """
    Declare one option: its default, its doc line and its checks together.

    @param check: applied to the whole value after its type is checked.
    @param each: applied to every scalar inside a list or table, so that a
        problem names the exact item (C{auth.mechanisms[1]}).
    @param keys: applied to every key of a table (and may normalize it).
    @param factory: builds the default when it is mutable or computed.
    @param shown: how the docs show a computed default.
    """
    metadata = {"doc": doc, "check": check, "each": each, "keys": keys, "shown": shown}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _summary(cls: type) -> str:
    """The first paragraph of a class docstring, on one line."""
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


Problems = Iterator[tuple[tuple[str, ...], str]]


def rule(*uses: str) -> Callable[[Callable[[Any], Problems]], Callable[[Any], Problems]]:
    """
    Mark a section method as a rule spanning the fields C{uses}.

    The method yields (key path parts, message).  It runs only when every
    field it uses was valid, so it never reports a mere consequence of a
    problem already reported, and an unrelated failure does not hide it.
    """

    def mark(method: Callable[[Any], Problems]) -> Callable[[Any], Problems]:
        method.ruleUses = uses  # type: ignore[attr-defined]
        return method

    return mark


def section(cls: type) -> Any:
    """A nested section: a table whose defaults are the class's own."""
    return dataclasses.field(default_factory=cls, metadata={"doc": _summary(cls)})


def defaultDataDir(environ: Mapping[str, str] | None = None) -> str:
    """
    Where state lives when the config does not say: C{$JABBERD_DATA_DIR},
    else the XDG data directory when C{$HOME} is writable, else C{./data}.

    Computed at load time, not import time, so the environment of the
    process that starts the server decides.
    """
    environ = os.environ if environ is None else environ
    if environ.get("JABBERD_DATA_DIR"):
        return _path(environ["JABBERD_DATA_DIR"])
    home = environ.get("HOME", "")
    if home and os.path.isdir(home) and os.access(home, os.W_OK):
        xdg = environ.get("XDG_DATA_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(home, ".local", "share")
        return os.path.join(base, "jabberd")
    return os.path.abspath("data")


# -- the sections -------------------------------------------------------------

MECHANISMS = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
    "EXTERNAL",
    "ANONYMOUS",
)

CONTACT_ADDRESS_FIELDS = (
    "abuse-addresses",
    "admin-addresses",
    "feedback-addresses",
    "sales-addresses",
    "security-addresses",
    "status-addresses",
    "support-addresses",
)


@dataclass(frozen=True)
class C2SConfig:
    """Client connections (RFC 6120): where to listen and the limits every stream gets."""

    listen: tuple[str, ...] = option(
        ("tcp:5222",), "Endpoints for client streams; STARTTLS is offered.", each=endpointString
    )
    listen_tls: tuple[str, ...] = option(
        ("tcp:5223",), "Endpoints for direct TLS client streams (XEP-0368).", each=endpointString
    )
    require_tls: bool = option(True, "Refuse to authenticate a client before TLS is on.")
    stanza_size_limit: int = option(
        262144, "Largest stanza a client may send, in bytes.", atLeast(10000)
    )
    auth_timeout: float = option(
        30.0, "Seconds a client has to authenticate before connection-timeout.", greaterThan(0)
    )
    idle_timeout: float = option(
        0.0,
        "Seconds without traffic after authentication before closing; 0 = never"
        " (whitespace pings keep a stream alive).",
        atLeast(0),
    )
    max_depth: int = option(64, "Deepest XML nesting a client may send.", atLeast(8))
    max_connections_per_address: int = option(
        100,
        "Open client connections (TCP, direct TLS) from one IP address; more get"
        " policy-violation right after our stream header.  0 = no limit.",
        atLeast(0),
    )
    max_connections: int = option(
        0,
        "Open client connections (TCP, direct TLS) in all; more get resource-constraint"
        " right after our stream header.  Keep it below the process's open-file limit."
        "  0 = no limit.",
        atLeast(0),
    )
    max_bytes_per_second: int = option(
        102400,
        "Average bytes per second one client stream may send; faster senders are not"
        " cut off, their socket is simply read more slowly.  0 = no limit.",
        atLeast(0),
    )
    burst_bytes: int = option(
        262144, "Bytes a client stream may send at once above max_bytes_per_second.", atLeast(1)
    )
    compression: tuple[str, ...] = option(
        (),
        "Endpoints, each one of listen or listen_tls, that offer zlib stream compression"
        " (XEP-0138) after authentication; [] = none.  Risky: compression under TLS leaks"
        " secrets through sizes (CRIME-style, XEP-0138 is obsolete for it), so enable it"
        " only for clients on slow links that need it.",
        each=endpointString,
    )

    @rule("compression", "listen", "listen_tls")
    def _compressionOnListeners(self) -> Problems:
        """Compression is a property of a listener: it must name one."""
        for endpoint in self.compression:
            if endpoint not in self.listen and endpoint not in self.listen_tls:
                yield ("compression",), f"{_show(endpoint)} is not one of listen or listen_tls"


@dataclass(frozen=True)
class TLSConfig:
    """TLS for every listener; with no certificate, one is generated so a bare start works."""

    certificate: str = option(
        "",
        'PEM certificate chain; "" = self-signed, generated in {data_dir}/certs/{host}.pem'
        " on first start.",
        filePath,
    )
    key: str = option("", 'PEM private key; "" = the key is in the certificate file.', filePath)
    min_version: str = option("1.2", "Oldest TLS version accepted.", oneOf("1.2", "1.3"))
    ciphers: str = option(
        "", 'OpenSSL cipher string for TLS 1.2; "" = a secure default.', cipherString
    )

    @rule("key", "certificate")
    def _keyNeedsCertificate(self) -> Problems:
        """A key alone cannot be used: it needs the certificate it belongs to."""
        if self.key and not self.certificate:
            yield ("key",), "set without certificate"


@dataclass(frozen=True)
class AuthConfig:
    """SASL authentication (RFC 6120 section 6)."""

    scram_iterations: int = option(
        4096, "PBKDF2 iterations for newly stored SCRAM credentials.", atLeast(4096)
    )
    mechanisms: tuple[str, ...] = option(
        (), "SASL mechanisms allowed; [] = all available.", each=oneOf(*MECHANISMS)
    )
    max_attempts: int = option(
        3, "Failed SASL attempts before the stream is closed.", atLeast(1)
    )
    throttle_delay: float = option(
        0.5,
        "Seconds the second failed SASL attempt from one address or on one account waits"
        " before its answer; each further one waits twice as long.  0 = no throttle.",
        atLeast(0),
    )
    throttle_max_delay: float = option(
        30.0, "Longest wait before answering a failed SASL attempt, in seconds.", atLeast(0)
    )
    external: bool = option(
        False, "Offer EXTERNAL (XEP-0178) when the client presents a certificate."
    )
    client_ca: str = option(
        "", "PEM CA bundle that client certificates for EXTERNAL must chain to.", filePath
    )

    def allows(self, mechanism: str) -> bool:
        """Whether the allow-list lets C{mechanism} be offered."""
        return not self.mechanisms or mechanism in self.mechanisms

    @rule("external", "client_ca")
    def _externalNeedsCA(self) -> Problems:
        """EXTERNAL without a CA of our own would accept any publicly issued certificate."""
        if self.external and not self.client_ca:
            yield ("client_ca",), "required when external is true"

    @rule("external", "mechanisms")
    def _externalAllowed(self) -> Problems:
        """Offering what the allow-list forbids is a contradiction, not a choice."""
        if self.external and not self.allows("EXTERNAL"):
            yield ("external",), "true, but mechanisms does not list EXTERNAL"


@dataclass(frozen=True)
class LimitsConfig:
    """Per-account storage quotas, so one account cannot fill the disk."""

    max_offline_messages: int = option(
        1000, "Messages kept for an offline account; more are bounced.", atLeast(1)
    )
    max_roster_size: int = option(1000, "Contacts in one roster.", atLeast(1))
    max_vcard_size: int = option(65536, "Bytes of one vCard (XEP-0054).", atLeast(1))
    max_private_size: int = option(
        65536, "Bytes of private XML storage (XEP-0049) per account.", atLeast(1)
    )
    max_privacy_lists: int = option(
        50, "Privacy lists (XEP-0016) one account may keep; the blocklist (XEP-0191) is one of them.", atLeast(1)
    )
    max_privacy_items: int = option(
        1000, "Items in one privacy list, and so JIDs in the blocklist (XEP-0191).", atLeast(1)
    )
    max_pep_nodes: int = option(
        100, "Personal eventing (XEP-0163) nodes one account may have.", atLeast(1)
    )
    max_pep_items: int = option(
        256,
        "Items one PEP node keeps; a node's pubsub#max_items may not exceed it, and \"max\" means it.",
        atLeast(1),
    )
    max_pep_payload_size: int = option(
        131072, "Bytes of one PEP item's payload (avatars are the largest).", atLeast(1)
    )


@dataclass(frozen=True)
class ModulesConfig:
    """Which server modules run; names are checked by the module loader, which knows them."""

    enabled: tuple[str, ...] = option((), "Modules to run; [] = every module found.")
    disabled: tuple[str, ...] = option((), "Modules not to run, even if found or enabled.")

    @rule("enabled", "disabled")
    def _notBoth(self) -> Problems:
        """A module both enabled and disabled is a contradiction, not a choice."""
        for name in self.disabled:
            if name in self.enabled:
                yield ("disabled",), f"{_show(name)} is also in enabled"


@dataclass(frozen=True)
class VersionConfig:
    """What the server tells about its software (XEP-0092 software version)."""

    hide_os: bool = option(
        False, "Leave the operating system (name and release) out of software version replies."
    )


def _urlPath(value: str) -> str:
    """An absolute URL path, or "" for "not served"."""
    if value and (not value.startswith("/") or value == "/" or re.search(r"[\s?#]", value)):
        raise ValueError(f'{_show(value)} is not a URL path such as "/http-bind" (or "" for none)')
    return value.rstrip("/")


urlPath = Check('a URL path starting with "/", or "" = not served', _urlPath)


def _baseURL(value: str) -> str:
    """An http(s) URL without a path, query or fragment, or ""."""
    if value and not re.fullmatch(r"https?://[^/\s?#]+/?", value):
        raise ValueError(f'{_show(value)} is not a base URL such as "https://chat.example.org"')
    return value.rstrip("/")


baseURL = Check('"", or http(s)://host[:port] without a path', _baseURL)


def _ipAddress(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IP address") from None


ipAddress = Check("an IPv4 or IPv6 address", _ipAddress)


@dataclass(frozen=True)
class HTTPConfig:
    """
    Web clients: BOSH (XEP-0124/0206) and WebSocket (RFC 7395) on one HTTP
    listener, announced by XEP-0156 host-meta.  Plain HTTP is for a reverse
    proxy that terminates TLS, or local development.
    """

    listen: tuple[str, ...] = option(
        ("tcp:5280",),
        "Endpoints for plain HTTP (behind a TLS reverse proxy, or local development).",
        each=endpointString,
    )
    listen_tls: tuple[str, ...] = option(
        ("tcp:5281",), "Endpoints for HTTPS, with each host's certificate.", each=endpointString
    )
    bosh_path: str = option("/http-bind", "URL path of the BOSH endpoint.", urlPath)
    websocket_path: str = option("/xmpp-websocket", "URL path of the WebSocket endpoint.", urlPath)
    public_url: str = option(
        "",
        "Base URL announced in /.well-known/host-meta (e.g. \"https://chat.example.org\");"
        " \"\" = the scheme and Host header of each request.",
        baseURL,
    )
    secure_url: str = option(
        "",
        "Base https URL plain-HTTP clients are sent to (BOSH and WebSocket see-other-uri);"
        " \"\" = serve plain HTTP.",
        baseURL,
    )
    cors_origins: tuple[str, ...] = option(
        ("*",),
        "Web page origins allowed to use BOSH and WebSocket (CORS, WebSocket Origin);"
        " [\"*\"] = any, [] = none but clients that send no Origin.",
    )
    trusted_proxies: tuple[str, ...] = option(
        (),
        "Reverse proxies whose X-Forwarded-Proto: https marks a request as secure and"
        " whose X-Forwarded-For names the client's address (per-address limits, SASL throttle).",
        each=ipAddress,
    )
    max_sessions_per_address: int = option(
        100,
        "BOSH sessions and WebSocket connections one client address may hold at once;"
        " more get policy-violation (BOSH) or HTTP 429 (WebSocket).  0 = no limit.",
        atLeast(0),
    )
    max_bytes_per_second: int = option(
        102400,
        "Average bytes per second one BOSH session or WebSocket may send; faster senders"
        " are not cut off, their requests or frames are simply processed later.  0 = no limit.",
        atLeast(0),
    )
    burst_bytes: int = option(
        262144, "Bytes a web session may send at once above max_bytes_per_second.", atLeast(1)
    )
    max_body_size: int = option(
        524288, "Largest HTTP request body, in bytes; more gets 413 and a closed connection.", atLeast(10000)
    )
    bosh_max_wait: int = option(
        60, "Longest a BOSH request is held waiting for data, in seconds (caps the client's wait).", atLeast(1)
    )
    bosh_max_hold: int = option(
        1, "Most BOSH requests held at once per session (caps the client's hold).", atLeast(1)
    )
    bosh_requests: int = option(
        2, "Simultaneous requests a BOSH client may make: the rid window.", atLeast(2)
    )
    bosh_inactivity: int = option(
        60,
        "Seconds a BOSH session may go without a request before it ends"
        " (the client's session ends with unavailable presence).",
        atLeast(1),
    )
    bosh_max_pause: int = option(
        300, "Longest pause a BOSH client may ask for, in seconds; 0 = no pausing.", atLeast(0)
    )
    bosh_polling: int = option(
        2, "Shortest interval between empty BOSH requests of a polling client, in seconds.", atLeast(0)
    )
    websocket_max_message_size: int = option(
        1048576,
        "Largest WebSocket message, in bytes; a larger one closes the connection (status 1009)."
        " Stanzas over c2s.stanza_size_limit get policy-violation before that.",
        atLeast(10000),
    )
    websocket_ping_interval: float = option(
        30.0,
        "Seconds between WebSocket pings; no pong within as long closes the connection;"
        " 0 = no pings.",
        atLeast(0),
    )

    @rule("bosh_requests", "bosh_max_hold")
    def _windowAboveHold(self) -> Problems:
        """XEP-0124: 'requests' must be larger than 'hold'."""
        if self.bosh_requests <= self.bosh_max_hold:
            yield ("bosh_requests",), "must be more than bosh_max_hold"

    @rule("bosh_path", "websocket_path")
    def _distinctPaths(self) -> Problems:
        """One path cannot serve both protocols."""
        if self.bosh_path and self.bosh_path == self.websocket_path:
            yield ("websocket_path",), "same as bosh_path"


def _hostPort(value: str) -> str:
    """C{host:port} (C{[v6]:port} for IPv6 literals), the port 1-65535."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):([0-9]{1,5})", value)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f'{_show(value)} is not "host:port" such as "xmpp.example.net:5269"')
    return value


hostPort = Check('"host:port" ("[v6 address]:port" for IPv6)', _hostPort)


@dataclass(frozen=True)
class S2SConfig:
    """
    Federation (RFC 6120 server-to-server): STARTTLS, certificates (RFC 6125,
    SASL EXTERNAL per XEP-0178), server dialback (XEP-0220) and the outgoing
    queue.  Peers are found with DNS SRV (XEP-0368 too) unless routes says.
    """

    enabled: bool = option(
        True,
        "Federate with other servers; false = no s2s listener, and stanzas for other domains"
        " bounce with remote-server-not-found.",
    )
    listen: tuple[str, ...] = option(
        ("tcp:5269",), "Endpoints for server streams; STARTTLS is offered.", each=endpointString
    )
    listen_tls: tuple[str, ...] = option(
        (), "Endpoints for direct TLS server streams (XEP-0368), e.g. \"tcp:5270\".", each=endpointString
    )
    require_tls: bool = option(True, "Refuse to exchange anything with a peer before TLS is on, both ways.")
    require_certificate: bool = option(
        False,
        "Refuse peers whose certificate does not authenticate them (no dialback-only peers),"
        " both ways.",
    )
    trust: str = option(
        "",
        'PEM CA bundle that peer certificates must chain to; "" = OpenSSL\'s default'
        " CA store (the system's).",
        filePath,
    )
    routes: dict[str, str] = option(
        factory=dict,
        doc="Static routes that bypass DNS, domain to \"host:port\""
        ' (e.g. {"example.net" = "10.0.0.5:5269"}).',
        keys=domainName,
        each=hostPort,
    )
    dialback: bool = option(
        True, "Use and accept server dialback (XEP-0220) for peers not authenticated by certificate."
    )
    dialback_secret: str = option(
        "", 'Secret for dialback keys (XEP-0185); "" = a random one at each start.'
    )
    queue_max_stanzas: int = option(
        1000,
        "Stanzas held per remote domain while its connection is being set up; more are bounced.",
        atLeast(1),
    )
    queue_max_age: float = option(
        60.0,
        "Seconds a stanza may wait for a connection before it is bounced with remote-server-timeout.",
        greaterThan(0),
    )
    connect_timeout: float = option(
        15.0, "Seconds to wait for each TCP connection attempt.", greaterThan(0)
    )
    auth_timeout: float = option(
        60.0, "Seconds an incoming stream may take to authenticate before connection-timeout.", greaterThan(0)
    )
    idle_timeout: float = option(
        600.0, "Seconds without stanzas before a server stream is closed; 0 = never.", atLeast(0)
    )
    stanza_size_limit: int = option(
        524288, "Largest stanza a peer server may send, in bytes.", atLeast(10000)
    )
    send_timeout: float = option(
        30.0,
        "Seconds a peer may leave our output unread (the connection's write buffer full) before"
        " the link is closed and the stanzas waiting for it bounce with remote-server-timeout.",
        greaterThan(0),
    )
    negative_cache_time: float = option(
        60.0,
        "Seconds after a domain could not be reached during which stanzas for it bounce at once"
        " (same error) instead of starting a new connection attempt; 0 = off.",
        atLeast(0),
    )
    max_connections_per_address: int = option(
        100,
        "Open incoming server connections (STARTTLS and direct TLS) from one IP address; more"
        " get policy-violation right after our stream header.  0 = no limit.",
        atLeast(0),
    )
    multiplex_targets: bool = option(
        True,
        "Carry stanzas to another domain of the same peer server (same address and port) on the"
        " stream already open to it, added with its own dialback request (XEP-0220 target"
        " multiplexing), when the peer announces dialback errors; false = one connection per"
        " remote domain.",
    )


def _secret(value: str) -> str:
    """A shared secret that is empty protects nothing."""
    if not value:
        raise ValueError("must not be empty")
    return value


secretString = Check("not empty", _secret)


@dataclass(frozen=True)
class ComponentsConfig:
    """External components (XEP-0114): where they connect, and the shared secret of each component domain."""

    listen: tuple[str, ...] = option(
        ("tcp:5347:interface=127.0.0.1",),
        "Endpoints for component streams (jabber:component:accept); loopback only by default.",
        each=endpointString,
    )
    secrets: dict[str, str] = option(
        factory=dict,
        doc='Shared secret per component domain, e.g. {"muc.example.org" = "..."};'
        " a component whose domain is not listed is refused.",
        keys=domainName,
        each=secretString,
    )
    stanza_size_limit: int = option(
        1048576, "Largest stanza a component may send, in bytes.", atLeast(10000)
    )
    handshake_timeout: float = option(
        30.0, "Seconds a component has to complete its handshake.", greaterThan(0)
    )


MUC_ROLES = ("moderator", "participant", "visitor")


def _label(value: str) -> str:
    """One DNS label: what goes in front of each host to name its MUC service."""
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ValueError(f"{_show(value)} is not a single lowercase DNS label such as \"conference\"")
    return value


dnsLabel = Check("one lowercase DNS label", _label)


def _bareJID(value: str) -> str:
    """A bare JID (or a domain), normalized as the JIDs the MUC compares it with."""
    from jabberd import jid as J

    try:
        j = J.parse(value)
    except J.InvalidJID as e:
        raise ValueError(f"{_show(value)} is not a JID ({e})") from None
    if j.resource is not None:
        raise ValueError(f"{_show(value)} is a full JID; give the bare JID")
    return j.userhost()


bareJID = Check("a bare JID or a domain", _bareJID)


@dataclass(frozen=True)
class RoomDefaultsConfig:
    """The configuration a new room starts with (the defaults of the muc#roomconfig form its owner sees)."""

    name: str = option("", 'Natural-language room name; "" = the room\'s address.')
    description: str = option("", "Short description of the room.")
    language: str = option("", 'Language of the discussions (xml:lang, e.g. "en"); "" = unspecified.')
    persistent: bool = option(False, "Keep the room when the last occupant leaves.")
    public: bool = option(True, "List the room in the service's disco#items (searchable).")
    members_only: bool = option(False, "Only members (and admins, owners) may enter.")
    moderated: bool = option(False, "Only occupants with voice may speak; newcomers are visitors.")
    max_users: int = option(100, "Occupants the room admits; 0 = up to the service's max_occupants.", atLeast(0))
    whois: str = option(
        "moderators",
        'Who sees occupants\' real JIDs: "moderators" (semi-anonymous) or "anyone" (non-anonymous).',
        oneOf("moderators", "anyone"),
    )
    allow_invites: bool = option(
        False, "Let members (not only admins) invite others to a members-only room."
    )
    change_subject: bool = option(False, "Let participants (not only moderators) change the subject.")
    history_length: int = option(20, "Messages of history sent to newcomers (muc#maxhistoryfetch).", atLeast(0))
    presence_broadcast: tuple[str, ...] = option(
        MUC_ROLES, "Roles whose presence is broadcast to the room.", each=oneOf(*MUC_ROLES)
    )
    allow_pm: str = option(
        "anyone",
        "Who may send private messages: anyone, participants, moderators or none.",
        oneOf("anyone", "participants", "moderators", "none"),
    )
    get_member_list: tuple[str, ...] = option(
        MUC_ROLES,
        "Roles that may retrieve the member list (admins and owners always may).",
        each=oneOf(*MUC_ROLES),
    )
    enable_logging: bool = option(
        False, "Mark the room as logged (status code 170 on entry; no public archive is kept)."
    )


@dataclass(frozen=True)
class MucServiceConfig:
    """A multi-user chat service (XEP-0045): its name, limits and the defaults of new rooms."""

    name: str = option("Chatrooms", "Name of the service in service discovery.")
    admins: tuple[str, ...] = option(
        (), "Bare JIDs that are owners of every room (service administrators).", each=bareJID
    )
    room_creators: tuple[str, ...] = option(
        (),
        "Bare JIDs or domains allowed to create rooms; [] = anyone.",
        each=bareJID,
    )
    max_rooms: int = option(10000, "Rooms the service holds, temporary and persistent.", atLeast(1))
    max_rooms_per_user: int = option(100, "Rooms one account may own.", atLeast(1))
    max_occupants: int = option(1000, "Occupants in one room, whatever its max_users.", atLeast(1))
    max_history: int = option(
        100, "Most history messages a room keeps; caps history_length.", atLeast(0)
    )
    message_rate: float = option(
        5.0, "Messages per second one occupant may send to a room, sustained.", greaterThan(0)
    )
    message_burst: int = option(
        10, "Messages one occupant may send at once before message_rate applies.", atLeast(1)
    )
    room_defaults: RoomDefaultsConfig = section(RoomDefaultsConfig)


@dataclass(frozen=True)
class MucConfig(MucServiceConfig):
    """Multi-user chat (XEP-0045), run inside the server as <subdomain>.<host> for each host."""

    enabled: bool = option(
        True,
        "Run the MUC service in-process for each host; false when it runs as an external"
        " component (twistd -n jabberd-muc).",
    )
    subdomain: str = option(
        "conference", "First label of the service's domain: subdomain.host for each host.", dnsLabel
    )


@dataclass(frozen=True)
class HostConfig:
    """Settings of one served domain, like Prosody's VirtualHost."""

    certificate: str = option("", 'PEM certificate for this host; "" = the [tls] one.', filePath)
    key: str = option(
        "", 'PEM private key for this host; "" = the key is in the certificate file.', filePath
    )
    registration: bool = option(False, "Allow in-band account registration (XEP-0077).")
    anonymous: bool = option(False, "Allow SASL ANONYMOUS logins to this host.")
    contact_addresses: dict[str, tuple[str, ...]] = option(
        factory=dict,
        doc="Contact addresses published in service discovery (XEP-0157),"
        ' e.g. {abuse-addresses = ["mailto:abuse@example.org"]}.',
        keys=oneOf(*CONTACT_ADDRESS_FIELDS),
        each=uri,
    )

    @rule("key", "certificate")
    def _keyNeedsCertificate(self) -> Problems:
        """A key alone cannot be used: it needs the certificate it belongs to."""
        if self.key and not self.certificate:
            yield ("key",), "set without certificate"


@dataclass(frozen=True)
class Config:
    """The whole configuration of one jabberd process."""

    hosts: tuple[str, ...] = option(
        ("localhost",), "Domains this server serves.", hostList, each=domainName
    )
    data_dir: str = option(
        factory=defaultDataDir,
        doc="Directory for the SQLite store and generated certificates.",
        check=filePath,
        shown="$JABBERD_DATA_DIR, else ~/.local/share/jabberd if $HOME is writable, else ./data",
    )
    database: str = option(
        "",
        'SQLAlchemy URL of the store; "" = SQLite file {data_dir}/jabberd.sqlite.',
        sqlalchemyURL,
    )
    log_level: str = option(
        "info", "Least severe log messages written.", oneOf("debug", "info", "warn", "error")
    )
    c2s: C2SConfig = section(C2SConfig)
    s2s: S2SConfig = section(S2SConfig)
    tls: TLSConfig = section(TLSConfig)
    auth: AuthConfig = section(AuthConfig)
    limits: LimitsConfig = section(LimitsConfig)
    modules: ModulesConfig = section(ModulesConfig)
    version: VersionConfig = section(VersionConfig)
    http: HTTPConfig = section(HTTPConfig)
    components: ComponentsConfig = section(ComponentsConfig)
    muc: MucConfig = section(MucConfig)
    host: dict[str, HostConfig] = option(
        factory=dict,
        doc="Per-host overrides, one table per domain listed in hosts.",
        keys=domainName,
    )

    @rule("hosts", "host")
    def _hostServed(self) -> Problems:
        """Overrides for a domain not served are a typo or a leftover; either way, say so."""
        for name in self.host:
            if name not in self.hosts:
                hint = _suggest(name, list(self.hosts))
                yield ("host", name), f"not listed in hosts{hint}"

    @rule("host", "auth")
    def _anonymousAllowed(self) -> Problems:
        """Offering what the allow-list forbids is a contradiction, not a choice."""
        for name, host in self.host.items():
            if host.anonymous and not self.auth.allows("ANONYMOUS"):
                message = "true, but auth.mechanisms does not list ANONYMOUS"
                yield ("host", name, "anonymous"), message

    @rule("hosts", "components", "muc")
    def _componentDomains(self) -> Problems:
        """A component domain cannot also be a served host or the in-process MUC service."""
        muc = set(self.mucDomains())
        for name in self.components.secrets:
            if name in self.hosts:
                yield ("components", "secrets", name), "is also listed in hosts"
            elif name in muc:
                yield (
                    ("components", "secrets", name),
                    "is also the in-process MUC service; set muc.enabled = false to run it as a component",
                )

    def mucDomains(self) -> list[str]:
        """The domains of the in-process MUC services: <subdomain>.<host> per host, if enabled."""
        if not self.muc.enabled:
            return []
        return [f"{self.muc.subdomain}.{host}" for host in self.hosts]

    def databaseURL(self) -> str:
        """The store's SQLAlchemy URL, with the zero-config SQLite file filled in."""
        if self.database:
            return self.database
        return "sqlite:///" + os.path.join(self.data_dir, "jabberd.sqlite")

    def forHost(self, host: str) -> HostConfig:
        """
        The effective settings of a served domain: its [host."..."] table, or
        the defaults, with the [tls] certificate when it names none.

        Certificate and key travel as a pair, so a host's own certificate is
        never combined with the global key.

        @raise KeyError: C{host} is not served.
        """
        if host not in self.hosts:
            raise KeyError(host)
        settings = self.host.get(host, HostConfig())
        if not settings.certificate:
            settings = dataclasses.replace(
                settings, certificate=self.tls.certificate, key=self.tls.key
            )
        return settings


# -- loading ------------------------------------------------------------------

_BAD = object()  # marks a value that failed; its problem is already recorded


def load(path: str | None, cls: type = Config) -> Any:
    """
    Read and validate a TOML file; C{None} means no file, i.e. all defaults.

    @param cls: the top-level class; another process (a component) passes
        its own, built from the same sections.
    @raise ConfigError: with every problem found.
    """
    if path is None:
        return fromDict({}, cls=cls)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"], path) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"], path) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"], path) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: {e}"], path) from None
    return fromDict(data, path, cls)


def fromDict(data: Mapping[str, Any], source: str = "<config>", cls: type = Config) -> Any:
    """
    Validate parsed TOML (or an equivalent dict) into a L{Config} (or C{cls}).

    @param source: where C{data} came from, kept on the error as C{source}.
    @raise ConfigError: with every problem found.
    """
    problems: list[str] = []
    config = _convert(data, cls, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return config


def _convert(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    """Type-check C{value} against the annotation C{hint}; TOML arrays become tuples."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            return _wrongType(value, hint, where, problems)
        return _section(value, hint, where, problems)
    origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _wrongType(value, hint, where, problems)
        itemHint = get_args(hint)[0]
        items = [_convert(v, itemHint, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return _BAD if _BAD in items else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            return _wrongType(value, hint, where, problems)
        valueHint = get_args(hint)[1]
        table = {k: _convert(v, valueHint, _join(where, k), problems) for k, v in value.items()}
        return _BAD if _BAD in table.values() else table
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            problems.append(f"{where}: must be a finite number")
            return _BAD
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"{where}: options of type {hint!r} are not supported")
    return value if ok else _wrongType(value, hint, where, problems)


def _section(data: Mapping[str, Any], cls: type, where: str, problems: list[str]) -> Any:
    """
    Build one section, recording unknown keys and bad values.

    A failed field takes its default so that the rest of the section, and
    its cross-field checks, can still be judged in the same report.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for key in data:
        if key not in fields:
            problems.append(f"{_join(where, key)}: unknown key{_suggest(str(key), list(fields))}")
    values = {}
    for name, f in fields.items():
        if name in data:
            value = _convert(data[name], hints[name], _join(where, name), problems)
            if value is not _BAD:
                value = _checked(value, f.metadata, _join(where, name), problems)
            if value is not _BAD:
                values[name] = value
    instance = cls(**values)
    failed = (fields.keys() & data.keys()) - values.keys()
    for method in vars(cls).values():
        uses = getattr(method, "ruleUses", None)
        if uses is not None and not failed & set(uses):
            for parts, message in method(instance):
                problems.append(f"{_join(where, *parts)}: {message}")
    return instance


def _checked(value: Any, metadata: Mapping[str, Any], where: str, problems: list[str]) -> Any:
    """Apply an option's C{keys}, C{each} and C{check} rules, in that order."""
    badKey = False
    if metadata.get("keys") and isinstance(value, dict):
        table = {}
        for key, item in value.items():
            newKey = _apply(metadata["keys"], key, _join(where, key), problems)
            if newKey in table:
                problems.append(f"{_join(where, key)}: same as {_show(newKey)} once normalized")
            if newKey is _BAD or newKey in table:
                badKey = True
            else:
                table[newKey] = item
        value = table
    if metadata.get("each"):
        value = _eachLeaf(metadata["each"], value, where, problems)
    if metadata.get("check") and value is not _BAD and not badKey:
        value = _apply(metadata["check"], value, where, problems)
    return _BAD if badKey else value


def _eachLeaf(check: Check, value: Any, where: str, problems: list[str]) -> Any:
    """Apply C{check} to every scalar within nested lists and tables."""
    if isinstance(value, tuple):
        items = [_eachLeaf(check, v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return _BAD if _BAD in items else tuple(items)
    if isinstance(value, dict):
        table = {k: _eachLeaf(check, v, _join(where, k), problems) for k, v in value.items()}
        return _BAD if _BAD in table.values() else table
    return _apply(check, value, where, problems)


def _apply(check: Check, value: Any, where: str, problems: list[str]) -> Any:
    """Run one check, turning its ValueError into a recorded problem."""
    try:
        return check(value)
    except ValueError as e:
        problems.append(f"{where}: {e}")
        return _BAD


def _wrongType(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    """Record a type error naming what was expected and what was found."""
    expected = _typeName(hint)
    article = "an" if expected[0] in "aeiou" else "a"
    found = _tomlTypeName(value)
    shown = f" ({_show(value)})" if isinstance(value, (str, int, float)) else ""
    if hint is str and isinstance(value, (int, float)):
        shown += "; write it in quotes"
    problems.append(f"{where}: expected {article} {expected}, got {found}{shown}")
    return _BAD


# -- naming things the way TOML does ------------------------------------------


def _join(where: str, *keys: Any) -> str:
    """Extend a key path, quoting keys TOML would quote: C{host."example.org"}."""
    for key in keys:
        key = str(key)
        part = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)
        where = f"{where}.{part}" if where else part
    return where


def _show(value: Any) -> str:
    """A value as it would be written in TOML, shortened for messages."""
    text = _toml(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _toml(value: Any) -> str:
    """Render a default in TOML syntax (for the docs and messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_join('', k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _typeName(hint: Any, plural: bool = False) -> str:
    """The TOML name of the type an annotation expects."""
    s = "s" if plural else ""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return f"table{s}"
    if origin is tuple:
        return f"array{s} of {_typeName(get_args(hint)[0], plural=True)}"
    if origin is dict:
        return f"table{s} of {_typeName(get_args(hint)[1], plural=True)}"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names[hint] + s


def _tomlTypeName(value: Any) -> str:
    """The TOML name of a parsed value's type, with its article."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


# -- documentation ------------------------------------------------------------


def _walk(
    cls: type, where: str, intro: str
) -> Iterator[tuple[str, str, dict[str, Any], list[dataclasses.Field[Any]]]]:
    """
    Yield (section path, intro, type hints, option fields) for C{cls} and
    every section nested in it; a table of sections shows its key as
    C{"<name>"}.
    """
    hints = get_type_hints(cls)
    own = []
    nested = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            nested.append((_join(where, f.name), hint, f.metadata["doc"]))
        elif get_origin(hint) is dict and dataclasses.is_dataclass(get_args(hint)[1]):
            inner = get_args(hint)[1]
            text = f"{f.metadata['doc']} {_summary(inner)}"
            nested.append((f'{_join(where, f.name)}."<name>"', inner, text))
        else:
            own.append(f)
    yield where, intro, hints, own
    for subpath, subclass, text in nested:
        yield from _walk(subclass, subpath, text)


def _defaultText(f: dataclasses.Field[Any]) -> str:
    """A field's default as the docs show it."""
    if f.metadata.get("shown"):
        return f.metadata["shown"]
    if f.default is not dataclasses.MISSING:
        return _toml(f.default)
    return _toml(f.default_factory())  # type: ignore[misc]


def _cell(text: str) -> str:
    """Make text safe inside a markdown table cell (no column breaks, no HTML tags)."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def markdown() -> str:
    """The text of docs/configuration.md, generated from the classes above."""
    lines = [
        "<!-- Generated by `python -m jabberd.config --markdown`:"
        " edit jabberd/config.py, not this file. -->",
        "",
        "# Configuration",
        "",
        "jabberd reads one TOML file, given with `--config`. Every option has a",
        "default, so no file at all serves `localhost` with a SQLite store and a",
        "self-signed certificate. `etc/jabberd.toml` lists every option with its",
        "default.",
        "",
        "Check a file without starting the server:",
        "",
        "    python -m jabberd.config --check etc/jabberd.toml",
        "",
        "Every problem is reported at once, each with its key path, for example",
        "`c2s.stanza_size_limit: must be at least 10000`. Unknown keys are errors,",
        "with a suggestion when one is close.",
    ]
    lines += sectionTables(Config)
    return "\n".join(lines) + "\n"


def sectionTables(cls: type, heading: str = "##") -> list[str]:
    """The markdown tables of C{cls} and its nested sections (also used for a component's own file)."""
    lines: list[str] = []
    for where, intro, hints, fields in _walk(cls, "", _summary(cls)):
        title = "Top level" if not where else f"`[{where}]`"
        lines += ["", f"{heading} {title}", "", intro, ""]
        lines += ["| Key | Type | Default | Allowed | Meaning |", "|---|---|---|---|---|"]
        for f in fields:
            rules = [
                prefix + f.metadata[k].text
                for k, prefix in (("keys", "keys: "), ("each", "each: "), ("check", ""))
                if f.metadata.get(k)
            ]
            row = [
                f"`{f.name}`",
                _typeName(hints[f.name]),
                f"`{_defaultText(f)}`",
                "; ".join(rules),
                f.metadata.get("doc", ""),
            ]
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


# -- command line -------------------------------------------------------------


def commandLine(
    argv: list[str] | None,
    out: TextIO | None,
    prog: str,
    what: str,
    markdownFn: Callable[[], str],
    loadFn: Callable[[str], Any],
) -> int:
    """
    The C{--markdown}/C{--check PATH} command line of a configuration
    module (the server's here, a component's in components/config.py);
    returns the exit status.
    """
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(prog=prog, description=f"Check a {what} configuration file or print its docs.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print the generated reference (Markdown)")
    group.add_argument("--check", metavar="PATH", help="validate a TOML file")
    args = parser.parse_args(argv)
    if args.markdown:
        out.write(markdownFn())
        return 0
    try:
        loadFn(args.check)
    except ConfigError as e:
        out.write(f"{e}\n")
        return 1
    out.write("ok\n")
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """C{python -m jabberd.config}: print docs/configuration.md, or check a file."""
    return commandLine(argv, out, "python -m jabberd.config", "jabberd", markdown, load)


if __name__ == "__main__":
    sys.exit(main())
