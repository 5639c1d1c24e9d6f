"""
Coverage-guided fuzzing (issue 11) with atheris, libFuzzer for Python: the
stream parser and the JID parser, the two places every untrusted byte goes
through.  Hypothesis (tests/hostile/) draws from strategies we wrote;
atheris watches which branches each input reaches and mutates towards new
ones, so it finds what we did not think to write.

    pip install -e '.[bench]'        # atheris (a wheel; no clang needed)
    python bench/fuzz_atheris.py parser -max_total_time=300
    python bench/fuzz_atheris.py jid -max_total_time=300
    python bench/fuzz_atheris.py parser crash-<sha1>     # replay one input

Everything after the target name goes to libFuzzer (-max_total_time=,
-runs=, -jobs=, corpus folders, a crash file to replay).  Without a corpus
folder the run uses (and keeps) /tmp/jabberd-atheris/<target>; an empty
corpus folder is first seeded with valid streams and what the hypothesis
strategies of tests/hostile/fuzzing.py draw.

What must hold, or the input is a crash:

parser: the first byte chooses how the rest is cut (one read, as a BOSH
  body or a WebSocket message arrives, or chunks of 1-64 bytes) and
  whether the parser is released between chunks (what the c2s factory
  does to idle streams); the rest is the stream.  Only StreamError may leave
  StreamParser.feed, within 1 s; every delivered element is at most
  MAX_DEPTH - 1 deep and holds no more text than the input had bytes; and
  the stanzas and the verdict are those of the same bytes fed one at a
  time, the strictest way to feed (it checks the stanza size after every
  byte), up to what that one counts and a bigger read may not see: the
  bytes before a stanza and its closing tag.  So: what the byte-wise parser
  takes, any cut takes; what it refuses at twice the limit, any cut refuses
  (maybe at another byte or for another reason: expat flushes text later
  when it has more bytes), and no stanza it does not deliver gets through.
jid: the input as UTF-8 (what expat hands over); only InvalidJID may leave
  jabberd.jid.parse, and a parsed JID's string form parses to the same JID.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["jabberd", "twisted.words.protocols.jabber.xmpp_stringprep", "stringprep", "encodings.idna"]):
    from jabberd import jid as J  # noqa: E402
    from jabberd.xmlstream import StreamError, StreamParser  # noqa: E402

#: Small limits, so that inputs of a few KiB reach them.
MAX_STANZA = 256
MAX_DEPTH = 8
DEADLINE = 1.0


# -- the stream parser ------------------------------------------------------------


def _nodes(element) -> tuple[int, int]:
    """(depth, characters of text and attribute values) of a domish element."""
    deepest, chars = 0, sum(len(str(v)) for v in element.attributes.values())
    for child in element.children:
        if isinstance(child, str):
            chars += len(child)
        else:
            d, c = _nodes(child)
            deepest, chars = max(deepest, d), chars + c
    return deepest + 1, chars


def parse(data: bytes, size: int, release: bool, maxStanza: int = MAX_STANZA) -> list:
    """The events of C{data} fed in chunks of C{size}, releasing the parser between chunks if asked."""
    events: list = []
    parser = StreamParser(
        lambda attrs: events.append(("start",)),
        lambda element: events.append(("element", element.toXml(), *_nodes(element))),
        lambda: events.append(("end",)),
        maxStanza,
        MAX_DEPTH,
    )
    try:
        for i in range(0, len(data), size):
            if release:
                parser.release()
            parser.feed(data[i : i + size])
    except StreamError as e:
        events.append(("error", e.condition))
    return events


def elements(events: list) -> list:
    return [e for e in events if e[0] == "element"]


def checkParser(data: bytes) -> None:
    if not data:
        return
    stream = data[1:]
    size = len(stream) or 1 if data[0] & 128 else (data[0] & 63) + 1
    release = bool(data[0] & 64)
    start = time.monotonic()
    got = parse(stream, size, release)
    bytewise = parse(stream, 1, False)
    if time.monotonic() - start > DEADLINE:
        raise AssertionError(f"parsing {len(stream)} bytes took over {DEADLINE} s")
    for event in elements(got):
        _, xml, depth, chars = event
        if depth > MAX_DEPTH - 1:
            raise AssertionError(f"element {depth} deep delivered (limit {MAX_DEPTH})")
        if chars > len(stream):
            raise AssertionError(f"element holds {chars} characters from {len(stream)} bytes")
    if got == bytewise:
        return
    failed = f"chunks of {size} (release={release}) gave\n{got}\nbytewise:\n{bytewise}"
    # What the byte-wise parser takes, any cut takes: it is the strictest.
    if not bytewise or bytewise[-1][0] != "error":
        raise AssertionError(failed)
    # It also counts, read by read, bytes a bigger read does not: those
    # before a stanza (or the XML declaration before the header) and the
    # closing tag.  So compare with it at twice the limit: what that one
    # refuses must be refused however the stream is cut (maybe at another
    # byte, or for another reason: expat flushes text later when it has more
    # bytes), and no stanza it does not deliver may get through.
    loose = parse(stream, 1, False, 2 * MAX_STANZA)
    if loose and loose[-1][0] == "error" and (not got or got[-1][0] != "error"):
        raise AssertionError(failed + f"\nbyte-wise with twice the limit:\n{loose}")
    if elements(got) != elements(loose)[: len(elements(got))]:
        raise AssertionError(failed + f"\nbyte-wise with twice the limit:\n{loose}")


# -- JIDs ---------------------------------------------------------------------------


def checkJID(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # expat hands over only valid UTF-8
    try:
        parsed = J.parse.__wrapped__(text)  # around the cache: run the code every time
    except J.InvalidJID:
        return
    again = J.parse.__wrapped__(parsed.full())
    if (again.user, again.host, again.resource) != (parsed.user, parsed.host, parsed.resource):
        raise AssertionError(f"{text!r} parsed as {parsed.full()!r}, which parses as {again.full()!r}")


TARGETS = {"parser": checkParser, "jid": checkJID}


# -- seeds --------------------------------------------------------------------------


def seeds(target: str) -> list[bytes]:
    """Valid streams and stanzas, some near the limits, and what the hypothesis strategies draw."""
    from tests.hostile import fuzzing
    from tests.hostile.test_fuzz import collect

    if target == "jid":
        drawn = [c.encode() for c in fuzzing.JID_CHARS]
        drawn += [b"alice@localhost/r", b"[::1]", b"xn--mnchen-3ya.de", b"a@b.example./res/with/slash"]
        return drawn + [j.encode("utf-8", "surrogatepass") for j in collect(fuzzing.jids(), 200)]
    drawn = []
    big = "x" * (MAX_STANZA + 32)  # between the limit and twice it, for mutations to push over
    stanzas = fuzzing.STANZAS + ["".join(fuzzing.STANZAS)]
    stanzas += [f"<message to='{big}'/><presence/>", f"<message><x a='{big}'/></message>", f"<iq><q>{big}</q></iq>"]
    for cut in (0, 7, 64 | 7, 128):  # 1-byte reads, 8-byte reads, 8 with releases, one read
        drawn += [bytes([cut]) + (fuzzing.OPEN + s).encode() for s in stanzas]
    return drawn + [bytes([n & 255]) + data for n, data in enumerate(collect(fuzzing.streams(), 200))]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options] [corpus folders | crash file]")
    target = sys.argv.pop(1)
    paths = [a for a in sys.argv[1:] if not a.startswith("-")]
    if not paths:
        paths = [os.path.join("/tmp/jabberd-atheris", target)]
        os.makedirs(paths[0], exist_ok=True)
        sys.argv.append(paths[0])
    for corpus in paths:
        if os.path.isdir(corpus) and not os.listdir(corpus):
            for n, seed in enumerate(seeds(target)):
                with open(os.path.join(corpus, f"seed-{n:04d}"), "wb") as f:
                    f.write(seed)
    if not any(a.startswith("-max_len=") for a in sys.argv):
        sys.argv.append("-max_len=4096")
    atheris.Setup(sys.argv, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
