"""
Soak: many sessions chatting at a steady, moderate rate for a long time,
while the server's memory, file descriptors and latency are watched.

    python bench/soak.py                 # 2,000 sessions, 1,000 msgs/s, 10 minutes
    python bench/soak.py --quick         # 200 sessions, 1 minute: a smoke check
    python bench/soak.py --duration 3600 --rate 2000 --json soak.json

jabberd is started as bench/run.py starts it (bench/servers.py: template
bench/jabberd.toml, seeded accounts, pinned to core 1, the harness on
core 0).  The sessions log in, in pairs (u0<->u1, u2<->u3, ...), and send
chat messages round-robin at C{--rate} messages per second in total; each
body carries a sequence number and the send time, so the receiver checks
order, duplicates and latency.  Every C{--interval} seconds the harness
samples the server's RSS (/proc/<pid>/statm), its open file descriptors
(/proc/<pid>/fd), its CPU, and the p50/p99 latency of that interval.

The verdict, after C{--warmup} seconds (not judged: caches, the allocator
and the first garbage collections settle):

  - RSS flat: no sample exceeds the first post-warm-up sample by more than 5%;
  - no descriptor growth: no sample has more descriptors than the first
    post-warm-up sample, and once every session has hung up the count is
    back to what it was before the logins;
  - then every session logs in and hangs up C{--cycles} more times, and
    the descriptors must be back to the start after each cycle.  The RSS
    after each hang-up is printed but not judged: it does not fall back
    (the allocator keeps its arenas) and it rises in steps of a few MiB,
    now and then, independent of the number of sessions (native memory:
    malloc arenas, SQLite's page cache; tracemalloc shows the Python heap
    flat from one cycle to the next), which a threshold cannot tell from a
    small leak.  A leak of whole sessions (about 25 KiB each) shows plainly;
  - p99 steady: the p99 of the last quarter of the judged time is at most
    twice that of its first quarter (both floored at 5 ms, so sub-millisecond
    noise cannot fail it);
  - nothing lost: every message sent was received exactly once, in order
    per sender, and no error came back.

The exit status is 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers as servers_module  # noqa: E402
import xmppload as X  # noqa: E402
from run import HARNESS_CORE, machine, setup_harness  # noqa: E402
from scenarios import Latencies, login_many, quiesce  # noqa: E402
from servers import DOMAIN, Jabberd, Population, cpu_seconds, make_certificate, rss_bytes, user  # noqa: E402

#: Growth of RSS over the first post-warm-up sample that still counts as flat.
RSS_TOLERANCE = 0.05
#: Last-quarter p99 over first-quarter p99 that still counts as steady.
P99_FACTOR = 2.0
#: p99 values below this (ms) are compared as this: noise, not a trend.
P99_FLOOR_MS = 5.0
#: Seconds to wait for the last messages after sending stops.
DRAIN_SECONDS = 15.0


def fd_count(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Sample:
    """One interval: what was sent and received in it, and the server's state at its end."""

    t: float  # seconds since sending started (end of the interval)
    sent: int
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_mib: float
    fds: int
    server_cpu: float  # share of one core over the interval


class Tally(Latencies):
    """
    What the receivers saw: the latencies of the current interval (C{values})
    and every anomaly.  Bodies are "<seq> <send time, ns>"; message C{seq}
    was sent by session C{seq % senders}, so order is checked per sender.
    """

    def __init__(self, senders: int) -> None:
        super().__init__()
        self.last = [-1] * senders
        self.received = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.seen = bytearray()

    def record(self, body: bytes, now: int) -> None:
        seq_text, _, stamp = body.partition(b" ")
        seq = int(seq_text)
        self.values.append(now - int(stamp))
        seen = self.seen
        if seq >= len(seen):
            seen.extend(bytes(seq + 65536 - len(seen)))
        if seen[seq]:
            self.duplicates += 1
        else:
            seen[seq] = 1
            self.received += 1
        sender = seq % len(self.last)
        if seq < self.last[sender]:
            self.out_of_order += 1
        else:
            self.last[sender] = seq


def quarter_p99(samples: list[Sample], latencies: list[list[int]], first: bool) -> float:
    """p99 (ms) over the first or last quarter of the given intervals."""
    n = max(1, len(samples) // 4)
    chosen = latencies[:n] if first else latencies[-n:]
    return X.percentile([v for lat in chosen for v in lat], 0.99) / 1e6


@dataclass
class Verdict:
    """Every figure the verdict rests on, and whether each check held."""

    rss_growth: float
    rss_ok: bool
    fds_first: int
    fds_max: int
    fds_before: int
    fds_after: int  # the most after either hang-up
    fds_ok: bool
    rss_hangups_mib: list[float]  # after the chat's hang-up, then after each further cycle (not judged)
    p99_first_ms: float
    p99_last_ms: float
    p99_ok: bool
    sent: int
    received: int
    lost: int
    duplicates: int
    out_of_order: int
    errors: int
    delivery_ok: bool

    @property
    def ok(self) -> bool:
        return self.rss_ok and self.fds_ok and self.p99_ok and self.delivery_ok


def judge(
    judged: list[Sample], lat: list[list[int]], tally: Tally, sent: int, fds_before: int, hangups: list[tuple[int, int]]
) -> Verdict:
    """The verdict (see the module docstring); C{hangups}: (fds, RSS bytes) after each hang-up."""
    base = judged[0]
    rss_growth = max(s.rss_mib for s in judged) / base.rss_mib - 1
    fds_max = max(s.fds for s in judged)
    first, last = quarter_p99(judged, lat, True), quarter_p99(judged, lat, False)
    lost = sent - tally.received
    fds_after = max(fds for fds, _ in hangups)
    return Verdict(
        rss_growth, rss_growth <= RSS_TOLERANCE,
        base.fds, fds_max, fds_before, fds_after, fds_max <= base.fds and fds_after <= fds_before,
        [round(r / 2**20, 1) for _, r in hangups],
        first, last, max(last, P99_FLOOR_MS) <= P99_FACTOR * max(first, P99_FLOOR_MS),
        sent, tally.received, lost, tally.duplicates, tally.out_of_order, tally.errors,
        lost == 0 and not tally.duplicates and not tally.out_of_order and not tally.errors,
    )


def table(samples: list[Sample], warmup: float) -> str:
    lines = [
        "|     t s | sent/s | recv/s | p50 ms | p99 ms | max ms | RSS MiB | fds | server CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    previous = 0.0
    for s in samples:
        span = s.t - previous
        previous = s.t
        mark = " (warm-up)" if s.t <= warmup else ""
        lines.append(
            f"| {s.t:7.0f}{mark} | {s.sent / span:,.0f} | {s.received / span:,.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} "
            f"| {s.max_ms:.0f} | {s.rss_mib:.1f} | {s.fds} | {s.server_cpu * 100:.0f}% |"
        )
    return "\n".join(lines)


def report(v: Verdict) -> str:
    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    return "\n".join([
        f"{mark(v.rss_ok)}  RSS flat: highest sample {v.rss_growth * 100:+.1f}% over the first after warm-up (limit +{RSS_TOLERANCE * 100:.0f}%)",
        f"{mark(v.fds_ok)}  descriptors: {v.fds_first} after warm-up, at most {v.fds_max} later; "
        f"{v.fds_before} before the logins, at most {v.fds_after} after each hang-up",
        f"INFO  RSS after each hang-up (the chat's, then {len(v.rss_hangups_mib) - 1} login/hang-up cycles): "
        f"{', '.join(f'{r:.1f}' for r in v.rss_hangups_mib)} MiB",
        f"{mark(v.p99_ok)}  p99 steady: first quarter {v.p99_first_ms:.1f} ms, last quarter {v.p99_last_ms:.1f} ms "
        f"(limit {P99_FACTOR:.0f}x, floor {P99_FLOOR_MS:.0f} ms)",
        f"{mark(v.delivery_ok)}  delivery: {v.sent:,} sent, {v.received:,} received, {v.lost} lost, "
        f"{v.duplicates} duplicated, {v.out_of_order} out of order, {v.errors} errors",
        f"verdict: {mark(v.ok)}",
    ])


async def hang_up(server: Jabberd, conns: list[X.XMPPConn]) -> tuple[int, int]:
    """Close every stream as a client does; the server's (descriptors, RSS bytes) once it is idle."""
    await asyncio.gather(*(X.close(c) for c in conns))
    await quiesce(server)
    await asyncio.sleep(1.0)
    return fd_count(server.pid), rss_bytes(server.pid)


async def soak(server: Jabberd, args: argparse.Namespace) -> tuple[list[Sample], Verdict, dict]:
    """Log in, chat at a steady rate while sampling, hang up and cycle; the samples, verdict and extras."""
    pid = server.pid
    conn = await X.connect("127.0.0.1", server.c2s_port, DOMAIN, "u0", servers_module.PASSWORD)
    await X.close(conn)
    await quiesce(server)
    fds_before, rss_before = fd_count(pid), rss_bytes(pid)
    tally = Tally(args.sessions)
    t = time.monotonic()
    conns = await login_many(server, [user(i) for i in range(args.sessions)], 64, sinks=lambda i: tally.sink(), timeout=120)
    login_s = time.monotonic() - t
    print(f"{len(conns):,} sessions logged in in {login_s:.1f}s; RSS {rss_bytes(pid) / 2**20:.1f} MiB, {fd_count(pid)} fds", flush=True)
    await quiesce(server)

    n = len(conns)
    heads = [f"<message to='{user(i ^ 1)}@{DOMAIN}/bench' type='chat'><body>".encode() for i in range(n)]
    writes = [c.transport.write for c in conns]  # type: ignore[union-attr]
    tail = b"</body></message>"
    loop = asyncio.get_running_loop()
    samples: list[Sample] = []
    cpu0 = time.process_time()
    interval_latencies: list[list[int]] = []
    sent = 0
    start = loop.time()
    next_sample = start + args.interval
    last_cpu, last_t, last_sent, last_received = cpu_seconds(pid), start, 0, 0
    print(f"sending {args.rate:,.0f} msgs/s for {args.duration:.0f}s (warm-up {args.warmup:.0f}s), sampling every {args.interval:.0f}s", flush=True)
    while (now := loop.time()) - start < args.duration:
        due = int((now - start) * args.rate) - sent
        if due > 0:
            stamp = b" " + str(time.perf_counter_ns()).encode()
            for k in range(sent, sent + due):
                i = k % n
                writes[i](heads[i] + str(k).encode() + stamp + tail)
            sent += due
        if now >= next_sample:
            cpu = cpu_seconds(pid)
            lat, tally.values = tally.values, []
            interval_latencies.append(lat)
            s = Sample(
                round(now - start, 1), sent - last_sent, tally.received - last_received,
                X.percentile(lat, 0.5) / 1e6, X.percentile(lat, 0.99) / 1e6, (max(lat) if lat else 0) / 1e6,
                rss_bytes(pid) / 2**20, fd_count(pid), (cpu - last_cpu) / (now - last_t),
            )
            samples.append(s)
            print(f"  t={s.t:5.0f}s sent {s.sent:7,} recv {s.received:7,} p99 {s.p99_ms:6.1f} ms "
                  f"RSS {s.rss_mib:6.1f} MiB fds {s.fds} server {s.server_cpu * 100:3.0f}%", flush=True)
            last_cpu, last_t, last_sent, last_received = cpu, now, sent, tally.received
            next_sample += args.interval
        await asyncio.sleep(0.001)
    drain = loop.time()
    while tally.received < sent and loop.time() - drain < DRAIN_SECONDS:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a duplicate or an error may still be on its way
    harness_cpu = (time.process_time() - cpu0) / (loop.time() - start)
    # Hang up as clients do, then count what the server still holds.  Its
    # RSS does not fall back (the allocator keeps its arenas), so all log
    # in and hang up again, --cycles times: leaked sessions would add to
    # it every time, reused memory does not.
    hangups = [await hang_up(server, conns)]
    for _ in range(args.cycles):
        again = await login_many(server, [user(i) for i in range(args.sessions)], 64, sink=lambda data: None, timeout=120)
        await quiesce(server)
        hangups.append(await hang_up(server, again))
    judged = [s for s in samples if s.t > args.warmup]
    judged_lat = [lat for s, lat in zip(samples, interval_latencies) if s.t > args.warmup]
    if not judged:
        raise SystemExit("no sample after the warm-up: make --duration longer than --warmup")
    verdict = judge(judged, judged_lat, tally, sent, fds_before, hangups)
    extra = {
        "sessions": n, "login_s": login_s, "rss_before_mib": rss_before / 2**20, "harness_cpu": harness_cpu,
        "p99_all_ms": X.percentile([v for lat in judged_lat for v in lat], 0.99) / 1e6,
    }
    return samples, verdict, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 sessions, 500 msgs/s, 60 s (15 s warm-up): a smoke check")
    parser.add_argument("--sessions", type=int, help="sessions (even; default 2,000, quick 200)")
    parser.add_argument("--rate", type=float, help="messages per second, all sessions together (default 1,000, quick 500)")
    parser.add_argument("--duration", type=float, help="seconds of sending (default 600, quick 60)")
    parser.add_argument("--warmup", type=float, help="first seconds not judged (default 120, quick 15)")
    parser.add_argument("--interval", type=float, help="seconds between samples (default 10, quick 3)")
    parser.add_argument("--cycles", type=int, default=5, help="login/hang-up cycles of every session after the chat (default %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the samples and the verdict here")
    parser.add_argument("--nice", type=int, default=-10, help="priority of harness and server, as in run.py (root only)")
    parser.add_argument("--keep", action="store_true", help="keep the server's temporary data folder")
    args = parser.parse_args(argv)
    defaults = (200, 500.0, 60.0, 15.0, 3.0) if args.quick else (2000, 1000.0, 600.0, 120.0, 10.0)
    for name, value in zip(("sessions", "rate", "duration", "warmup", "interval"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.sessions += args.sessions % 2  # in pairs

    loop_name = setup_harness(args.nice)
    print(f"harness: {loop_name}, core {HARNESS_CORE}; jabberd on core 1; machine: {machine()}", flush=True)

    workroot = Path(tempfile.mkdtemp(prefix="jabberd-soak-"))
    server = Jabberd(Population(accounts=args.sessions, roster_users=0), workroot, make_certificate(workroot))
    try:
        server.prepare()
        server.start()
        print(f"jabberd {server.version()} ready (pid {server.pid})", flush=True)
        samples, verdict, extra = asyncio.run(soak(server, args))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
    print()
    print(table(samples, args.warmup))
    print()
    print(f"{extra['sessions']:,} sessions (logged in in {extra['login_s']:.1f}s), {args.rate:,.0f} msgs/s for "
          f"{args.duration:.0f}s; p99 over the judged time {extra['p99_all_ms']:.1f} ms; RSS {extra['rss_before_mib']:.1f} MiB "
          f"before the logins; harness CPU {extra['harness_cpu'] * 100:.0f}% of its core")
    print(report(verdict))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "samples": [asdict(s) for s in samples],
                                         "verdict": asdict(verdict), **extra}, indent=1))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
