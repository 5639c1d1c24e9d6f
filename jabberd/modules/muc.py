"""
Multi-user chat inside the server: the zero-configuration
C{conference.<host>} for each host (C{[muc]} in the configuration).

The MUC itself is a component (C{components/muc/}); this module only runs
it in-process: one L{components.muc.MUCService} per host, attached to the
Router as a registered domain through
L{components.base.InProcessComponent}, using the server's store (its own
tables and migrations).  Set C{muc.enabled = false} to run it as an
external component instead (C{twistd -n jabberd-muc}).

When the server stops, occupants are told first (status 332), while their
connections are still open.
"""

from __future__ import annotations

from twisted.internet import defer

from jabberd import bus as B
from jabberd.module import Module


class MucModule(Module):
    """Runs the XEP-0045 service in-process for each host."""

    name = "muc"

    def __init__(self, server) -> None:
        super().__init__(server)
        self.services: dict = {}  # domain -> MUCService
        self.components: list = []

    def hooks(self):
        return [(B.SERVER_STOPPING, self.serverStopping, B.PRIORITY_NORMAL)]

    @defer.inlineCallbacks
    def start(self):
        config = self.server.config
        if not config.muc.enabled:
            return
        from components import muc
        from components.base import InProcessComponent

        for domain in config.mucDomains():
            service = muc.MUCService(domain, config.muc, store=self.server.store, clock=self.server.reactor)
            yield service.start()
            component = InProcessComponent(self.server.router, domain, muc.handlers(service), self.server.reactor)
            component.startService()
            self.services[domain] = service
            self.components.append(component)

    def serverStopping(self) -> None:
        for service in self.services.values():
            service.shutdown()

    @defer.inlineCallbacks
    def stop(self):
        for component in self.components:
            component.stopService()
        self.components = []
        for service in self.services.values():
            yield service.whenIdle()
        self.services = {}
