"""
The PEP services in memory: each account's nodes, their configuration,
affiliations and last item, loaded from the store when first needed and
kept in a bounded cache; every change is written through to the store.

An account's service (L{Service}) is loaded whole in one transaction, and
the services of many accounts in one transaction too (a user coming online
needs those of all its contacts).  Accounts without nodes are cached as
well, so asking again costs nothing.  Only the newest item of each node is
in memory: that is what notifications on presence send; the others are
read when a client asks for them.

Writes and reads of one service run one after the other
(L{Services.run}), so a read sees every write queued before it and the
store changes in the order memory did.  A write that fails drops the
service from the cache: the next use reloads what the store really holds.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from jabberd.inflight import InFlight
from jabberd.modules.pep.config import NodeConfig
from jabberd.store.database import logFailure
from jabberd.store.pep import StoredItem, load_services_txn

#: Accounts whose PEP services are kept in memory.
CACHE_SIZE = 10000


class _Unknown:
    """The newest item of a node whose last item was retracted, until the store says which it is."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class Node:
    """One PEP node: name, configuration, affiliations (bare JID -> name), newest item, explicit subscribers."""

    __slots__ = ("name", "config", "affiliations", "last", "subscriptions")

    def __init__(
        self,
        name: str,
        config: NodeConfig,
        affiliations: dict[str, str] | None = None,
        last: Any = None,
        subscriptions: set[str] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.affiliations = affiliations if affiliations is not None else {}
        self.last: StoredItem | None | _Unknown = last
        self.subscriptions = subscriptions if subscriptions is not None else set()

    def affiliation(self, owner: str, jid: str) -> str:
        """The affiliation of the bare JID C{jid}: the account itself owns every node."""
        if jid == owner:
            return "owner"
        return self.affiliations.get(jid, "none")


class Service:
    """The PEP service of one account."""

    __slots__ = ("bare", "host", "username", "exists", "nodes", "tail", "pending")

    def __init__(self, bare: str, exists: bool, nodes: dict[str, Node]) -> None:
        self.bare = bare
        self.username, _, self.host = bare.partition("@")
        self.exists = exists
        self.nodes = nodes
        self.tail: defer.Deferred = defer.succeed(None)  # the last store operation queued
        self.pending = 0

    def __repr__(self) -> str:
        return f"<PEP service {self.bare} nodes={sorted(self.nodes)}>"


def _service(bare: str, stored: dict | None) -> Service:
    if stored is None:
        return Service(bare, False, {})
    nodes = {
        name: Node(name, NodeConfig.fromDict(s.config), dict(s.affiliations), s.last, set(s.subscriptions))
        for name, s in stored.items()
    }
    return Service(bare, True, nodes)


def _owner(bare: str) -> tuple[str, str]:
    username, _, host = bare.partition("@")
    return host, username


class Services:
    """The bounded cache of services, and the ordered store work of each."""

    log = Logger()

    def __init__(self, store: Any, size: int = CACHE_SIZE) -> None:
        self.store = store
        self.size = size
        self._cache: OrderedDict[str, Service] = OrderedDict()
        self._loading: dict[str, list[defer.Deferred]] = {}
        self._work = InFlight()

    def cached(self, bare: str) -> Service | None:
        """The service of C{bare} if it is in memory (no I/O)."""
        service = self._cache.get(bare)
        if service is not None:
            self._cache.move_to_end(bare)
        return service

    def get(self, bare: str) -> defer.Deferred:
        """The service of the local account C{bare}; fires at once when cached."""
        d = self.getMany([bare])
        return d.addCallback(lambda found: found[bare])

    def getMany(self, bares: list[str]) -> defer.Deferred:
        """The services of the local accounts C{bares} (a dict), the missing ones loaded in one transaction."""
        found: dict[str, Service] = {}
        waiting: list[defer.Deferred] = []
        missing: list[str] = []
        for bare in dict.fromkeys(bares):
            service = self.cached(bare)
            if service is not None:
                found[bare] = service
            elif bare in self._loading:
                d: defer.Deferred = defer.Deferred()
                self._loading[bare].append(d)
                waiting.append(d.addCallback(self._into(found, bare)))
            else:
                missing.append(bare)
        if missing:
            for bare in missing:
                self._loading[bare] = []
            self._work.begin()
            load = self.store.runInteraction("pep_load", load_services_txn, [_owner(b) for b in missing])
            load.addCallbacks(self._loaded, self._loadFailed, callbackArgs=(missing,), errbackArgs=(missing,))
            load.addBoth(self._work.end)
            for bare in missing:
                d = defer.Deferred()
                self._loading[bare].append(d)
                waiting.append(d.addCallback(self._into(found, bare)))
        if not waiting:
            return defer.succeed(found)
        return defer.gatherResults(waiting, consumeErrors=True).addCallback(lambda _: found)

    @staticmethod
    def _into(found: dict[str, Service], bare: str) -> Callable[[Service], None]:
        def put(service: Service) -> None:
            found[bare] = service

        return put

    def _loaded(self, stored: dict, missing: list[str]) -> None:
        for bare in missing:
            service = _service(bare, stored.get(_owner(bare)))
            self._cache[bare] = service
            for d in self._loading.pop(bare, []):
                d.callback(service)
        self._evict()

    def _loadFailed(self, failure: Failure, missing: list[str]) -> None:
        logFailure(self.log, failure, "loading PEP nodes failed")
        for bare in missing:
            for d in self._loading.pop(bare, []):
                d.errback(failure)

    def _evict(self) -> None:
        excess = len(self._cache) - self.size
        if excess <= 0:
            return
        for bare in list(self._cache):
            if excess <= 0:
                break
            if self._cache[bare].pending == 0:
                del self._cache[bare]
                excess -= 1

    def drop(self, bare: str) -> None:
        """Forget C{bare}'s service (account deleted, or memory no longer matches the store)."""
        self._cache.pop(bare, None)

    def run(self, service: Service, desc: str, fn: Callable[..., Any] | None, *args: Any) -> defer.Deferred:
        """
        Run C{fn(conn, *args)} after the service's earlier store work; fire
        with its result.  C{fn} None just waits for the earlier work.  A
        failure drops the service from the cache (and is passed on).
        """
        service.pending += 1
        self._work.begin()
        out: defer.Deferred = defer.Deferred()

        def start(_: Any) -> defer.Deferred:
            try:
                op = self.store.runInteraction(desc, fn, *args) if fn is not None else defer.succeed(None)
            except Exception:
                op = defer.fail()
            op.addBoth(finished)
            return op

        def finished(result: Any) -> None:
            service.pending -= 1
            if isinstance(result, Failure):
                self.drop(service.bare)
                out.errback(result)
            else:
                out.callback(result)
            self._work.end()
            return None

        service.tail.addBoth(start)
        return out

    def whenIdle(self) -> defer.Deferred:
        """Fires once nothing is being loaded or written (tests, shutdown)."""
        return self._work.whenIdle()
