"""
Server features as small modules, found as Twisted plugins.

A module declares what it handles in L{Module.hooks} and the disco features
it brings; the L{ModuleHost} registers those hooks on start and removes
them on stop (ejabberd's gen_mod is the model).  Third parties ship a
module by dropping a file into C{twisted/plugins/} that exposes a class
providing L{IModuleFactory}; the configuration enables and disables them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Hashable, Iterable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.plugin import IPlugin, getPlugins
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import Attribute, directlyProvides

from jabberd.store.database import StoreUnavailable, logFailure

if TYPE_CHECKING:
    from jabberd.service import XMPPServer

Hook = tuple[Hashable, Callable[..., Any], int]


class IModuleFactory(IPlugin):
    """A module class: C{name}, and called with the server to make the module."""

    name = Attribute("unique module name used in the configuration")

    def __call__(server: XMPPServer) -> "Module":  # type: ignore[misc]
        """Create the module for C{server}."""


class Module:
    """
    Base class for server modules.

    Subclasses set C{name}, the disco C{features} the server gains by
    loading them, and return their event-bus registrations from L{hooks}.
    """

    name: ClassVar[str] = ""
    features: ClassVar[tuple[str, ...]] = ()  # server (domain) disco#info features
    accountFeatures: ClassVar[tuple[str, ...]] = ()  # account (bare JID) disco#info features
    log = Logger()

    def __init_subclass__(cls, **kw: Any) -> None:
        # Every named subclass is a plugin: declaring it here means a module
        # author cannot forget to, and a half-written base class (no name)
        # is never offered.
        super().__init_subclass__(**kw)
        if cls.name:
            directlyProvides(cls, IModuleFactory)

    def __init__(self, server: XMPPServer) -> None:
        self.server = server

    def hooks(self) -> Iterable[Hook]:
        """The (key, handler, priority) registrations of this module."""
        return ()

    def start(self) -> defer.Deferred | None:
        """Load state (called after hooks are registered); may return a Deferred."""
        return None

    def stop(self) -> defer.Deferred | None:
        """Release state (called before hooks are removed)."""
        return None

    def storeFailed(self, failure: Failure, stanza: domish.Element | None, what: str) -> None:
        """
        A store interaction for C{what} failed: answer C{stanza} (when there
        is one to answer) and log.  The database being down is no bug: the
        store logs each outage once, so that is answered internal-server-error
        of type "wait" (try later) and not logged again; anything else is
        logged with its traceback (docs/operations.md).
        """
        if logFailure(self.log, failure, "{module}: {what} failed", module=self.name, what=what):
            if stanza is not None:
                self.server.router.bounce(stanza, "internal-server-error", StoreUnavailable.clientText, errorType="wait")
        elif stanza is not None:
            self.server.router.bounce(stanza, "internal-server-error")


def availableModules() -> dict[str, IModuleFactory]:
    """
    Every module class installed, by name.

    Built-in modules come from L{jabberd.modules.builtin} directly, never
    through Twisted's C{dropin.cache}, which only notices changes to dropin
    files and so could hide a module; third-party modules come from
    Twisted's plugin discovery (their own dropins in C{twisted/plugins/}).
    """
    import twisted.plugins

    from jabberd.modules import builtin

    found = {f.name: f for f in vars(builtin).values() if isinstance(f, type) and IModuleFactory.providedBy(f)}
    for factory in getPlugins(IModuleFactory, twisted.plugins):
        found.setdefault(factory.name, factory)
    return found


class ModuleHost:
    """Starts the enabled modules and keeps their hook registrations."""

    log = Logger()

    def __init__(self, server: XMPPServer) -> None:
        self.server = server
        self.modules: dict[str, Module] = {}
        self._offs: dict[str, list[Callable[[], None]]] = {}

    @staticmethod
    def select(enabled: Iterable[str], disabled: Iterable[str]) -> list[IModuleFactory]:
        """
        The module classes to load: C{enabled} (all when empty) minus
        C{disabled}; an unknown name is a configuration error.
        """
        found = availableModules()
        enabled, disabled = list(enabled), list(disabled)
        unknown = [n for n in enabled + disabled if n not in found]
        if unknown:
            raise ValueError(f"modules: unknown module(s) {', '.join(sorted(unknown))}; available: {', '.join(sorted(found))}")
        names = enabled or sorted(found)
        return [found[n] for n in names if n not in disabled]

    @defer.inlineCallbacks
    def load(self, factories: Iterable[IModuleFactory]):
        """Create, register and start each module."""
        for factory in factories:
            module = factory(self.server)
            self.modules[module.name] = module
            self._offs[module.name] = [self.server.bus.on(key, handler, priority) for key, handler, priority in module.hooks()]
            yield module.start()

    @defer.inlineCallbacks
    def unloadAll(self):
        """Stop every module and remove its hooks, last loaded first."""
        for name in reversed(list(self.modules)):
            module = self.modules.pop(name)
            try:
                yield module.stop()
            except Exception:
                self.log.failure("stopping module {name} failed", name=name)
            for off in self._offs.pop(name, []):
                off()

    def features(self) -> list[str]:
        """Server disco features of the loaded modules (never a hand-kept list)."""
        return sorted({f for m in self.modules.values() for f in m.features})

    def accountFeatures(self) -> list[str]:
        """Account (bare JID) disco features of the loaded modules."""
        return sorted({f for m in self.modules.values() for f in m.accountFeatures})
