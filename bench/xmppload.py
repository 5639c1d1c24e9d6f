"""
The load generator's XMPP client: raw sockets on asyncio (uvloop when it is
installed), precomputed stanzas, and no XML parser at all.

A connection is an L{XMPPConn} protocol.  While it negotiates it buffers
what it reads and L{XMPPConn.element} waits for the next complete top-level
element of a given name, found with C{bytes.find}.  Once a scenario takes
over it installs a I{sink}: a function that sees every chunk as it arrives
and counts or timestamps what it needs, again with C{bytes.find}.

SCRAM is cheap on this side: every account has the same password, so the
PBKDF2 result (SaltedPassword) and the keys derived from it are computed once
per (salt, iterations) and cached.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
from typing import Callable

HEADER = (
    "<?xml version='1.0'?><stream:stream to='{host}' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
CLOSE = b"</stream:stream>"


def install_loop() -> str:
    """Use uvloop if it is installed; return the event loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {uvloop.__version__}"


def client_tls_context() -> ssl.SSLContext:
    """TLS as a client would do it, minus verification (self-signed bench certs)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class XMPPError(Exception):
    """The server answered something the flow did not expect (or closed)."""


# -- SCRAM, with the expensive part cached ---------------------------------------

_keys: dict[tuple[str, bytes, int, str], tuple[bytes, bytes]] = {}


def _client_keys(password: str, salt: bytes, iterations: int, hash_name: str) -> tuple[bytes, bytes]:
    """(ClientKey, StoredKey) for a password, cached: all bench accounts share one."""
    key = (password, salt, iterations, hash_name)
    found = _keys.get(key)
    if found is None:
        salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", hash_name)
        found = _keys[key] = (client_key, hashlib.new(hash_name, client_key).digest())
    return found


def scram_final(password: str, client_first_bare: str, server_first: bytes, hash_name: str = "sha1") -> bytes:
    """The client-final-message (RFC 5802 §3) for a server-first-message."""
    attrs = dict(part.split(b"=", 1) for part in server_first.split(b","))
    nonce, salt, iterations = attrs[b"r"].decode(), base64.b64decode(attrs[b"s"]), int(attrs[b"i"])
    client_key, stored_key = _client_keys(password, salt, iterations, hash_name)
    without_proof = f"c=biws,r={nonce}"
    auth_message = f"{client_first_bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.digest(stored_key, auth_message, hash_name)
    proof = (int.from_bytes(client_key, "big") ^ int.from_bytes(signature, "big")).to_bytes(len(client_key), "big")
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


# -- the connection ----------------------------------------------------------------


class XMPPConn(asyncio.Protocol):
    """One client connection; see the module docstring."""

    __slots__ = ("transport", "buf", "waiter", "want", "sink", "closed", "user")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[bytes, bytes]] | None = None
        self.want: tuple[bytes, ...] = ()
        self.sink: Callable[[bytes], None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.user = ""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
            return
        self.buf += data
        if self.waiter is not None:
            self._scan()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(XMPPError(f"connection closed while waiting for {self.want!r}: {bytes(self.buf[-300:])!r}"))

    # negotiation helpers
    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _scan(self) -> None:
        """Complete the waiter if the buffer holds a whole element it wants."""
        buf, best = self.buf, None
        for name in self.want:
            start = buf.find(b"<" + name)
            if start < 0 or (best is not None and start > best[0]):
                continue
            gt = buf.find(b">", start)
            if gt < 0:
                continue
            if buf[gt - 1] == 0x2F:  # '/': an empty element
                best = (start, gt + 1, name)
                continue
            close = buf.find(b"</" + name + b">", gt)
            if close >= 0:
                best = (start, close + len(name) + 3, name)
        if best is not None:
            start, end, name = best
            element = bytes(buf[start:end])
            del buf[:end]
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():  # done: cancelled by a timeout
                w.set_result((name, element))

    async def element(self, *names: bytes) -> tuple[bytes, bytes]:
        """The next complete element named one of C{names}: (name, its bytes)."""
        self.want = names
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self._scan()
        return await waiter

    def set_sink(self, sink: Callable[[bytes], None]) -> None:
        """From now on every chunk goes to C{sink}; whatever is buffered first."""
        self.sink = sink
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            sink(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _text(element: bytes) -> bytes:
    """The character data of a simple element such as <challenge>...</challenge>."""
    start = element.find(b">") + 1
    end = element.rfind(b"</")
    return element[start:end] if end > start else b""


async def connect(
    host: str,
    port: int,
    domain: str,
    user: str,
    password: str,
    mechanism: str = "SCRAM-SHA-1",
    starttls: bool = False,
    tls: ssl.SSLContext | None = None,
    resource: str = "bench",
    sink: Callable[[bytes], None] | None = None,
    after_bind: bytes = b"<presence/>",
    timeout: float = 30.0,
) -> XMPPConn:
    """
    Log in: stream, [STARTTLS], SASL, bind; then send C{after_bind} (initial
    presence by default) with the C{sink} already installed.  XMPPError if
    any step fails or the whole takes longer than C{timeout} seconds.
    """
    holder: list[XMPPConn] = []
    try:
        async with asyncio.timeout(timeout):
            return await _connect(host, port, domain, user, password, mechanism, starttls, tls, resource, sink, after_bind, holder)
    except TimeoutError:
        where = ""
        if holder:
            holder[0].abort()
            where = f" (waiting for {holder[0].want!r}; last bytes {bytes(holder[0].buf[-200:])!r})"
        raise XMPPError(f"login of {user} took more than {timeout}s{where}") from None


async def _connect(
    host: str,
    port: int,
    domain: str,
    user: str,
    password: str,
    mechanism: str,
    starttls: bool,
    tls: ssl.SSLContext | None,
    resource: str,
    sink: Callable[[bytes], None] | None,
    after_bind: bytes,
    holder: list[XMPPConn],
) -> XMPPConn:
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(XMPPConn, host, port)
    conn.user = user
    holder.append(conn)
    try:
        return await _negotiate(loop, transport, conn, domain, user, password, mechanism, starttls, tls, resource, sink, after_bind)
    except BaseException:
        transport.abort()
        raise


async def _negotiate(loop, transport, conn, domain, user, password, mechanism, starttls, tls, resource, sink, after_bind) -> XMPPConn:  # type: ignore[no-untyped-def]
    header = HEADER.format(host=domain).encode()
    conn.send(header)
    _, features = await conn.element(b"stream:features")
    if starttls:
        if b"<starttls" not in features:
            raise XMPPError("STARTTLS not offered")
        conn.send(STARTTLS)
        name, _ = await conn.element(b"proceed", b"failure")
        if name != b"proceed":
            raise XMPPError("STARTTLS refused")
        conn.buf.clear()
        new = await loop.start_tls(transport, conn, tls or client_tls_context(), server_hostname=domain)
        conn.transport = new  # type: ignore[assignment]
        conn.send(header)
        _, features = await conn.element(b"stream:features")
    if f">{mechanism}<".encode() not in features:
        raise XMPPError(f"{mechanism} not offered: {features[:400]!r}")
    if mechanism == "PLAIN":
        initial = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        conn.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{initial}</auth>".encode())
    else:
        hash_name = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mechanism]
        bare = f"n={user},r={base64.b64encode(os.urandom(15)).decode()}"
        initial = base64.b64encode(f"n,,{bare}".encode()).decode()
        conn.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{initial}</auth>".encode())
        name, element = await conn.element(b"challenge", b"failure")
        if name != b"challenge":
            raise XMPPError(f"SASL failure: {element!r}")
        final = scram_final(password, bare, base64.b64decode(_text(element)), hash_name)
        conn.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>".encode())
    name, element = await conn.element(b"success", b"failure")
    if name != b"success":
        raise XMPPError(f"SASL failure for {user}: {element!r}")
    conn.send(header)
    await conn.element(b"stream:features")
    conn.send(
        b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"
        + resource.encode()
        + b"</resource></bind></iq>"
    )
    _, element = await conn.element(b"iq")
    if b"type='result'" not in element and b'type="result"' not in element:
        raise XMPPError(f"bind failed: {element!r}")
    if sink is not None:
        conn.set_sink(sink)
    if after_bind:
        conn.send(after_bind)
    return conn


async def close(conn: XMPPConn, timeout: float = 10.0) -> None:
    """End the stream and wait until the server has closed it too."""
    conn.sink = lambda data: None
    conn.send(CLOSE)
    try:
        await asyncio.wait_for(asyncio.shield(conn.closed), timeout)
    except asyncio.TimeoutError:
        conn.abort()


def percentile(values: list[int] | list[float], q: float) -> float:
    """The q-quantile (0..1) of C{values} by nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])
