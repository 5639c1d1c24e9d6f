"""
The configuration of a standalone connection manager (`twistd -n
jabberd-bosh --config etc/bosh.toml`): the core's own [http] and [tls]
sections, plus where the core is.  Loaded and checked by the same code as
jabberd.toml, so the rules and messages are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from jabberd.config import (
    HTTPConfig,
    TLSConfig,
    atLeast,
    defaultDataDir,
    domainName,
    endpointString,
    filePath,
    hostList,
    oneOf,
    option,
    section,
)


@dataclass(frozen=True)
class CoreConfig:
    """The XMPP server the connection manager relays to: one ordinary c2s stream per web session."""

    connect: str = option(
        "tcp:localhost:5222",
        "Twisted client endpoint of the server's client port.",
        endpointString,
    )
    starttls: bool = option(
        True,
        "Negotiate STARTTLS with the server and verify its certificate;"
        " false only when both run on one machine or a private network.",
    )
    ca_file: str = option(
        "",
        'PEM certificates the server\'s certificate must chain to; "" = the system trust store.',
        filePath,
    )
    proxy_protocol: bool = option(
        False,
        "Open each connection to the server with a PROXY v1 header naming the web client's address"
        " (connect to a haproxy: listener); false: the server sees every web user as this process.",
    )


@dataclass(frozen=True)
class BoshConfig:
    """The whole configuration of one `twistd -n jabberd-bosh` process."""

    hosts: tuple[str, ...] = option(
        ("localhost",), "Domains clients may ask for (the server's hosts).", hostList, each=domainName
    )
    data_dir: str = option(
        factory=defaultDataDir,
        doc="Directory for generated certificates (share the server's to use the same ones).",
        check=filePath,
        shown="$JABBERD_DATA_DIR, else ~/.local/share/jabberd if $HOME is writable, else ./data",
    )
    log_level: str = option(
        "info", "Least severe log messages written.", oneOf("debug", "info", "warn", "error")
    )
    stanza_size_limit: int = option(
        262144, "Largest stanza a client may send, in bytes.", atLeast(10000)
    )
    max_depth: int = option(64, "Deepest XML nesting a client may send.", atLeast(8))
    core: CoreConfig = section(CoreConfig)
    http: HTTPConfig = section(HTTPConfig)
    tls: TLSConfig = section(TLSConfig)
