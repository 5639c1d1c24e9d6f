"""
The configuration of a component run on its own (C{twistd -n jabberd-muc
--config etc/muc.toml}), built from the same machinery and sections as the
server's (L{jabberd.config}): the same checks, the same error messages with
key paths, and C{docs/muc.md} generated from these classes.

Usage::

    python -m components.config --check etc/muc.toml
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

from jabberd.config import (
    commandLine,
    MucServiceConfig,
    Problems,
    atLeast,
    defaultDataDir,
    domainName,
    filePath,
    fromDict,
    greaterThan,
    load,
    oneOf,
    option,
    rule,
    section,
    sectionTables,
    sqlalchemyURL,
)

__all__ = ["MucComponentConfig", "ServerLinkConfig", "loadMuc", "markdown"]


@dataclass(frozen=True)
class ServerLinkConfig:
    """The XEP-0114 connection to the server: the component's domain, its secret, where the server listens."""

    domain: str = option(
        "conference.localhost",
        "The component's domain; the server lists it in its [components] secrets.",
        domainName,
    )
    secret: str = option("", "The shared secret, as in the server's [components] secrets (required).")
    host: str = option("127.0.0.1", "Address of the server's component listener.")
    port: int = option(5347, "Port of the server's component listener.", atLeast(1))
    reconnect_max_delay: float = option(
        60.0, "Longest wait between attempts to (re)connect, in seconds (the wait doubles up to it).", greaterThan(0)
    )


@dataclass(frozen=True)
class MucComponentConfig:
    """The whole configuration of the standalone MUC component."""

    data_dir: str = option(
        factory=defaultDataDir,
        doc="Directory of the SQLite store (the server's, shared).",
        check=filePath,
        shown="$JABBERD_DATA_DIR, else ~/.local/share/jabberd if $HOME is writable, else ./data",
    )
    database: str = option(
        "",
        'SQLAlchemy URL of the store; "" = SQLite file {data_dir}/jabberd.sqlite, the server\'s'
        " default: the MUC shares the server's database, in its own tables.",
        sqlalchemyURL,
    )
    log_level: str = option(
        "info", "Least severe log messages written.", oneOf("debug", "info", "warn", "error")
    )
    component: ServerLinkConfig = section(ServerLinkConfig)
    muc: MucServiceConfig = section(MucServiceConfig)

    @rule("component")
    def _secretRequired(self) -> Problems:
        """Without the secret the server refuses the component (checked here, so a missing table counts too)."""
        if not self.component.secret:
            yield ("component", "secret"), "required: the secret of this domain in the server's [components] secrets"

    def databaseURL(self) -> str:
        if self.database:
            return self.database
        return "sqlite:///" + os.path.join(self.data_dir, "jabberd.sqlite")


def loadMuc(path: str | None) -> MucComponentConfig:
    """Read and check a component configuration file (None: defaults, which lack a secret)."""
    return load(path, MucComponentConfig)


def fromMucDict(data: dict) -> MucComponentConfig:
    return fromDict(data, cls=MucComponentConfig)


def markdown() -> str:
    """The configuration reference part of docs/muc.md."""
    return "\n".join(sectionTables(MucComponentConfig, "###")) + "\n"


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """C{python -m components.config}: print the tables of docs/muc.md, or check a file."""
    return commandLine(argv, out, "python -m components.config", "MUC component", markdown, loadMuc)


if __name__ == "__main__":
    sys.exit(main())
