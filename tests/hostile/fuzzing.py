"""
Hypothesis strategies for hostile client streams, shared by the short CI
pass (tests/hostile/test_fuzz.py) and the long run (bench/fuzz_streams.py).

Two kinds of input: mutations of valid transcripts (bytes inserted, deleted,
flipped, duplicated, cut), which get deep into the stream, and token soup
built from XML's sharp edges (DTDs, entities, CDATA, namespaces, odd UTF-8).
Each is also cut into random chunks, since the parser must give the same
answer however the bytes arrive.
"""

from __future__ import annotations

from hypothesis import strategies as st

OPEN = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)

#: Stanzas a client might send after the header (and after authentication).
STANZAS = [
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1hbGljZSxyPWFiYw==</auth>",
    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</response>",
    "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>",
    "<message to='bob@localhost' type='chat' id='m1'><body>hi &amp; &lt;3</body></message>",
    "<presence><show>away</show><status>zzz</status><priority>5</priority></presence>",
    "<presence to='bob@localhost' type='subscribe'/>",
    "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
    "<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
    "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item id='1'><x xmlns='y'/></item></publish></pubsub></iq>",
    "<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>",
    " ",
    "</stream:stream>",
]

#: XML's sharp edges, for token soup.
TOKENS = [
    OPEN,
    "<?xml version='1.0' encoding='UTF-16'?>",
    "<!DOCTYPE x [<!ENTITY a 'aaaa'>]>",
    "<!ENTITY b SYSTEM 'file:///etc/passwd'>",
    "&a;", "&amp;", "&#0;", "&#x110000;", "&#65;",
    "<![CDATA[", "]]>", "<!--", "-->", "<?pi x?>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    "<stream:features/>", "<stream:error/>",
    "<a xmlns:p='u' p:x='1'>", "<p:b>", "</p:b>", "<x xml:lang='en'>", "</x>",
    "<message", " to='", "'", ">", "/>", "</message>", "<body>", "</body>",
    "<iq type='get' id='", "<iq", "</iq>", "<query xmlns='jabber:iq:roster'/>",
    "xmlns=''", "xmlns='jabber:client'", "xmlns:stream=''",
    "\x00", "\ufeff", "\ud7ff", "\U0010ffff", "é", "<", "&", "'", '"', "=",
    "a" * 100,
]


def _mutate(seed: bytes, ops: list[tuple[int, str, bytes]]) -> bytes:
    data = bytearray(seed)
    for position, op, blob in ops:
        i = position % (len(data) + 1)
        if op == "insert":
            data[i:i] = blob
        elif op == "delete":
            del data[i : i + len(blob) + 1]
        elif op == "flip" and i < len(data):
            data[i] ^= (blob[0] if blob else 0x80) or 1
        elif op == "duplicate":
            data[i:i] = data[i : i + len(blob) * 8 + 1]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


def transcripts(header: bool = True, opening: str = OPEN, stanzas: list[str] = STANZAS) -> st.SearchStrategy[bytes]:
    """Valid-looking transcripts: a header (C{opening}, when C{header}) and 1-6 of C{stanzas}."""
    body = st.lists(st.sampled_from(stanzas), min_size=1, max_size=6).map("".join)
    if header:
        body = body.map(lambda s: opening + s)
    return body.map(lambda s: s.encode("utf-8"))


def mutated(header: bool = True, opening: str = OPEN, stanzas: list[str] = STANZAS) -> st.SearchStrategy[bytes]:
    """A transcript with up to 8 byte-level mutations."""
    op = st.tuples(
        st.integers(0, 4096),
        st.sampled_from(["insert", "delete", "flip", "duplicate", "truncate"]),
        st.binary(min_size=0, max_size=16),
    )
    return st.builds(_mutate, transcripts(header, opening, stanzas), st.lists(op, max_size=8))


def soup() -> st.SearchStrategy[bytes]:
    """Token soup: XML fragments, odd characters and random text, glued together."""
    piece = st.one_of(st.sampled_from(TOKENS), st.text(max_size=20))
    return st.lists(piece, max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))


def streams(header: bool = True, opening: str = OPEN, stanzas: list[str] = STANZAS) -> st.SearchStrategy[bytes]:
    """Any of the hostile inputs above (transcripts of C{opening} and C{stanzas}), or plain random bytes."""
    return st.one_of(mutated(header, opening, stanzas), soup(), st.binary(max_size=512))


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """C{data} cut into pieces of C{sizes} (cycled), as TCP may deliver it."""
    if not sizes:
        return [data] if data else []
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(data[i : i + n])
        i += n
        k += 1
    return out


chunkSizes = st.lists(st.integers(1, 64), max_size=8)


# -- web and component entry points (tests/hostile/test_web.py, test_component_faults.py) --

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"

#: BOSH request bodies (XEP-0124/0206): creation, restart, pause, terminate, payloads, wrong wrappers.
BOSH_BODIES = [
    f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='1000' to='localhost' wait='1' hold='1' ver='1.11' xmpp:version='1.0'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='1000' to='localhost' wait='1' hold='0'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='99999999999999999999' to='localhost'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='1001' sid='x' type='terminate'/>",
    f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='1001' sid='x' xmpp:restart='true'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='1001' sid='x' pause='1'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='1000' to='localhost' newkey='a94a8fe5ccb19ba61c4c0873d391e987982fbbd3'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='1000' to='[::1]' ack='1' content='text/html'/>",
    f"<body xmlns='{NS_HTTPBIND}' rid='1001' sid='x'>" + "".join(STANZAS[4:9]) + "</body>",
    "<body rid='1000' to='localhost'/>",
    f"<stream:stream xmlns='{NS_HTTPBIND}' xmlns:stream='http://etherx.jabber.org/streams'/>",
]


def boshBodies() -> st.SearchStrategy[bytes]:
    """BOSH request bodies, valid-looking or mutated, plus token soup and random bytes."""
    op = st.tuples(
        st.integers(0, 512),
        st.sampled_from(["insert", "delete", "flip", "duplicate", "truncate"]),
        st.binary(min_size=0, max_size=16),
    )
    seed = st.sampled_from(BOSH_BODIES).map(lambda s: s.encode("utf-8"))
    return st.one_of(seed, st.builds(_mutate, seed, st.lists(op, max_size=6)), soup(), st.binary(max_size=256))


def boshPayloads() -> st.SearchStrategy[str]:
    """What a bound BOSH client may put inside its <body/>: stanza sequences, some mutated (as text)."""
    return st.one_of(
        st.lists(st.sampled_from(STANZAS[4:13]), min_size=1, max_size=4).map("".join),
        mutated(header=False).map(lambda b: b.decode("utf-8", "replace")),
    )


#: Parts of an HTTP/1.1 request, for malformed HTTP.
HTTP_LINES = [
    "POST /http-bind HTTP/1.1", "GET /xmpp-websocket HTTP/1.1", "GET /.well-known/host-meta HTTP/1.1",
    "OPTIONS /http-bind HTTP/1.1", "POST /http-bind HTTP/1.0", "BREW / HTCPCP/1.0", "POST http-bind",
    "Host: localhost", "Content-Type: text/xml", "Content-Length: 20", "Content-Length: -1",
    "Content-Length: 99999999999999999999", "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked",
    "Connection: keep-alive", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol: xmpp", "Origin: null",
    "X-Forwarded-For: 10.0.0.1, ::1, junk", "X-Forwarded-Proto: https", "Expect: 100-continue",
    " folded", "NoColon", ":", "a" * 200,
]


def httpRequests() -> st.SearchStrategy[bytes]:
    """Malformed HTTP: shuffled request lines and headers, odd line ends, a body (chunked or not)."""
    line = st.one_of(st.sampled_from(HTTP_LINES), st.text(max_size=30))
    end = st.sampled_from(["\r\n", "\n", "\r", ""])

    def build(lines: list[str], eol: str, tail: str) -> bytes:
        return (eol.join(lines) + eol + eol + tail).encode("utf-8", "surrogatepass")

    tail = st.one_of(st.sampled_from(BOSH_BODIES + ["5\r\nhello\r\n0\r\n\r\n", "ffffffff\r\n", "0\r\n\r\n"]), st.text(max_size=40))
    return st.one_of(st.builds(build, st.lists(line, min_size=1, max_size=10), end, tail), st.binary(max_size=256))


#: RFC 7395 messages: framing elements and stanzas, each a whole WebSocket message.
WS_MESSAGES = [
    f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>",
    f"<open xmlns='{NS_FRAMING}' to='other.example' version='1.0'/>",
    f"<open xmlns='{NS_FRAMING}'/>",
    f"<close xmlns='{NS_FRAMING}'/>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
] + [s for s in STANZAS if s.strip() and not s.startswith("</")]


def wsMessages() -> st.SearchStrategy[list[bytes]]:
    """A sequence of 1-6 WebSocket text messages, some mutated or random."""
    seed = st.sampled_from(WS_MESSAGES).map(lambda s: s.encode("utf-8"))
    op = st.tuples(
        st.integers(0, 256),
        st.sampled_from(["insert", "delete", "flip", "duplicate", "truncate"]),
        st.binary(min_size=0, max_size=8),
    )
    message = st.one_of(seed, st.builds(_mutate, seed, st.lists(op, max_size=4)), soup(), st.binary(max_size=64))
    return st.lists(message, min_size=1, max_size=6)


def wsFrame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes | None = b"abcd", length: int | None = None) -> bytes:
    """One RFC 6455 frame as a client would send it (masked unless C{mask} is None), any field forgeable."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    maskBit = 0x80 if mask is not None else 0
    if n < 126:
        header = bytes([first, maskBit | n])
    elif n < 65536:
        header = bytes([first, maskBit | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, maskBit | 127]) + n.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def wsFrames() -> st.SearchStrategy[bytes]:
    """Raw RFC 6455 frames with forged opcodes, reserved bits, masks, lengths and fragmentation."""
    frame = st.builds(
        wsFrame,
        st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB, 0xF]),
        st.one_of(st.sampled_from(WS_MESSAGES).map(str.encode), st.binary(max_size=40)),
        st.booleans(),
        st.integers(0, 7),
        st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
        st.one_of(st.none(), st.sampled_from([0, 1, 125, 126, 65535, 65536, 2**40, 2**63 - 1])),
    )
    return st.lists(frame, min_size=1, max_size=5).map(b"".join)


COMPONENT_OPEN = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
)

#: What an authenticated component might send (from inside its domain, or not).
COMPONENT_STANZAS = [
    "<message from='room@{domain}/nick' to='alice@localhost' type='groupchat' id='c1'><body>hi</body></message>",
    "<presence from='room@{domain}/nick' to='alice@localhost'/>",
    "<iq from='{domain}' to='localhost' type='get' id='c2'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq from='{domain}' to='alice@localhost' type='result' id='c3'/>",
    "<message from='alice@localhost' to='bob@localhost'><body>spoof</body></message>",
    "<message to='alice@localhost'/>",
    "<handshake>0000</handshake>",
    "<db:result xmlns:db='jabber:server:dialback' to='localhost' from='{domain}'>k</db:result>",
    " ",
    "</stream:stream>",
]


def componentStanzas(domain: str) -> st.SearchStrategy[bytes]:
    """1-6 component stanzas for C{domain}, the sequence mutated at the byte level."""
    body = st.lists(st.sampled_from([s.format(domain=domain) for s in COMPONENT_STANZAS]), min_size=1, max_size=6)
    op = st.tuples(
        st.integers(0, 2048),
        st.sampled_from(["insert", "delete", "flip", "duplicate", "truncate"]),
        st.binary(min_size=0, max_size=16),
    )
    return st.builds(_mutate, body.map(lambda parts: "".join(parts).encode()), st.lists(op, max_size=6))


def componentStreams(domain: str) -> st.SearchStrategy[bytes]:
    """Whole component streams before the handshake: a header (or not) and anything after it."""
    header = st.sampled_from([COMPONENT_OPEN.format(domain=domain), COMPONENT_OPEN.format(domain="x"), OPEN, ""])
    return st.one_of(
        st.builds(lambda h, rest: h.encode() + rest, header, componentStanzas(domain)),
        soup(),
        st.binary(max_size=256),
    )


# -- JIDs (tests/hostile/test_jid_fuzz.py) --

#: Characters with something to say about stringprep: prohibited, mapped, bidi, odd widths.
JID_CHARS = [
    "a", "Z", "0", ".", "-", "_", "\u00e9", "\u00df", "\u0130", "\u03a3", "\ufb01", "\u2163", "\uff21",
    "\u00a0", "\u3000", "\u200b", "\u00ad", "\u0000", "\u007f", "\u0085", "\ue000", "\ufffd", "\U000f0000",
    "\u05d0", "\u0627", "\u0661", "\u200e", "\u202e", "\u0340", "\u2ff0", "\ufff9",
    '"', "&", "'", "/", ":", "<", ">", "@", " ", "\t",
    "\U0001f600", "\u0301", "\u1100", "\u3131",
]


def jidParts(max_size: int = 12) -> st.SearchStrategy[str]:
    """Strings mixing stringprep's interesting characters with arbitrary text."""
    return st.one_of(
        st.lists(st.sampled_from(JID_CHARS), min_size=0, max_size=max_size).map("".join),
        st.text(max_size=max_size),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=max_size),
    )


def jids() -> st.SearchStrategy[str]:
    """JID-shaped strings: [node@]domain[/resource] from L{jidParts}, or any text."""
    part = jidParts()
    shaped = st.builds(
        lambda n, d, r: (n + "@" if n is not None else "") + d + ("/" + r if r is not None else ""),
        st.none() | part, part, st.none() | part,
    )
    return st.one_of(shaped, st.text(max_size=40))


#: An RFC 6455 opening handshake asking for the xmpp subprotocol (raw-frame fuzzing).
WS_HANDSHAKE = (
    b"GET /xmpp-websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: xmpp\r\n\r\n"
)
