"""
Run the benchmark scenarios against jabberd and, when installed, Prosody and
ejabberd; print one table with each server's figure and jabberd's ratios.

    python bench/run.py                  # every scenario, full size
    python bench/run.py chat logins      # some scenarios
    python bench/run.py --quick          # small numbers, a few minutes
    python bench/run.py --servers jabberd,prosody --json out.json --profile prof/

The harness pins itself to core 0 and each server to core 1 (taskset), so
the two never compete; run it as root with nothing else busy if you can.
Ratios (jabberd / other) are what to read: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import xmppload as X  # noqa: E402
from scenarios import SCENARIOS, Figure, Settings, quiesce, run_scenario  # noqa: E402
import servers as servers_module  # noqa: E402
from servers import SERVERS, Population, Server, available, make_certificate, set_priority  # noqa: E402

HARNESS_CORE = 0

#: The issue's targets: row prefix -> (other server, "higher"/"lower" is better, bound).
TARGETS: dict[str, tuple[str, str, float]] = {
    "logins/s": ("ejabberd", "higher", 1.0),
    "chat msgs/s": ("ejabberd", "higher", 1.0),
    "idle RSS": ("prosody", "lower", 0.8),
    "MUC fan-out": ("ejabberd", "higher", 1.0),
    "presence storm": ("ejabberd", "lower", 1.0),
}


def target_of(row: str) -> tuple[str, str, float] | None:
    for prefix, target in TARGETS.items():
        if row.startswith(prefix):
            return target
    return None


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: dict[str, dict[str, Figure]], servers: list[str]) -> str:
    """A Markdown table: one row per figure, one column per server, then ratios."""
    rows = list(dict.fromkeys(r for per in results.values() for r in per))
    others = [s for s in servers if s != "jabberd"]
    head = ["figure", *servers, *(f"jabberd/{o}" for o in others if "jabberd" in servers), "target", "harness CPU max"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row]
        for s in servers:
            f = results.get(s, {}).get(row)
            cells.append("n/a" if f is None else fmt(f.value) + (f" {f.note.strip()}" if f.note.strip().startswith("†") else ""))
        j = results.get("jabberd", {}).get(row)
        ratios: dict[str, float] = {}
        if "jabberd" in servers:
            for o in others:
                f = results.get(o, {}).get(row)
                if j is not None and f is not None and j.value is not None and f.value:
                    ratios[o] = j.value / f.value
                    cells.append(f"{ratios[o]:.2f}×")
                else:
                    cells.append("n/a")
        target = target_of(row)
        if target is None or "CPU-s" in row:
            cells.append("")
        else:
            other, better, bound = target
            sign = "≥" if better == "higher" else "≤"
            verdict = ""
            if other in ratios:
                ok = ratios[other] >= bound if better == "higher" else ratios[other] <= bound
                verdict = " ✓" if ok else " ✗"
            cells.append(f"{sign} {bound:.1f}× {other}{verdict}")
        cpus = [f.client_cpu for s in servers if (f := results.get(s, {}).get(row)) is not None and f.value is not None]
        cells.append(f"{max(cpus) * 100:.0f}%" if cpus else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(results: dict[str, dict[str, Figure]]) -> list[str]:
    out = []
    for server, figures in results.items():
        for row, f in figures.items():
            note = f.note.strip()
            if note and not note.startswith("†"):
                out.append(f"- {server}, {row}: {note}")
            elif note.startswith("†") and len(note) > 1:
                out.append(f"- {server}, {row}: {note[1:].strip()}")
    return out


class Profiler:
    """py-spy sampling the server (raw collapsed stacks) while a scenario runs."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.proc = subprocess.Popen(
            [spy, "record", "-p", str(pid), "-o", str(path), "--format", "raw", "--rate", "200", "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        return top_functions(self.path)


def top_functions(path: Path, n: int = 15) -> str:
    """Self and total sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    if not path.exists():
        return "(no profile written)"
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        samples += c
        # per function, not per line: "name (file:line)" -> "name (file)"
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + c
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + c
    if not samples:
        return "(no samples)"
    lines = [f"{samples} samples (GIL held); self% total% function (file)"]
    for frame, c in sorted(own.items(), key=lambda kv: -kv[1])[:n]:
        lines.append(f"{100 * c / samples:5.1f} {100 * total[frame] / samples:5.1f}  {frame}")
    return "\n".join(lines)


async def bench_all(servers: list[Server], names: list[str], settings: Settings, profile: Path | None) -> dict[str, dict[str, Figure]]:
    """
    Scenario by scenario, each against every server in turn: the figures a
    ratio compares are measured close together in time, under the same
    background noise.  The servers not being measured sit idle.
    """
    results: dict[str, dict[str, Figure]] = {s.name: {} for s in servers}
    for server in servers:
        # warm-up login: caches, code paths, and a check that the accounts exist
        conn = await X.connect("127.0.0.1", server.c2s_port, "localhost", "u0", "bench-password")
        await X.close(conn)
    ours = {os.getpid()}
    for server in servers:
        ours.add(server.pid)
        if server.proc is not None:
            ours.add(server.proc.pid)
    for name in names:
        for server in servers:
            settled = await quiesce(server)
            if settled > 1.0:
                print(f"  ({server.name} was busy for {settled:.0f}s after the previous scenario)", flush=True)
            neighbours = await busy_neighbours(ours)
            if neighbours:
                print(f"  (busy on this machine before {name} on {server.name}: {neighbours})", flush=True)
            t = time.monotonic()
            prof = None
            if profile is not None and server.name == "jabberd":
                prof = Profiler(server.pid, profile / f"jabberd-{name}.txt")
            try:
                got = await run_scenario(name, server, settings)
            except Exception as e:  # a scenario must never end the run
                got = {SCENARIOS[name]: Figure(None, "", f"n/a: {type(e).__name__}: {str(e)[:150]}")}
            if prof is not None:
                top = prof.stop()
                (profile / f"jabberd-{name}-top.txt").write_text(top + "\n")
                print(f"  py-spy top of jabberd during {name}:\n{top}", flush=True)
            results[server.name].update(got)
            for row, f in got.items():
                busy = f.detail.get("server_busy")
                server_load = f" server {busy * 100:3.0f}%" if busy is not None else ""
                print(f"  {server.name:9} {row:42} {fmt(f.value):>10} {f.unit:15} harness {f.client_cpu * 100:3.0f}%{server_load} {f.note}", flush=True)
                for step in f.detail.get("steps", []):
                    print(f"      step {step}", flush=True)
            print(f"  ({name} on {server.name} took {time.monotonic() - t:.0f}s)", flush=True)
    return results


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """(command name, user+system clock ticks) of every process."""
    out: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (comm, int(fields[11]) + int(fields[12]))
    return out


async def busy_neighbours(ours: set[int], seconds: float = 1.0, threshold: float = 0.2) -> str:
    """
    Other processes that used more than C{threshold} of a core over
    C{seconds} (another engineer's tests, a soak run): they compete with the
    server for its core, so a figure measured next to them is suspect.
    """
    before = _cpu_ticks()
    await asyncio.sleep(seconds)
    after = _cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (comm, ticks) in after.items():
        if pid in ours or pid not in before:
            continue
        share = (ticks - before[pid][1]) / hz / seconds
        if share > threshold:
            busy.append(f"{comm}[{pid}] {share * 100:.0f}%")
    return ", ".join(busy)


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.platform()}, Python {platform.python_version()}"


def setup_harness(nice: int) -> str:
    """
    Pin the harness to its core, give it and the servers it starts priority
    C{nice} (root only), lift the open-file limit, install the event loop;
    the loop's name.  Shared by run.py and soak.py so both measure alike.
    """
    os.sched_setaffinity(0, {HARNESS_CORE})
    if os.geteuid() == 0:
        try:
            os.setsid()  # our own autogroup, rather than the caller's session's
        except OSError:
            pass
        set_priority(nice)
        servers_module.NICE = nice
    else:
        print(f"(not root: cannot set priority {nice}; measuring at the default priority)")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return X.install_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=f"any of: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small numbers: the whole run in about three minutes")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write every figure (with step details) here")
    parser.add_argument("--profile", type=Path, help="py-spy jabberd during each scenario; write stacks into this folder")
    parser.add_argument("--nice", type=int, default=-10,
                        help="scheduling priority for the harness and the servers (inherited); default %(default)s "
                             "so that other jobs on a shared machine disturb the measurement less (root only)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' temporary data folders")
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    settings = Settings(args.quick)

    loop_name = setup_harness(args.nice)

    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    classes, skipped = available(wanted)
    accounts = max([1000, *settings.idle_sizes]) if "idle" in names else 1000
    population = Population(accounts=accounts, roster_users=settings.storm_users)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    print(f"harness: {loop_name}, core {HARNESS_CORE}; servers on core 1; {'quick' if args.quick else 'full'} run")
    print(f"machine: {machine()}")
    results: dict[str, dict[str, Figure]] = {}
    versions: dict[str, str] = {}
    workroot = Path(tempfile.mkdtemp(prefix="jabberd-bench-"))
    cert = make_certificate(workroot)
    running: list[Server] = []
    try:
        for cls in classes:
            server = cls(population, workroot, cert)
            versions[server.name] = server.version()
            print(f"{server.name} {versions[server.name]}: preparing {accounts:,} accounts ...", flush=True)
            try:
                t = time.monotonic()
                server.prepare()
                server.start()
                running.append(server)
                print(f"  ready in {time.monotonic() - t:.1f}s (pid {server.pid})", flush=True)
            except Exception as e:
                print(f"  {server.name} failed to start: {e}", flush=True)
                server.stop()
                results[server.name] = {SCENARIOS[n]: Figure(None, "", f"n/a: {str(e)[:150]}") for n in names}
        results.update(asyncio.run(bench_all(running, names, settings, args.profile)))
    finally:
        for server in running:
            server.stop()
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)

    servers = [c.name for c in classes]
    print()
    print(f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}; "
          + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    print()
    print(table(results, servers))
    extra = notes(results)
    if extra:
        print("\n" + "\n".join(extra))
    if args.json:
        args.json.write_text(json.dumps({s: {r: vars(f) for r, f in fs.items()} for s, fs in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
