"""
C{jabberd-client}: the client library as a command line, for people and scripts.

Each subcommand connects, does one thing, and closes the stream properly.
Output is line-oriented (tab-separated fields, or one stanza per line) so
it pipes into other tools; problems are one line on stderr and an exit
code a script can test (see L{EXIT_CODES}). The password never appears on
the command line, where other users could read it from the process list.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, error as ierror, task
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from jabberd import jid as J
from jabberd.client.client import Client, ClientOptions
from jabberd.client.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    StanzaError,
    StreamError,
)
from jabberd.client.escaping import escapeAddress, unescapeAddress
from jabberd.client.messages import Message
from jabberd.client.presence import SHOW_VALUES
from jabberd.client.roster import subscription
from jabberd.client.vcard import fields

__all__ = ["EXIT_CODES", "main"]

PROG = "jabberd-client"

EXIT_OK = 0
EXIT_XMPP_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_AUTH = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_XMPP_ERROR: "the server or the other entity answered with an XMPP error (stanza or stream error)",
    EXIT_USAGE: "usage error (bad option, bad JID, no password available)",
    EXIT_CONNECTION: "connection or TLS failure, or no answer in time",
    EXIT_AUTH: "authentication failed (wrong password, mechanism refused, server not proven)",
}

PASSWORD_ENV = "JABBERD_CLIENT_PASSWORD"

EPILOG = (
    "password: from $%s, --password-file, or a prompt on a terminal; never on the command line.\n"
    "exit codes:\n" % PASSWORD_ENV
    + "".join(f"  {code}  {meaning}\n" for code, meaning in EXIT_CODES.items())
    + "  130  interrupted (listen exits 0 when interrupted: that is how it ends)\n"
    "examples:\n"
    "  export JABBERD_CLIENT_JID=alice@example.com\n"
    "  jabberd-client send bob@example.com -m 'lunch?'\n"
    "  tail -f build.log | jabberd-client send --type headline ops@example.com\n"
    "  jabberd-client listen --json | jq .body\n"
    "  jabberd-client roster add bob@example.com --name Bob --group Friends\n"
    "  jabberd-client --host 127.0.0.1 --trust server.pem disco example.com\n"
)


class UsageError(Exception):
    """Bad input from the user: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, like every other error of ours, plus where to look.
        sys.stderr.write(f"{PROG}: error: {message} (see {PROG} --help)\n")
        sys.exit(EXIT_USAGE)


def buildParser() -> argparse.ArgumentParser:
    """The argument parser (also the source of --help)."""
    parser = _Parser(
        prog=PROG,
        description="XMPP client (XEP-0211 Basic Client): send and receive messages, "
        "manage the roster and presence, query service discovery, ping, vCards.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jid", default=os.environ.get("JABBERD_CLIENT_JID"), help="your JID, user@domain[/resource] (default: $JABBERD_CLIENT_JID)")
    parser.add_argument("--password-file", metavar="FILE", help="read the password from the first line of FILE")
    parser.add_argument("--host", help="connect to HOST instead of looking up the domain's SRV records")
    parser.add_argument("--port", type=int, help="port on --host (default 5222, 5223 with --direct-tls)")
    parser.add_argument("--direct-tls", action="store_true", help="TLS from the first byte (XEP-0368) instead of STARTTLS")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--trust", metavar="CERTFILE", help="trust the certificates in this PEM file (a private CA or the server's own) instead of the system's CAs")
    trust.add_argument("--insecure", action="store_true", help="do not verify the server's certificate (test servers only)")
    parser.add_argument("--cert", metavar="PEMFILE", help="client certificate (with its key) for SASL EXTERNAL")
    parser.add_argument("--key", metavar="PEMFILE", help="private key of --cert, if not in the same file")
    parser.add_argument("--mechanism", action="append", metavar="NAME", help="allow only this SASL mechanism (repeatable, in order of preference)")
    parser.add_argument("--compress", action="store_true", help="use zlib stream compression (XEP-0138) if offered; leaks information under TLS")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="for connecting and for each answer (default 30)")
    parser.add_argument("-v", "--verbose", action="store_true", help="report progress on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    send = commands.add_parser("send", help="send a message, or one per line of stdin, to one or more JIDs")
    send.add_argument("recipients", nargs="+", metavar="JID")
    send.add_argument("-m", "--message", help="the message text (default: each line of stdin is one message)")
    send.add_argument("--type", default="chat", choices=("chat", "normal", "headline"), help="message type (default chat)")
    send.add_argument("--subject")
    send.add_argument(
        "--wait",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="after the server has read the messages, how long to wait for bounces (default 0.5)",
    )

    listen = commands.add_parser("listen", help="print incoming stanzas, one per line, until interrupted")
    listen.add_argument("--json", action="store_true", help="one JSON object per stanza instead of XML")
    listen.add_argument("--count", type=int, metavar="N", help="exit after N stanzas")
    listen.add_argument("--priority", type=int, default=0, help="presence priority (default 0)")
    listen.add_argument("--no-presence", action="store_true", help="send no presence (then only stanzas to this full JID arrive)")

    roster = commands.add_parser("roster", help="list or change the roster and presence subscriptions")
    roster.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=("list", "add", "remove", "subscribe", "approve", "deny", "cancel", "unsubscribe"),
        help="list (default); add/remove a contact; subscribe (ask for its presence), "
        "approve/deny its request, cancel its subscription, unsubscribe from it",
    )
    roster.add_argument("contact", nargs="?", metavar="JID")
    roster.add_argument("--name", help="with add: the contact's display name")
    roster.add_argument("--group", action="append", default=[], help="with add: a group (repeatable)")

    presence = commands.add_parser("presence", help="set presence, then list the contacts seen online")
    presence.add_argument("--show", choices=SHOW_VALUES)
    presence.add_argument("--status")
    presence.add_argument("--priority", type=int, default=0)
    presence.add_argument("--to", action="append", metavar="JID", help="directed presence to JID only (repeatable)")
    presence.add_argument("--wait", type=float, default=1.0, metavar="SECONDS", help="how long to collect presence (default 1)")

    disco = commands.add_parser("disco", help="service discovery: identities, features and items of a JID")
    disco.add_argument("target", nargs="?", metavar="JID", help="default: your server")
    disco.add_argument("--node")
    which = disco.add_mutually_exclusive_group()
    which.add_argument("--info", action="store_true", help="only disco#info")
    which.add_argument("--items", action="store_true", help="only disco#items")

    ping = commands.add_parser("ping", help="XMPP ping (XEP-0199) a JID and print the round trip")
    ping.add_argument("target", nargs="?", metavar="JID", help="default: your server")

    vcard = commands.add_parser("vcard", help="print a vCard (XEP-0054)")
    vcard.add_argument("target", nargs="?", metavar="JID", help="default: your own")
    vcard.add_argument("--xml", action="store_true", help="print the vCard element as XML")
    return parser


# -- input ----------------------------------------------------------------------


def userJID(text: str, what: str = "JID") -> JID:
    """
    A JID a person typed: as is if valid, else with its localpart escaped
    (XEP-0106: "d'artagnan@example.com" becomes "d\\27artagnan@example.com").
    """
    try:
        return J.parse(text)
    except J.InvalidJID as first:
        try:
            return J.parse(escapeAddress(text))
        except (J.InvalidJID, ValueError):
            raise UsageError(f"{what} {text!r} is not a valid JID: {first}") from None


def readPassword(args: argparse.Namespace) -> str | None:
    """The password from the environment, a file or a prompt (never argv)."""
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError(f"cannot read --password-file: {e.strerror or e}") from None
    if args.cert:
        return None  # SASL EXTERNAL: the certificate is the credential
    if sys.stdin.isatty() or sys.stderr.isatty():
        try:
            return getpass.getpass(f"password for {args.jid}: ")
        except (EOFError, KeyboardInterrupt):
            raise UsageError("no password entered") from None
    raise UsageError(f"no password: set ${PASSWORD_ENV}, use --password-file, or run on a terminal")


def clientFor(args: argparse.Namespace, reactor: Any) -> Client:
    """The Client the options describe (raises UsageError for bad input)."""
    if not args.jid:
        raise UsageError("--jid is required (or set $JABBERD_CLIENT_JID)")
    me = userJID(args.jid, "--jid")
    if me.user is None and not args.cert:
        raise UsageError("--jid needs a localpart (user@domain)")
    if args.port is not None and not args.host:
        raise UsageError("--port needs --host")
    password = readPassword(args)
    options = ClientOptions(
        host=args.host,
        port=args.port,
        directTLS=True if args.direct_tls else None,
        trust=args.trust,
        insecure=args.insecure,
        certificate=args.cert,
        key=args.key,
        mechanisms=args.mechanism,
        compression=args.compress,
        timeout=args.timeout,
        requestTimeout=args.timeout,
        identityType="bot",
    )
    try:
        return Client(me, password, options, reactor)
    except ValueError as e:
        raise UsageError(str(e)) from None


# -- output ---------------------------------------------------------------------

_FIRST = ("from", "to", "type", "id")


def stanzaLine(element: domish.Element) -> str:
    """
    A stanza as one line of XML: 'from', 'to', 'type', 'id' first (so
    lines compare equal whatever order the server wrote them in), line
    breaks in text written as character references.
    """
    ordered = {k: element.attributes[k] for k in _FIRST if k in element.attributes}
    ordered.update((k, v) for k, v in element.attributes.items() if k not in ordered)
    element.attributes = ordered
    xml = element.toXml(defaultUri="jabber:client")
    return xml.replace("\r", "&#13;").replace("\n", "&#10;")


def stanzaJSON(element: domish.Element) -> str:
    """A stanza as one JSON object: addressing, the common children, and the XML."""
    record: dict[str, Any] = {"stanza": element.name}
    for key in _FIRST:
        if element.getAttribute(key) is not None:
            record[key] = element[key]
    for child in element.elements():
        if child.uri == element.uri and child.name in ("body", "subject", "thread", "show", "status", "priority"):
            record.setdefault(child.name, str(child))
        elif child.name == "error":
            condition = next((c.name for c in child.elements() if c.name != "text"), None)
            record["error"] = condition
    record["xml"] = stanzaLine(element)
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


def say(line: str) -> None:
    """One line on stdout, flushed at once (stdout may be a pipe someone is reading)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def note(args: argparse.Namespace, line: str) -> None:
    """A progress line on stderr with -v."""
    if args.verbose:
        sys.stderr.write(f"{PROG}: {line}\n")
        sys.stderr.flush()


async def roundTrip(client: Client) -> None:
    """
    Wait until the server has read everything sent so far: any answer to
    a ping of the server (even an error) comes after it processed them.
    """
    try:
        await client.ping(client.jid.host)
    except StanzaError:
        pass


# -- commands -------------------------------------------------------------------


async def cmdSend(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    recipients = [userJID(r, "recipient") for r in args.recipients]
    sent: dict[str, str] = {}
    bounced: list[Message] = []

    def onMessage(message: Message) -> None:
        if message.type == "error" and message.id in sent:
            bounced.append(message)

    client.messages.addListener(onMessage)

    def sendText(text: str) -> None:
        for to in recipients:
            sent[client.messages.send(to, text, args.type, args.subject)] = to.full()

    if args.message is not None:
        sendText(args.message)
    else:
        await _eachStdinLine(reactor, sendText)
    await roundTrip(client)
    # The server has read everything; a bounce may still need a store lookup.
    if args.wait > 0 and not bounced:
        await task.deferLater(reactor, args.wait, lambda: None)
    if bounced:
        first = bounced[0]
        condition = first.error.condition if first.error is not None else "undefined-condition"
        raise _Bounce(f"message to {sent[first.id]} bounced: {condition}")
    note(args, f"sent {len(sent)} message(s)")
    return EXIT_OK


class _Bounce(Exception):
    """A message came back as an error: exit 1."""


def _eachStdinLine(reactor: Any, handle: Callable[[str], None]) -> defer.Deferred:
    """
    Call C{handle} with each line of stdin as it arrives (a pipe from a
    long-running program works too); fires at end of input. A daemon
    thread reads, so an interrupted run never waits on a blocked read.
    """
    done: defer.Deferred = defer.Deferred()

    def reader() -> None:
        try:
            for raw in sys.stdin.buffer:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    reactor.callFromThread(handle, line)
        finally:
            reactor.callFromThread(lambda: done.called or done.callback(None))

    threading.Thread(target=reader, name="stdin", daemon=True).start()
    return done


async def cmdListen(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    done: defer.Deferred = defer.Deferred()
    seen = [0]
    # Requests the library answers by itself (disco, ping) are protocol
    # chatter, not something the user is listening for.
    answered = {str(feature) for feature in client.disco.ownInfo().features}

    def onStanza(element: domish.Element) -> None:
        if done.called:
            return
        if element.name == "iq" and element.getAttribute("type") in ("get", "set"):
            payload = next(element.elements(), None)
            if payload is not None and payload.uri in answered:
                return
        try:
            say(stanzaJSON(element) if args.json else stanzaLine(element))
        except BrokenPipeError:
            done.callback(EXIT_OK)
            return
        seen[0] += 1
        if args.count is not None and seen[0] >= args.count:
            done.callback(EXIT_OK)

    client.addObserver(onStanza)
    if not args.no_presence:
        client.presence.available(priority=args.priority)
    note(args, f"listening as {client.jid.full()}")

    def ended(why: Exception | None) -> None:
        # None: we closed it (interrupted); anything else ended it for us.
        if not done.called:
            done.errback(why) if why is not None else done.callback(EXIT_OK)

    client.disconnected.addCallback(ended)
    return await done


async def cmdRoster(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    action = args.action
    if action == "list":
        if args.contact:
            raise UsageError("roster list takes no JID")
        items = await client.roster.get()
        for bare in sorted(items):
            item = items[bare]
            say(
                "\t".join(
                    (
                        bare,
                        subscription(item),
                        "subscribe" if item.pendingOut else "-",
                        item.name or unescapeAddress(bare),
                        ",".join(sorted(item.groups)),
                    )
                )
            )
        return EXIT_OK
    if not args.contact:
        raise UsageError(f"roster {action} needs a JID")
    contact = userJID(args.contact, "contact")
    if action == "add":
        await client.roster.add(contact, args.name, args.group)
    elif action == "remove":
        await client.roster.remove(contact)
    else:
        {
            "subscribe": client.presence.subscribe,
            "approve": client.presence.approve,
            "deny": client.presence.deny,
            "cancel": client.presence.cancel,
            "unsubscribe": client.presence.unsubscribe,
        }[action](contact)
        await roundTrip(client)
    note(args, f"roster {action} {contact.full()}: done")
    return EXIT_OK


async def cmdPresence(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    if args.to:
        for to in args.to:
            client.presence.available(args.show, args.status, args.priority, to=userJID(to, "--to"))
    else:
        client.presence.available(args.show, args.status, args.priority)
    await task.deferLater(reactor, args.wait, lambda: None)
    me = client.jid.full()
    for bare in sorted(client.presence.contacts):
        for resource, p in sorted(client.presence.contacts[bare].items()):
            full = f"{bare}/{resource}" if resource else bare
            if full == me:
                continue
            say("\t".join((full, p.show or "available", str(p.priority), p.status or "")))
    return EXIT_OK


async def cmdDisco(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    target = userJID(args.target, "target") if args.target else J.parse(client.jid.host)
    node = args.node or ""
    if not args.items:
        info = await client.disco.info(target, node)
        for item in info:
            if hasattr(item, "category"):
                say("\t".join(("identity", item.category, item.type, item.name or "")))
            elif isinstance(item, str):
                say(f"feature\t{item}")
            else:
                for field in item.fieldList:
                    say("\t".join(("form", item.formNamespace or "", field.var or "", ",".join(str(v) for v in field.values))))
    if not args.info:
        try:
            items = await client.disco.items(target, node)
        except StanzaError:
            if not args.items:
                return EXIT_OK  # info was asked too and answered; no items is fine
            raise
        for entry in items:
            say("\t".join(("item", entry.entity.full() if entry.entity else "", entry.nodeIdentifier, entry.name or "")))
    return EXIT_OK


async def cmdPing(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    target = userJID(args.target, "target") if args.target else J.parse(client.jid.host)
    seconds = await client.ping(target)
    say(f"pong from {target.full()} in {seconds * 1000:.1f} ms")
    return EXIT_OK


async def cmdVCard(client: Client, args: argparse.Namespace, reactor: Any) -> int:
    target = userJID(args.target, "target") if args.target else None
    vcard = await client.vcard.get(target)
    if args.xml:
        say(stanzaLine(vcard))
    else:
        for path, value in fields(vcard):
            say(f"{path}\t{value}".replace("\n", " "))
    return EXIT_OK


COMMANDS = {
    "send": cmdSend,
    "listen": cmdListen,
    "roster": cmdRoster,
    "presence": cmdPresence,
    "disco": cmdDisco,
    "ping": cmdPing,
    "vcard": cmdVCard,
}


# -- running ----------------------------------------------------------------------


def exitCodeFor(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception."""
    if isinstance(error, UsageError):
        return EXIT_USAGE, f"error: {error}"
    if isinstance(error, AuthenticationFailed):
        return EXIT_AUTH, str(error)
    if isinstance(error, ConnectionFailed):  # TLSFailed included
        return EXIT_CONNECTION, str(error)
    if isinstance(error, (xmlstream.TimeoutError, defer.TimeoutError, ierror.TimeoutError)):
        return EXIT_CONNECTION, "no answer in time"
    if isinstance(error, StreamError):
        return EXIT_XMPP_ERROR, str(error)
    if isinstance(error, StanzaError):
        text = f" ({error.text})" if error.text else ""
        return EXIT_XMPP_ERROR, f"error reply: {error.condition}{text}"
    if isinstance(error, _Bounce):
        return EXIT_XMPP_ERROR, str(error)
    if isinstance(error, (ierror.ConnectionDone, ierror.ConnectionLost)):
        return EXIT_CONNECTION, "the connection was lost"
    return EXIT_CONNECTION, f"unexpected error: {error.__class__.__name__}: {error}"


async def run(args: argparse.Namespace, reactor: Any) -> int:
    """Connect, run the subcommand, close. Exceptions carry the exit code (L{exitCodeFor})."""
    client = clientFor(args, reactor)
    note(args, f"connecting as {client.requestedJID.full()}")
    await client.connect()
    binding = f", channel binding {client.authenticator.channelBinding}" if client.authenticator.channelBinding else ""
    note(args, f"logged in as {client.jid.full()} with {client.mechanism}{binding}")
    # Interrupted (Ctrl-C): still close the stream properly before exiting.
    trigger = reactor.addSystemEventTrigger("before", "shutdown", client.close)
    try:
        return await COMMANDS[args.command](client, args, reactor)
    finally:
        await client.close()
        reactor.removeSystemEventTrigger(trigger)


def main(argv: list[str] | None = None) -> int:
    """Entry point of C{jabberd-client}; returns the exit code."""
    args = buildParser().parse_args(argv)
    from twisted.internet import reactor

    outcome: dict[str, int] = {}

    def finished(result: Any) -> None:
        if isinstance(result, int):
            outcome["code"] = result
        else:
            error = result.value if hasattr(result, "value") else result
            code, message = exitCodeFor(error)
            outcome["code"] = code
            sys.stderr.write(f"{PROG}: {message}\n")
        try:
            reactor.stop()
        except ierror.ReactorNotRunning:
            pass  # already stopping: interrupted

    def start() -> None:
        defer.ensureDeferred(run(args, reactor)).addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    if "code" in outcome:
        return outcome["code"]
    return EXIT_OK if args.command == "listen" else EXIT_INTERRUPTED
