"""
Real peer servers for the interop tests: Prosody and ejabberd from Debian,
each run from a config written into a temp folder, on loopback only.

The setting every interop test shares (one per process, started on first
use and stopped at exit, since the peers take seconds to start):

- jabberd (a node per test, always on the same s2s port) serves
  C{a.example} with a certificate from a test CA and C{d.example} with a
  self-signed one;
- the peer serves C{b.example} (a certificate from the same CA: both sides
  trust it, so SASL EXTERNAL) and C{c.example} (self-signed: dialback);
- jabberd finds the peer through static routes; the peer finds jabberd
  through DNS SRV records served by L{tests.s2s.dnsserver} on a loopback
  port, which each peer is told to use (Prosody: libunbound's forwarder;
  ejabberd: the Erlang resolver's inetrc) -- nothing on the machine changes.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from twisted.trial import unittest

from tests.s2s.support import LOOPBACK, TestCA, freePort, selfSigned

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dieWithParent() -> None:
    """In the child: get SIGTERM when the test process dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def waitForPort(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _stop(process: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ejabberdTarget(port: int) -> list:
    """
    An SRV record whose target is the address literal 127.0.0.1, after the
    real one (priority 10).  ejabberd 23.01 looks SRV records up with the
    Erlang resolver (inet_res, which reads our inetrc and asks our DNS
    server) but then resolves each target with C{net:getaddrinfo}, the C
    library's resolver (/etc/hosts, /etc/resolv.conf), which knows nothing
    of a.example and answers C{enoname}; it goes on to the next target,
    which getaddrinfo parses as a numeric address without any lookup.
    Prosody resolves the first target through our DNS and never needs this.
    """
    return [10, 0, port, LOOPBACK]


class World:
    """The certificates, jabberd's fixed s2s port and the DNS server every interop test shares."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="jabberd-interop-")
        os.chmod(self.dir, 0o755)  # ejabberd runs as its own user and must read the certificates
        self.ca = TestCA(self.dir)
        self.a = self.ca.issue("a.example")
        self.b = self.ca.issue("b.example")
        self.d = selfSigned(self.dir, "d.example")
        self.c = selfSigned(self.dir, "c.example")
        self.jabberdPort = freePort()
        self.dnsPort, self.dns = self.startDNS(
            {
                "a.example": {"A": [LOOPBACK]},
                "d.example": {"A": [LOOPBACK]},
                # The second target, an address literal, is for ejabberd (see ejabberdTarget).
                "_xmpp-server._tcp.a.example": {"SRV": [[0, 0, self.jabberdPort, "a.example"], ejabberdTarget(self.jabberdPort)]},
                "_xmpp-server._tcp.d.example": {"SRV": [[0, 0, self.jabberdPort, "d.example"], ejabberdTarget(self.jabberdPort)]},
                # jabberd's in-process MUC service, a domain of its own to the peers.
                "conference.a.example": {"A": [LOOPBACK]},
                "conference.d.example": {"A": [LOOPBACK]},
                "_xmpp-server._tcp.conference.a.example": {"SRV": [[0, 0, self.jabberdPort, "conference.a.example"], ejabberdTarget(self.jabberdPort)]},
                "_xmpp-server._tcp.conference.d.example": {"SRV": [[0, 0, self.jabberdPort, "conference.d.example"], ejabberdTarget(self.jabberdPort)]},
            }
        )

    @staticmethod
    def startDNS(spec: dict) -> tuple[int, subprocess.Popen]:
        port = freePort()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.s2s.dnsserver", str(port), "example", json.dumps(spec)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_dieWithParent,
        )
        line = process.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"the DNS server did not start: {line!r}")
        return port, process

    def stop(self) -> None:
        _stop(self.dns)
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: dict[str, object] = {}


def world() -> World:
    if "world" not in _shared:
        w = World()
        atexit.register(w.stop)
        _shared["world"] = w
    return _shared["world"]  # type: ignore[return-value]


# -- Prosody -------------------------------------------------------------------------

PROSODY_CONFIG = """
-- written by jabberd's s2s interop tests
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ {s2s} }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
admin_socket = "{dir}/prosody.sock"
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping", "vcard", "posix", "version" }}
modules_disabled = {{ "offline" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
s2s_timeout = 20
unbound = {{ resolvconf = false; hoststxt = false; forward = "127.0.0.1@{dns}" }}
certificates = "{dir}/certs"

VirtualHost "b.example"
    ssl = {{ certificate = "{bCert}"; key = "{bKey}"; cafile = "{ca}"; }}

VirtualHost "c.example"
    ssl = {{ certificate = "{cCert}"; key = "{cKey}"; cafile = "{ca}"; }}
"""


class Prosody:
    """Prosody from Debian serving b.example (CA certificate) and c.example (self-signed)."""

    name = "prosody"
    binary = shutil.which("prosody")
    ctl = shutil.which("prosodyctl")

    @classmethod
    def skipReason(cls) -> str | None:
        if not cls.binary or not cls.ctl:
            return "Prosody is not installed (apt-get install -y prosody lua-unbound)"
        try:
            subprocess.run(["lua5.4", "-e", "require'lunbound'"], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            return "lua-unbound is not installed (apt-get install -y lua-unbound)"
        return None

    def __init__(self, w: World) -> None:
        self.dir = tempfile.mkdtemp(prefix="jabberd-prosody-s2s-")
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "certs"))
        self.c2s, self.s2s = freePort(), freePort()
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.config, "w") as f:
            f.write(
                PROSODY_CONFIG.format(
                    dir=self.dir, c2s=self.c2s, s2s=self.s2s, dns=w.dnsPort, ca=w.ca.path,
                    bCert=w.b[0], bKey=w.b[1], cCert=w.c[0], cKey=w.c[1],
                )
            )
        self.process: subprocess.Popen | None = None
        self.accounts: set[str] = set()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config, "-F"],
            stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "stdout.log"), "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_dieWithParent,
        )
        try:
            waitForPort(self.c2s, process=self.process)
            waitForPort(self.s2s, process=self.process)
        except RuntimeError as e:
            self.stop(keep=True)
            raise RuntimeError(f"Prosody did not start ({e}); see {self.dir}/prosody.log")

    def stop(self, keep: bool = False) -> None:
        _stop(self.process)
        self.process = None
        if not keep and not os.environ.get("JABBERD_KEEP_PEERS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def register(self, address: str, password: str = "secret") -> str:
        if address not in self.accounts:
            user, _, host = address.partition("@")
            subprocess.run(
                [self.ctl, "--config", self.config, "register", user, host, password],
                check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            )
            self.accounts.add(address)
        return address

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "prosody.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# -- ejabberd ------------------------------------------------------------------------

EJABBERD_CONFIG = """
# written by jabberd's s2s interop tests
hosts:
  - b.example
  - c.example
loglevel: info
log_rotate_count: 0
certfiles:
  - "{dir}/b.pem"
  - "{dir}/c.pem"
ca_file: "{ca}"
s2s_use_starttls: required
s2s_dns_timeout: 5
s2s_dns_retries: 1
s2s_timeout: 20
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: {s2s}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
auth_method: internal
shaper: {{}}
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_vcard: {{}}
  mod_s2s_dialback: {{}}
  mod_version: {{}}
  mod_offline: {{}}
"""


class Ejabberd:
    """ejabberd from Debian serving b.example (CA certificate) and c.example (self-signed)."""

    name = "ejabberd"
    ctlBinary = "/usr/sbin/ejabberdctl"

    @classmethod
    def skipReason(cls) -> str | None:
        if not os.path.exists(cls.ctlBinary):
            return "ejabberd is not installed (apt-get install -y ejabberd)"
        try:
            pwd.getpwnam("ejabberd")
        except KeyError:
            return "ejabberd is installed but has no 'ejabberd' system user"
        if os.getuid() != 0:
            return "ejabberdctl runs ejabberd as its own user: the tests must run as root"
        return None

    def __init__(self, w: World) -> None:
        self.dir = tempfile.mkdtemp(prefix="jabberd-ejabberd-s2s-")
        os.chmod(self.dir, 0o755)
        self.c2s, self.s2s = freePort(), freePort()
        for name, (cert, key) in (("b", w.b), ("c", w.c)):
            with open(os.path.join(self.dir, f"{name}.pem"), "wb") as out:
                for part in (cert, key):
                    with open(part, "rb") as f:
                        out.write(f.read())
            os.chmod(os.path.join(self.dir, f"{name}.pem"), 0o644)
        with open(os.path.join(self.dir, "ejabberd.yml"), "w") as f:
            f.write(EJABBERD_CONFIG.format(dir=self.dir, ca=w.ca.path, c2s=self.c2s, s2s=self.s2s))
        self.node = f"s2stest{os.getpid()}@localhost"
        with open(os.path.join(self.dir, "ejabberdctl.cfg"), "w") as f:
            f.write(
                f"ERLANG_NODE={self.node}\nINET_DIST_INTERFACE=127.0.0.1\n"
                f"EJABBERD_PID_PATH={self.dir}/spool/ejabberd.pid\nERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\n"
            )
        # The Erlang resolver (inet_res) asks only our DNS server; nothing else on the machine changes.
        with open(os.path.join(self.dir, "inetrc"), "w") as f:
            f.write(
                "{resolv_conf, \"\"}.\n{hosts_file, \"\"}.\n"
                f"{{host, {{127,0,0,1}}, [\"localhost\"]}}.\n"
                f"{{nameserver, {{127,0,0,1}}, {w.dnsPort}}}.\n{{lookup, [file, dns]}}.\n"
            )
        pw = pwd.getpwnam("ejabberd")
        for sub in ("logs", "spool"):
            os.makedirs(os.path.join(self.dir, sub))
            os.chown(os.path.join(self.dir, sub), pw.pw_uid, pw.pw_gid)
        self.process: subprocess.Popen | None = None
        self.accounts: set[str] = set()

    def ctl(self) -> list[str]:
        d = self.dir
        return [self.ctlBinary, "--config-dir", d, "--config", f"{d}/ejabberd.yml", "--ctl-config", f"{d}/ejabberdctl.cfg", "--logs", f"{d}/logs", "--spool", f"{d}/spool"]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.ctl(), "foreground"],
            stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "stdout.log"), "wb"),
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,
            preexec_fn=_dieWithParent,
        )
        try:
            waitForPort(self.c2s, 90, process=self.process)
            waitForPort(self.s2s, 30, process=self.process)
            deadline = time.monotonic() + 60
            while subprocess.run([*self.ctl(), "status"], capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("ejabberdctl status never succeeded")
                time.sleep(0.5)
        except RuntimeError as e:
            self.stop(keep=True)
            raise RuntimeError(f"ejabberd did not start ({e}); see {self.dir}/logs")

    def stop(self, keep: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run([*self.ctl(), "stop"], capture_output=True, timeout=60)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        _stop(self.process)
        self.process = None
        # The VM runs under su as the ejabberd user: make sure ours is gone.
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if self.node.encode() in f.read():
                            os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        if not keep and not os.environ.get("JABBERD_KEEP_PEERS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def register(self, address: str, password: str = "secret") -> str:
        if address not in self.accounts:
            user, _, host = address.partition("@")
            subprocess.run([*self.ctl(), "register", user, host, password], check=True, capture_output=True, timeout=60)
            self.accounts.add(address)
        return address

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "logs", "ejabberd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def shared(kind: type) -> object:
    """The one running peer of C{kind} (started on first use, stopped at exit); skips if unavailable."""
    key = kind.name
    if key not in _shared:
        reason = kind.skipReason()
        if reason:
            _shared[key] = reason
        else:
            peer = kind(world())
            try:
                peer.start()
            except RuntimeError as e:
                _shared[key] = f"{kind.name} could not be started: {e}"
            else:
                atexit.register(peer.stop)
                _shared[key] = peer
    peer = _shared[key]
    if isinstance(peer, str):
        raise unittest.SkipTest(peer)
    return peer
