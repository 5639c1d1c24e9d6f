"""
Software Version (XEP-0092) of the server: asked of a hosted domain, it
answers "jabberd", the package version and, unless C{[version] hide_os} is
set, the operating system (name and release, as C{uname -sr} prints them).

Prosody and ejabberd show the operating system by default too; XEP-0092 §5
leaves it to the deployment, hence the option.  Queries to accounts' bare
JIDs are not answered by the server (service-unavailable); queries to full
JIDs reach the client.
"""

from __future__ import annotations

import platform

import jabberd
from jabberd import bus as B
from jabberd.module import Module
from jabberd.xmlstream import iqResult

NS_VERSION = "jabber:iq:version"
SOFTWARE_NAME = "jabberd"


def operatingSystem() -> str:
    """The operating system's name and release, e.g. C{Linux 6.1.0}."""
    return " ".join(part for part in (platform.system(), platform.release()) if part)


class VersionModule(Module):
    """Answers jabber:iq:version for hosted domains."""

    name = "version"
    features = (NS_VERSION,)

    def __init__(self, server) -> None:
        super().__init__(server)
        self.os = "" if server.config.version.hide_os else operatingSystem()

    def hooks(self):
        return [(B.iq("get", B.HOST, NS_VERSION, "query"), self.version, B.PRIORITY_NORMAL)]

    def version(self, iq, fromJID, toJID) -> bool:
        reply = iqResult(iq)
        query = reply.addElement((NS_VERSION, "query"))
        query.addElement("name", content=SOFTWARE_NAME)
        query.addElement("version", content=jabberd.__version__)
        if self.os:
            query.addElement("os", content=self.os)
        self.server.router.route(reply)
        return True
