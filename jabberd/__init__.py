"""
jabberd: an XMPP server on Twisted.

Embed it in a Twisted application with::

    from jabberd import XMPPServer, loadConfig
    XMPPServer(loadConfig("jabberd.toml")).setServiceParent(application)
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["XMPPServer", "loadConfig", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import jabberd.jid` (used by the config and
    # the client library) does not pull in the whole server.
    if name == "XMPPServer":
        from jabberd.service import XMPPServer

        return XMPPServer
    if name == "loadConfig":
        from jabberd.config import load

        return load
    raise AttributeError(name)
