"""
The multi-user chat service (XEP-0045), as a component.

L{handlers} gives the tx_xmpp handlers of one MUC domain; attach them to
L{components.base.InProcessComponent} (inside the server, the zero
configuration default: C{conference.<host>}) or to
L{components.base.ExternalComponent} (C{twistd -n jabberd-muc}, over
XEP-0114).  The rooms' state is the L{MUCService}'s; persistent rooms are in
the shared database, in the MUC's own tables (L{components.muc.store}).
"""

from __future__ import annotations

from typing import Any

from components.muc.service import MUCService

__all__ = ["MUCService", "handlers"]


def handlers(service: MUCService) -> list[Any]:
    """The handlers of a MUC component: the service, disco, ping and the fallback."""
    from components.muc.protocols import FallbackHandler, MucDiscoHandler, MucPingHandler

    return [service, MucDiscoHandler(), MucPingHandler(), FallbackHandler()]
