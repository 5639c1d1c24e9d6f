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


def transcripts(header: bool = True) -> st.SearchStrategy[bytes]:
    """Valid-looking transcripts: a header (when C{header}) and 1-6 stanzas."""
    body = st.lists(st.sampled_from(STANZAS), min_size=1, max_size=6).map("".join)
    if header:
        body = body.map(lambda s: OPEN + s)
    return body.map(lambda s: s.encode("utf-8"))


def mutated(header: bool = True) -> st.SearchStrategy[bytes]:
    """A transcript with up to 8 byte-level mutations."""
    op = st.tuples(
        st.integers(0, 4096),
        st.sampled_from(["insert", "delete", "flip", "duplicate", "truncate"]),
        st.binary(min_size=0, max_size=16),
    )
    return st.builds(_mutate, transcripts(header), st.lists(op, max_size=8))


def soup() -> st.SearchStrategy[bytes]:
    """Token soup: XML fragments, odd characters and random text, glued together."""
    piece = st.one_of(st.sampled_from(TOKENS), st.text(max_size=20))
    return st.lists(piece, max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))


def streams(header: bool = True) -> st.SearchStrategy[bytes]:
    """Any of the hostile inputs above, or plain random bytes."""
    return st.one_of(mutated(header), soup(), st.binary(max_size=512))


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
