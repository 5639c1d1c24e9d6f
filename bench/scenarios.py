"""
The scenarios: each takes a running server and returns its figures.

A scenario never crashes the run: anything a server cannot do yields a
L{Figure} with no value and the reason (printed as "n/a").  Each figure
carries the harness's own CPU use over the measured window (fraction of one
core), so a reader can see the load generator was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import xmppload as X
from servers import DOMAIN, MUC_DOMAIN, PASSWORD, Server, cpu_seconds, rss_bytes, user

HOST = "127.0.0.1"
P99_LIMIT_MS = 100.0


@dataclass
class Figure:
    value: float | None
    unit: str
    note: str = ""
    client_cpu: float = 0.0  # fraction of one core used by the harness
    detail: dict = field(default_factory=dict)


@dataclass
class Settings:
    quick: bool

    @property
    def login_seconds(self) -> float:
        return 2.0 if self.quick else 8.0

    @property
    def step_seconds(self) -> float:
        return 1.5 if self.quick else 4.0

    @property
    def step_factor(self) -> float:
        return 2.0 if self.quick else 1.4

    @property
    def idle_sizes(self) -> list[int]:
        return [1000] if self.quick else [2000, 10000]

    @property
    def storm_users(self) -> int:
        return 100 if self.quick else 500


class Meter:
    """Wall time, harness CPU and server CPU over a window."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.t0, self.c0, self.s0 = time.perf_counter(), time.process_time(), cpu_seconds(server.pid)

    def read(self) -> tuple[float, float, float]:
        """(wall seconds, harness CPU fraction, server CPU seconds) so far."""
        wall = time.perf_counter() - self.t0
        return wall, (time.process_time() - self.c0) / wall, cpu_seconds(self.server.pid) - self.s0


async def quiesce(server: Server, limit: float = 60.0) -> float:
    """
    Wait until the server is idle (under 5% CPU over half a second), so work
    left over from the previous scenario (queues, database writes, garbage)
    is not billed to the next; return the seconds waited.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = cpu_seconds(server.pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(server.pid) - before < 0.025:
            break
    return time.perf_counter() - start


async def login_many(server: Server, users: list[str], concurrency: int, tolerate: bool = False, **kw) -> list[X.XMPPConn]:
    """
    Log every user in (at most C{concurrency} handshakes at a time); keep
    them connected.  With C{tolerate}, failed logins are left out (the
    caller compares the count) instead of failing the whole.
    """
    sem = asyncio.Semaphore(concurrency)
    sinks = kw.pop("sinks", None)

    async def one(i: int, name: str) -> X.XMPPConn:
        async with sem:
            extra = dict(kw)
            if sinks is not None:
                extra["sink"] = sinks(i)
            return await X.connect(HOST, server.c2s_port, DOMAIN, name, PASSWORD, **extra)

    results = await asyncio.gather(*(one(i, u) for i, u in enumerate(users)), return_exceptions=tolerate)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, (OSError, X.XMPPError)):
            raise r
    return [r for r in results if isinstance(r, X.XMPPConn)]


async def hang_up(conns: list[X.XMPPConn]) -> None:
    for c in conns:
        c.abort()
    await asyncio.sleep(0.5)


# -- (1) logins -------------------------------------------------------------------------


async def logins(server: Server, s: Settings, mechanism: str, starttls: bool) -> Figure:
    """Connect, SASL, bind, initial presence, close; as many as possible per second."""
    note = ""
    if mechanism == "PLAIN" and not starttls and not server.plain_without_tls:
        mechanism, note = "SCRAM-SHA-1", "†"
    loop = asyncio.get_running_loop()
    concurrency, accounts = 32, server.population.accounts
    done = errors = 0
    last_error = ""
    tls = X.client_tls_context()
    deadline = loop.time() + s.login_seconds

    async def worker(w: int) -> None:
        nonlocal done, errors, last_error
        i = w
        while loop.time() < deadline:
            try:
                conn = await X.connect(HOST, server.c2s_port, DOMAIN, user(i % accounts), PASSWORD, mechanism, starttls, tls)
                await X.close(conn)
                done += 1
            except (OSError, X.XMPPError) as e:
                errors += 1
                last_error = str(e)[:200]
                await asyncio.sleep(0.01)
            i += concurrency

    meter = Meter(server)
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall, client, server_cpu = meter.read()
    if done == 0:
        return Figure(None, "logins/s", f"n/a: {last_error}")
    if errors:
        note += f" ({errors} failed: {last_error[:80]})"
    return Figure(done / wall, "logins/s", note, client, {"server_busy": server_cpu / wall, "errors": errors})


# -- stepped load (chat, MUC) ---------------------------------------------------------


class Latencies:
    """What the sinks record: one latency (ns) per delivered <body>, and errors."""

    __slots__ = ("values", "errors")

    def __init__(self) -> None:
        self.values: list[int] = []
        self.errors = 0

    def record(self, body: bytes, now: int) -> None:
        """One delivered <body> (its send time, ns) received at C{now}; bench/soak.py adds checks."""
        self.values.append(now - int(body))

    def sink(self) -> Callable[[bytes], None]:
        record, clock = self.record, time.perf_counter_ns
        tail = b""

        def sink(data: bytes) -> None:
            nonlocal tail
            if tail:
                data, tail = tail + data, b""
            if b"type='error'" in data or b'type="error"' in data:
                self.errors += 1
            now, pos = clock(), 0
            while True:
                i = data.find(b"<body>", pos)
                if i < 0:
                    tail = data[-5:]
                    return
                j = data.find(b"</body>", i)
                if j < 0:
                    tail = data[i:]
                    return
                record(data[i + 6 : j], now)
                pos = j + 7

        return sink


async def stepped(
    server: Server,
    s: Settings,
    start_rate: float,
    send: Callable[[int, bytes], None],
    fanout: int,
    lat: Latencies,
    unit: str,
) -> Figure:
    """
    Offer C{send} calls at a rising rate until p99 latency exceeds 100 ms or
    deliveries fall behind; the figure is the delivered rate of the last
    step that held.  Each call is expected to deliver C{fanout} stanzas.
    """
    loop = asyncio.get_running_loop()
    rate, best, steps, retried = start_rate, None, [], False
    while rate < 1_000_000:
        lat.values.clear()
        sent = 0
        meter = Meter(server)
        start = loop.time()
        while (elapsed := loop.time() - start) < s.step_seconds:
            due = int(elapsed * rate) - sent
            if due > 0:
                stamp = str(time.perf_counter_ns()).encode()
                for k in range(sent, sent + due):
                    send(k, stamp)
                sent += due
            await asyncio.sleep(0.001)
        wall, client, _ = meter.read()
        expected = sent * fanout
        drain = loop.time()
        while len(lat.values) < expected and loop.time() - drain < 1.0:
            await asyncio.sleep(0.01)
        total_wall, _, server_cpu = meter.read()
        delivered = len(lat.values)
        p99 = X.percentile(lat.values, 0.99) / 1e6
        step = {"offered": round(sent / wall), "delivered": round(delivered / wall), "p99_ms": round(p99, 1),
                "client_cpu": round(client, 2), "server_busy": round(server_cpu / total_wall, 2)}
        steps.append(step)
        held = delivered >= 0.99 * expected and p99 <= P99_LIMIT_MS
        if not held:
            # One bad step may be a hiccup (a GC pause, a neighbour on a
            # shared machine): the same rate gets a second chance.
            if retried:
                break
            retried = True
            await quiesce(server, 10.0)
            continue
        retried = False
        best = (delivered / wall, client, server_cpu / delivered * 10_000 if delivered else 0.0, server_cpu / total_wall)
        rate *= s.step_factor
    # let a saturated server catch up before anything else is measured
    quiet = loop.time()
    while loop.time() - quiet < 15:
        before = len(lat.values)
        await asyncio.sleep(0.5)
        if len(lat.values) == before:
            break
    if best is None:
        return Figure(None, unit, f"n/a: even {start_rate:.0f}/s did not hold ({steps[-1]})", detail={"steps": steps})
    note = " (harness lost messages: see steps)" if lat.errors else ""
    return Figure(best[0], unit, note, best[1], {"steps": steps, "cpu_per_10k": best[2], "server_busy": best[3], "errors": lat.errors})


# -- (2) one-to-one chat ---------------------------------------------------------------


async def chat(server: Server, s: Settings, users: int = 200) -> tuple[Figure, Figure]:
    """200 online users in pairs; figures: msgs/s sustained, server CPU-s per 10k msgs."""
    lat = Latencies()
    conns = await login_many(server, [user(i) for i in range(users)], 50, sinks=lambda i: lat.sink())
    try:
        # Steady state only: the logins' aftermath (roster loads, ...) is
        # measured by the login scenario, not billed to the first step.
        await quiesce(server)
        lat.values.clear()
        heads = [f"<message to='{user(i ^ 1)}@{DOMAIN}/bench' type='chat'><body>".encode() for i in range(users)]
        writes = [c.transport.write for c in conns]  # type: ignore[union-attr]
        tail = b"</body></message>"

        def send(k: int, stamp: bytes) -> None:
            i = k % users
            writes[i](heads[i] + stamp + tail)

        rate = await stepped(server, s, 1000, send, 1, lat, "msgs/s")
    finally:
        await hang_up(conns)
    per10k = rate.detail.get("cpu_per_10k") if rate.value is not None else None
    return rate, Figure(per10k, "CPU-s/10k msgs", rate.note if per10k is None else "", rate.client_cpu)


# -- (3) idle sessions -----------------------------------------------------------------


async def idle(server: Server, s: Settings, sizes: list[int]) -> dict[int, Figure]:
    """
    RSS growth per authenticated, available session, at each size in turn:
    sessions accumulate (the first 2,000 stay while 8,000 more log in), and
    every figure is measured from the same RSS taken before the first login,
    so a larger figure never reuses memory a smaller one's sessions freed.
    """
    figures: dict[int, Figure] = {}
    sizes = sorted(sizes)
    await asyncio.sleep(1.0)
    before = rss_bytes(server.pid)
    conns: list[X.XMPPConn] = []
    tried = 0
    try:
        for sessions in sizes:
            if sessions > server.population.accounts:
                figures[sessions] = Figure(None, "KiB/session", f"n/a: only {server.population.accounts} accounts")
                continue
            meter = Meter(server)
            conns += await login_many(server, [user(i) for i in range(tried, sessions)], 64, tolerate=True, sink=lambda data: None, timeout=60)
            tried = sessions
            wall, client, _ = meter.read()
            if not conns:
                figures[sessions] = Figure(None, "KiB/session", "n/a: every login failed")
                continue
            await asyncio.sleep(3.0)
            after = rss_bytes(server.pid)
            note = f"({sessions - len(conns)} of {sessions} logins failed)" if len(conns) < sessions else ""
            figures[sessions] = Figure((after - before) / len(conns) / 1024, "KiB/session", note, client,
                                       {"rss_before_mib": before / 2**20, "rss_after_mib": after / 2**20, "login_s": wall,
                                        "sessions": len(conns)})
    finally:
        await hang_up(conns)
        await asyncio.sleep(2.0)
    return figures


# -- (4) MUC fan-out -------------------------------------------------------------------

ROOM = f"bench@{MUC_DOMAIN}"
NS_MUC = "http://jabber.org/protocol/muc"


async def join(conn: X.XMPPConn, nick: str) -> None:
    conn.send(f"<presence to='{ROOM}/{nick}'><x xmlns='{NS_MUC}'/></presence>".encode())
    while True:
        _, element = await conn.element(b"presence")
        if b"type='error'" in element or b'type="error"' in element:
            raise X.XMPPError(f"no MUC service at {MUC_DOMAIN}: {element[:300]!r}")
        if b"code='110'" in element or b'code="110"' in element:
            return


async def muc(server: Server, s: Settings, occupants: int = 50) -> Figure:
    """One room of 50; one occupant sends groupchat at a rising rate."""
    conns = await login_many(server, [user(i) for i in range(occupants)], 50)
    try:
        try:
            await asyncio.wait_for(join(conns[0], "u0"), 10)
        except (asyncio.TimeoutError, X.XMPPError) as e:
            return Figure(None, "stanzas/s", f"n/a: {str(e)[:150] or 'join timed out'}")
        # An instant room (XEP-0045 §10.1.2), for servers that lock new rooms.
        conns[0].send(
            f"<iq type='set' to='{ROOM}' id='cfg'><query xmlns='{NS_MUC}#owner'>"
            "<x xmlns='jabber:x:data' type='submit'/></query></iq>".encode()
        )
        await conns[0].element(b"iq")
        for i, c in enumerate(conns[1:], 1):
            await join(c, user(i))
        await asyncio.sleep(0.5)
        lat = Latencies()
        for c in conns:
            c.buf.clear()
            c.set_sink(lat.sink())
        await quiesce(server)
        lat.values.clear()
        write = conns[0].transport.write  # type: ignore[union-attr]
        head, tail = f"<message to='{ROOM}' type='groupchat'><body>".encode(), b"</body></message>"

        def send(k: int, stamp: bytes) -> None:
            write(head + stamp + tail)

        return await stepped(server, s, 50, send, occupants, lat, "stanzas/s")
    finally:
        await hang_up(conns)


# -- (5) presence storm ------------------------------------------------------------------


async def storm(server: Server, s: Settings) -> Figure:
    """N users with 20 mutual contacts each log in at once: seconds until every presence arrived."""
    pop = server.population
    n = min(s.storm_users, pop.roster_users)
    want = pop.contacts
    loop = asyncio.get_running_loop()
    remaining = n
    all_done = loop.create_future()
    received = 0

    def make_sink(i: int) -> Callable[[bytes], None]:
        me = f"{user(i)}@{DOMAIN}".encode()
        seen: set[bytes] = set()
        tail = b""
        finished = False

        def sink(data: bytes) -> None:
            nonlocal tail, finished, remaining, received
            if tail:
                data, tail = tail + data, b""
            pos = 0
            while True:
                i = data.find(b"<presence", pos)
                if i < 0:
                    tail = data[-8:]
                    break
                j = data.find(b">", i)
                if j < 0:
                    tail = data[i:]
                    break
                tag, pos = data[i:j], j
                f = tag.find(b"from=")
                if f < 0 or b" type=" in tag:
                    continue
                end = tag.find(tag[f + 5 : f + 6], f + 6)
                bare = tag[f + 6 : end].split(b"/", 1)[0]
                received += 1
                if bare != me:
                    seen.add(bare)
            if not finished and len(seen) >= want:
                finished = True
                remaining -= 1
                if remaining == 0 and not all_done.done():
                    all_done.set_result(loop.time())

        return sink

    after = b"<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>"
    meter = Meter(server)
    start = loop.time()
    conns: list[X.XMPPConn] = []
    try:
        try:
            conns = await login_many(server, [user(i) for i in range(n)], 50, sinks=make_sink, after_bind=after)
            end = await asyncio.wait_for(asyncio.shield(all_done), 60 if s.quick else 120)
        except asyncio.TimeoutError:
            return Figure(None, "s", f"n/a: {remaining} of {n} users still missing presences after the timeout")
        except (OSError, X.XMPPError) as e:
            return Figure(None, "s", f"n/a: {str(e)[:150]}")
        _, client, server_cpu = meter.read()
        wall = end - start
        return Figure(wall, "s", "", client, {"presences": received, "server_busy": server_cpu / wall, "users": n})
    finally:
        await hang_up(conns)


SCENARIOS: dict[str, str] = {
    "logins": "(1) logins/s: connect, SASL, bind, initial presence, close",
    "chat": "(2) one-to-one chat: 200 users in pairs, highest rate with p99 <= 100 ms",
    "idle": "(3) idle sessions: server RSS per authenticated session",
    "muc": "(4) MUC fan-out: one room of 50, delivered stanzas/s",
    "presence": "(5) presence storm: N users x 20 mutual contacts log in at once",
}


async def run_scenario(name: str, server: Server, s: Settings) -> dict[str, Figure]:
    """Every figure of one scenario, keyed by row label."""
    if name == "logins":
        return {
            "logins/s PLAIN, no TLS": await logins(server, s, "PLAIN", False),
            "logins/s SCRAM-SHA-1, no TLS": await logins(server, s, "SCRAM-SHA-1", False),
            "logins/s STARTTLS + SCRAM-SHA-1": await logins(server, s, "SCRAM-SHA-1", True),
        }
    if name == "chat":
        rate, cpu = await chat(server, s)
        return {"chat msgs/s (p99 <= 100 ms)": rate, "chat server CPU-s per 10k msgs": cpu}
    if name == "idle":
        return {f"idle RSS KiB/session @ {n:,}": f for n, f in (await idle(server, s, s.idle_sizes)).items()}
    if name == "muc":
        return {"MUC fan-out stanzas/s (50 occupants)": await muc(server, s)}
    if name == "presence":
        return {f"presence storm seconds ({s.storm_users} users x 20)": await storm(server, s)}
    raise KeyError(name)


Runner = Callable[[str, Server, Settings], Awaitable[dict[str, Figure]]]
