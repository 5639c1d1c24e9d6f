"""
The servers under test: jabberd, Prosody, ejabberd.

Each is configured from a template kept next to this file, with a fresh
temporary data directory, free loopback ports and the same self-signed EC
certificate; seeded with the same accounts (and rosters for the presence
storm); started pinned to core 1 (`taskset -c 1`); measured through
/proc/<pid> (CPU seconds, RSS); and stopped cleanly.

Account seeding never runs a key derivation per account where it can be
avoided: every bench account has the same password, so jabberd and Prosody
get one precomputed SCRAM credential (same salt) copied into every account.
ejabberd imports a XEP-0227 (PIEFXIS) file and hashes each password itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Iterable

HERE = Path(__file__).resolve().parent
DOMAIN = "localhost"
MUC_DOMAIN = "conference.localhost"
PASSWORD = "bench-password"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVER_CORE = "1"
#: Scheduling priority of the servers (set by run.py --nice).  With kernel
#: autogroups, plain nice only ranks processes within one session, so the
#: value is also written to /proc/self/autogroup of each server's session.
NICE = 0


@dataclass
class Population:
    """Who exists on every server: u0..u{accounts-1}; u0..u{roster_users-1} have rosters."""

    accounts: int
    roster_users: int
    contacts: int = 20  # mutual ('both') contacts each, on a ring

    def contacts_of(self, i: int) -> list[int]:
        half = self.contacts // 2
        n = self.roster_users
        return [(i + d) % n for d in range(-half, half + 1) if d != 0]


def user(i: int) -> str:
    return f"u{i}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed EC P-256 certificate for localhost: (cert, key, cert+key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN), x509.DNSName(MUC_DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certPem = cert.public_bytes(serialization.Encoding.PEM)
    keyPem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths = directory / "cert.pem", directory / "key.pem", directory / "combined.pem"
    for path, data in zip(paths, (certPem, keyPem, certPem + keyPem)):
        path.write_bytes(data)
        path.chmod(0o644)
    return paths


def scram_sha1(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) of RFC 5802 for SHA-1."""
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
    clientKey = hmac.digest(salted, b"Client Key", "sha1")
    return hashlib.sha1(clientKey).digest(), hmac.digest(salted, b"Server Key", "sha1")


# -- /proc ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def descendant_named(pid: int, comm: str) -> int | None:
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            if Path(f"/proc/{p}/comm").read_text().strip() == comm:
                return p
            todo += _children(p)
        except OSError:
            continue
    return None


# -- the servers ----------------------------------------------------------------------


class Server:
    """One server under test; subclasses fill in configure/seed/command."""

    name = "?"
    plain_without_tls = True  # offers SASL PLAIN on a plaintext stream
    muc = True  # has conference.localhost

    def __init__(self, population: Population, workroot: Path, cert: tuple[Path, Path, Path]) -> None:
        self.population = population
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=workroot))
        self.dir.chmod(0o755)
        workroot.chmod(0o755)  # ejabberd runs as its own user and must get in
        self.cert, self.key, self.combined = cert
        self.c2s_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the process whose CPU and memory are measured

    @staticmethod
    def missing() -> str | None:
        """Why this server cannot run here (not installed), or None."""
        return None

    def version(self) -> str:
        return ""

    def fill(self, template: str, target: Path, **values: object) -> None:
        text = Template((HERE / template).read_text()).substitute(
            dir=self.dir, c2s_port=self.c2s_port, cert=self.cert, key=self.key, combined=self.combined, **values
        )
        target.write_text(text)

    def prepare(self) -> None:
        """Write the configuration and seed accounts and rosters (server stopped)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_extra(self) -> dict:
        """More subprocess.Popen arguments (user, environment)."""
        return {}

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.dir / "stdout.log", "ab")
        options: dict = {"cwd": self.dir, **self.popen_extra()}
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *self.command()],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_raise_nofile,
            **options,
        )
        prioritise(self.proc.pid)
        deadline = time.monotonic() + timeout
        while not _listening(self.c2s_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.dir}/stdout.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen on {self.c2s_port} within {timeout}s")
            time.sleep(0.1)
        self.pid = self.measured_pid()
        prioritise(self.proc.pid)  # again, for processes started since
        self.after_start()

    def measured_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def after_start(self) -> None:
        """Seeding that needs the running server."""

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.graceful_stop()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.proc = None

    def graceful_stop(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def set_priority(nice: int) -> None:
    """This process's nice value, and its session's autogroup's (see L{NICE})."""
    if not nice:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass


def prioritise(leader: int) -> None:
    """
    Give a server's session (autogroup) and process group the L{NICE} value.

    From the parent, which is root, because a server may run as another
    user (ejabberd) who could not lower its own nice value.
    """
    if not NICE:
        return
    try:
        with open(f"/proc/{leader}/autogroup", "w") as f:
            f.write(str(NICE))
        os.setpriority(os.PRIO_PGRP, leader, NICE)
    except OSError:
        pass


def _raise_nofile() -> None:
    import resource

    # As high as allowed: the hard limit may not be raised (no CAP_SYS_RESOURCE
    # in some containers), and 10,000 sessions need about 10,000 descriptors.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Jabberd(Server):
    name = "jabberd"
    plain_without_tls = False  # PLAIN needs TLS, by design
    muc = True  # conference.localhost, in-process

    def version(self) -> str:
        import jabberd

        return getattr(jabberd, "__version__", "")

    def prepare(self) -> None:
        self.fill("jabberd.toml", self.dir / "jabberd.toml", datadir=self.dir / "data")
        p = self.population
        subprocess.run(
            [sys.executable, str(HERE / "seed_jabberd.py"), str(self.dir / "jabberd.toml"), str(p.accounts), str(p.roster_users), str(p.contacts), PASSWORD],
            check=True,
        )

    def command(self) -> list[str]:
        twistd = str(Path(sys.executable).with_name("twistd"))
        return [twistd, "-n", "--pidfile=", "jabberd", "--config", str(self.dir / "jabberd.toml")]


class Prosody(Server):
    name = "prosody"

    @staticmethod
    def missing() -> str | None:
        return None if shutil.which("prosody") else "not installed (bench/install-peers.sh)"

    def version(self) -> str:
        return _dpkg_version("prosody")

    def prepare(self) -> None:
        data = self.dir / "data"
        self.fill("prosody.cfg.lua", self.dir / "prosody.cfg.lua", datadir=data)
        salt = "bench-salt-0123456789"
        stored, server = scram_sha1(PASSWORD, salt.encode(), 4096)
        account = (
            f'return {{\n\t["iteration_count"] = 4096;\n\t["salt"] = "{salt}";\n'
            f'\t["stored_key"] = "{stored.hex()}";\n\t["server_key"] = "{server.hex()}";\n}};\n'
        )
        accounts = data / DOMAIN / "accounts"
        rosters = data / DOMAIN / "roster"
        accounts.mkdir(parents=True)
        rosters.mkdir()
        p = self.population
        for i in range(p.accounts):
            (accounts / f"{user(i)}.dat").write_text(account)
        for i in range(p.roster_users):
            items = "".join(
                f'\t["{user(j)}@{DOMAIN}"] = {{ ["subscription"] = "both"; ["groups"] = {{}}; }};\n' for j in p.contacts_of(i)
            )
            (rosters / f"{user(i)}.dat").write_text(
                f'return {{\n\t[false] = {{ ["version"] = 1; ["pending"] = {{}}; }};\n{items}}};\n'
            )

    def command(self) -> list[str]:
        return ["prosody", "--config", str(self.dir / "prosody.cfg.lua"), "-F"]


class Ejabberd(Server):
    name = "ejabberd"

    @staticmethod
    def missing() -> str | None:
        if not shutil.which("ejabberdctl") and not os.path.exists("/usr/sbin/ejabberdctl"):
            return "not installed (bench/install-peers.sh)"
        try:
            pwd.getpwnam("ejabberd")
        except KeyError:
            return "no 'ejabberd' system user"
        return None

    def version(self) -> str:
        return _dpkg_version("ejabberd")

    def ctl(self) -> list[str]:
        d = self.dir
        return ["/usr/sbin/ejabberdctl", "--config-dir", str(d), "--config", str(d / "ejabberd.yml"),
                "--ctl-config", str(d / "ejabberdctl.cfg"), "--logs", str(d / "logs"), "--spool", str(d / "spool")]

    def prepare(self) -> None:
        d = self.dir
        self.fill("ejabberd.yml", d / "ejabberd.yml")
        node = f"bench{os.getpid()}@localhost"
        (d / "ejabberdctl.cfg").write_text(
            f'ERLANG_NODE={node}\nINET_DIST_INTERFACE=127.0.0.1\nERL_MAX_PORTS=65536\n'
            f'EJABBERD_PID_PATH={d}/spool/ejabberd.pid\nERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n'
        )
        if os.path.exists("/etc/ejabberd/inetrc"):
            shutil.copy("/etc/ejabberd/inetrc", d / "inetrc")
        pw = pwd.getpwnam("ejabberd")
        for sub in ("logs", "spool"):
            (d / sub).mkdir()
            os.chown(d / sub, pw.pw_uid, pw.pw_gid)
        p = self.population
        with open(d / "users.xml", "w") as f:
            f.write("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n")
            f.write(f"<host jid='{DOMAIN}'>\n")
            for i in range(p.accounts):
                f.write(f"<user name='{user(i)}' password='{PASSWORD}'>")
                if i < p.roster_users:
                    f.write("<query xmlns='jabber:iq:roster'>")
                    f.writelines(f"<item jid='{user(j)}@{DOMAIN}' subscription='both'/>" for j in p.contacts_of(i))
                    f.write("</query>")
                f.write("</user>\n")
            f.write("</host>\n</server-data>\n")
        (d / "users.xml").chmod(0o644)

    def command(self) -> list[str]:
        return [*self.ctl(), "foreground"]

    def popen_extra(self) -> dict:
        # As the ejabberd user ourselves rather than through ejabberdctl's
        # `su`: su applies PAM's limits (1,024 open files), too few for the
        # idle scenario; this way the raised limit is inherited.
        env = dict(os.environ, HOME=pwd.getpwnam("ejabberd").pw_dir)
        return {"user": "ejabberd", "group": "ejabberd", "env": env, "cwd": self.dir / "spool"}

    def measured_pid(self) -> int:
        assert self.proc is not None
        for _ in range(50):
            pid = descendant_named(self.proc.pid, "beam.smp")
            if pid:
                return pid
            time.sleep(0.1)
        raise RuntimeError("ejabberd: no beam.smp process found")

    def after_start(self) -> None:
        # The listener opens before every module is up; wait for the node.
        deadline = time.monotonic() + 60
        while subprocess.run([*self.ctl(), "status"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("ejabberd: `ejabberdctl status` never succeeded")
            time.sleep(0.5)
        # --no-timeout: importing 10,000 accounts takes minutes (a PBKDF2 each)
        result = subprocess.run([*self.ctl(), "--no-timeout", "import_piefxis", str(self.dir / "users.xml")], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ejabberd: import_piefxis failed: {result.stdout}{result.stderr}")

    def graceful_stop(self) -> None:
        if subprocess.run([*self.ctl(), "stop"], capture_output=True).returncode != 0:
            super().graceful_stop()

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        # the node's epmd registration goes with it; epmd itself is shared
        # (other Erlang services use it) and is left alone.


def _dpkg_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return result.stdout.strip()


SERVERS: dict[str, type[Server]] = {"jabberd": Jabberd, "prosody": Prosody, "ejabberd": Ejabberd}


def available(names: Iterable[str]) -> tuple[list[type[Server]], dict[str, str]]:
    """The server classes that can run, and why the others cannot."""
    ok, skipped = [], {}
    for name in names:
        cls = SERVERS[name]
        why = cls.missing()
        if why:
            skipped[name] = why
        else:
            ok.append(cls)
    return ok, skipped
