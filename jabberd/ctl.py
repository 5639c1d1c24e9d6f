"""
`jabberdctl`: accounts, certificates, configuration check, database upgrade.

It reads the same `--config` as the server and talks to the same store
directly and synchronously: there is no reactor to keep responsive in a
command that does one thing and exits.  SQLite allows this next to a
running server (WAL, a busy timeout, one short transaction per command);
PostgreSQL does anyway.

Every failure is one line on stderr (``jabberdctl: ...``) and a stable exit
code from L{ExitCode}, so scripts can tell "already exists" from "database
down" without parsing text.  `check` is the exception that proves the rule:
its whole purpose is to list every problem, one per line.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import getpass
import os
import sys
import tomllib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from jabberd import jid as J
from jabberd.config import Config, ConfigError, load

if TYPE_CHECKING:
    from jabberd.store import Store


class ExitCode(enum.IntEnum):
    """
    The exit statuses of `jabberdctl`; stable, documented in `--help` and
    docs/operations.md.  Never renumber one: scripts depend on them.
    """

    OK = 0
    #: the command failed: `check` found problems, or an unexpected error
    FAILURE = 1
    #: the command line is wrong: unknown option, invalid JID, a host this
    #: server does not serve, an empty or mismatched password
    USAGE = 2
    #: the configuration file is missing, unreadable or invalid
    CONFIG = 3
    #: the account (adduser) or the certificate file (cert generate) already exists
    EXISTS = 4
    #: no such account (passwd, deluser)
    NOT_FOUND = 5
    #: the database cannot be reached, or its schema needs `jabberdctl db upgrade`
    DATABASE = 6


EPILOG = """\
exit status:
  0  success
  1  the command failed: `check` found problems, or an unexpected error
  2  bad command line: unknown option, invalid JID, a host this server does
     not serve, an empty or mismatched password
  3  the configuration file is missing, unreadable or invalid
  4  already exists: the account (adduser) or the certificate file (cert generate)
  5  no such account (passwd, deluser)
  6  the database cannot be reached, or needs `jabberdctl db upgrade`

The password of adduser/passwd is prompted for twice on a terminal, read as
one line from standard input otherwise (`printf '%s\\n' "$PW" | jabberdctl
adduser a@example.org`), or given with --password (visible to other local users in
the process list: prefer standard input in scripts).
"""


class CtlError(Exception):
    """A problem to report as one line, with the exit code that classifies it."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """
    argparse, but a usage error is one line, like every other error.

    argparse prints the whole usage block before the message, which buries
    the one thing the user needs to read; `--help` still shows the usage.
    """

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"jabberdctl: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(ExitCode.USAGE)


# -- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def _store(config: Config, upgrade: bool = True) -> Iterator[Store]:
    """
    The server's store, ready for synchronous use, disposed of afterwards.

    Like the server: the embedded SQLite default is migrated on the spot; a
    server database must be upgraded on purpose (`jabberdctl db upgrade`),
    because a shared database may have other readers on the old schema.
    """
    from jabberd.store import Store

    store = Store(config.databaseURL())
    try:
        if upgrade:
            if store.dialect_name == "sqlite":
                store.upgrade()
            elif store.needsUpgrade():
                raise CtlError(
                    "the database schema is out of date: run `jabberdctl db upgrade`",
                    ExitCode.DATABASE,
                )
        yield store
    finally:
        store.engine.dispose()


def _account(config: Config, address: str) -> tuple[str, str]:
    """(host, username) of an account address, prepared as the server stores them."""
    try:
        j = J.parse(address)
    except J.InvalidJID as e:
        raise CtlError(f"{address}: not a valid JID ({e})", ExitCode.USAGE) from None
    if j.user is None or j.resource is not None:
        raise CtlError(f"{address}: give an account as user@host", ExitCode.USAGE)
    if j.host not in config.hosts:
        raise CtlError(
            f"{j.host} is not a host of this server (hosts: {', '.join(config.hosts)})",
            ExitCode.USAGE,
        )
    return j.host, j.user


def _password(args: argparse.Namespace) -> str:
    """
    The new password: --password, else prompted twice on a terminal, else
    one line of standard input (so `echo pw | jabberdctl adduser ...` and
    provisioning tools work without the password in the process list).
    """
    if args.password is not None:
        password = args.password
    elif not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise CtlError("the passwords do not match", ExitCode.USAGE)
    if not password:
        raise CtlError("the password is empty", ExitCode.USAGE)
    return password


def _credentials(config: Config, password: str) -> list[Any]:
    """SCRAM credentials for the password, with the configured iteration count."""
    from jabberd.passwords import credentialsFor

    try:
        return credentialsFor(password, config.auth.scram_iterations)
    except ValueError as e:
        raise CtlError(str(e), ExitCode.USAGE) from None


# -- commands -----------------------------------------------------------------


def cmdAdduser(config: Config, args: argparse.Namespace) -> int:
    """Create an account; the password is asked for before the database is touched."""
    from jabberd.store.accounts import AccountExists, create_account_txn

    host, user = _account(config, args.jid)
    credentials = _credentials(config, _password(args))
    with _store(config) as store:
        try:
            with store.engine.begin() as conn:
                create_account_txn(conn, host, user, credentials)
        except AccountExists:
            raise CtlError(f"{user}@{host} already exists", ExitCode.EXISTS) from None
    print(f"created {user}@{host}")
    return ExitCode.OK


def cmdPasswd(config: Config, args: argparse.Namespace) -> int:
    """Replace an account's credentials (sessions already logged in stay up)."""
    from jabberd.store.accounts import NoSuchAccount, set_credentials_txn

    host, user = _account(config, args.jid)
    credentials = _credentials(config, _password(args))
    with _store(config) as store:
        try:
            with store.engine.begin() as conn:
                set_credentials_txn(conn, host, user, credentials)
        except NoSuchAccount:
            raise CtlError(f"{user}@{host} does not exist", ExitCode.NOT_FOUND) from None
    print(f"password changed for {user}@{host}")
    return ExitCode.OK


def cmdDeluser(config: Config, args: argparse.Namespace) -> int:
    """Delete an account and, by cascade, everything stored for it."""
    from jabberd.store.accounts import NoSuchAccount, delete_account_txn

    host, user = _account(config, args.jid)
    with _store(config) as store:
        try:
            with store.engine.begin() as conn:
                delete_account_txn(conn, host, user)
        except NoSuchAccount:
            raise CtlError(f"{user}@{host} does not exist", ExitCode.NOT_FOUND) from None
    print(f"deleted {user}@{host}")
    return ExitCode.OK


def cmdUsers(config: Config, args: argparse.Namespace) -> int:
    """
    Print every account, one bare JID a line (easy to pipe), sorted.

    A host no longer in the configuration may still have accounts in the
    database; listing them is how an operator finds the leftovers, so such
    a host is allowed here.
    """
    from jabberd.store.accounts import list_accounts_txn

    host = None
    if args.host:
        try:
            host = J.prepDomain(args.host)
        except J.InvalidJID as e:
            raise CtlError(f"{args.host}: not a valid domain ({e})", ExitCode.USAGE) from None
    with _store(config) as store:
        with store.engine.begin() as conn:
            rows = list_accounts_txn(conn, host)
    for user, h in rows:
        print(f"{user}@{h}")
    return ExitCode.OK


def cmdCertGenerate(config: Config, args: argparse.Namespace) -> int:
    """
    Write a self-signed certificate, by default where the server looks for
    its generated one ({data_dir}/certs/HOST.pem), so it is used at the
    next start when the configuration names no certificate.
    """
    from jabberd import tls

    try:
        host = J.prepDomain(args.host)
    except J.InvalidJID as e:
        raise CtlError(f"{args.host}: not a valid domain ({e})", ExitCode.USAGE) from None
    if "/" in host or host in (".", ".."):
        raise CtlError(f"{args.host}: not a valid domain", ExitCode.USAGE)
    path = os.path.abspath(args.output or os.path.join(config.data_dir, "certs", f"{host}.pem"))
    if os.path.exists(path) and not args.force:
        raise CtlError(f"{path} exists (use --force to replace it)", ExitCode.EXISTS)
    tls.generateSelfSigned(host, path)
    print(f"wrote a self-signed certificate for {host} to {path}")
    if host not in config.hosts:
        sys.stderr.write(f"jabberdctl: note: {host} is not in hosts, so the server will not use it\n")
    elif args.output is None and config.forHost(host).certificate:
        sys.stderr.write(
            f"jabberdctl: note: the configuration names a certificate for {host}; "
            "the server uses that one, not this file\n"
        )
    return ExitCode.OK


def cmdCheck(config: Config | None, args: argparse.Namespace) -> int:
    """Print every problem of the configuration; see L{configurationProblems}."""
    source = args.config or "the built-in defaults"
    config, problems = configurationProblems(args.config)
    for problem in problems:
        sys.stderr.write(f"jabberdctl: {problem}\n")
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        sys.stderr.write(f"jabberdctl: {count} in {source}\n")
        return ExitCode.FAILURE
    assert config is not None
    print(f"{source}: ok (hosts: {', '.join(config.hosts)}; modules: {', '.join(_moduleNames(config))})")
    return ExitCode.OK


def cmdDbUpgrade(config: Config, args: argparse.Namespace) -> int:
    """Apply pending migrations; running it again changes nothing."""
    with _store(config, upgrade=False) as store:
        before = store.currentRevision()
        store.upgrade()
        after = store.currentRevision()
    if before == after:
        print(f"database at revision {after} (already up to date)")
    else:
        print(f"database upgraded from revision {before or 'none (empty)'} to {after}")
    return ExitCode.OK


# -- check --------------------------------------------------------------------


def _moduleNames(config: Config) -> list[str]:
    """The modules the server would load with this configuration."""
    from jabberd.module import ModuleHost

    return [factory.name for factory in ModuleHost.select(config.modules.enabled, config.modules.disabled)]


def _rawModules(path: str | None) -> dict[str, Any]:
    """
    The [modules] table of a file that did not validate, read leniently, so
    `check` reports unknown module names together with the other problems.
    """
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    modules = data.get("modules")
    return dict(modules) if isinstance(modules, dict) else {}


def _moduleProblems(modules: dict[str, Any]) -> list[str]:
    """One problem per unknown name in modules.enabled/disabled, with a suggestion."""
    import difflib

    from jabberd.module import availableModules

    available = sorted(availableModules())
    problems = []
    for key in ("enabled", "disabled"):
        names = modules.get(key, ())
        if not isinstance(names, (list, tuple)):
            continue
        for index, name in enumerate(names):
            if isinstance(name, str) and name not in available:
                close = difflib.get_close_matches(name, available, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(
                    f"modules.{key}[{index}]: unknown module {name!r}{hint};"
                    f" available: {', '.join(available) or 'none'}"
                )
    return problems


def _certificateProblems(config: Config) -> list[str]:
    """
    Certificates and keys the configuration names but TLS could not use,
    each under the key that names it: the server would fail at start.
    """
    from jabberd import tls

    problems = []
    seen: set[tuple[str, str]] = set()
    for host in config.hosts:
        own = config.host.get(host)
        if own is not None and own.certificate:
            where = f'host."{host}"'
            cert, key = own.certificate, own.key
        elif config.tls.certificate:
            where, cert, key = "tls", config.tls.certificate, config.tls.key
        else:
            continue  # generated at start: nothing to check
        if (cert, key) in seen:
            continue
        seen.add((cert, key))
        try:
            tls.loadKeyAndCert(cert, key or None)
        except tls.TLSConfigError as e:
            problems.append(f"{where}.{'key' if key and str(e).startswith(key) else 'certificate'}: {e}")
    if config.auth.client_ca:
        try:
            with open(config.auth.client_ca, "rb") as f:
                if b"-----BEGIN CERTIFICATE-----" not in f.read():
                    problems.append(f"auth.client_ca: {config.auth.client_ca}: no PEM certificate found")
        except OSError as e:
            problems.append(f"auth.client_ca: {config.auth.client_ca}: cannot read: {e.strerror}")
    return problems


def _dataDirProblems(config: Config) -> list[str]:
    """
    A data folder this user could not create or write: the server creates
    it at start and writes the SQLite store and certificates there.  Judged
    without creating anything (`check` has no side effects); run `check` as
    the server's user for the answer to mean something.
    """
    path = config.data_dir
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        return [f"data_dir: {path}: {existing} is not a folder"]
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write to" if existing == path else "create"
        return [f"data_dir: cannot {verb} {path} (no write permission on {existing})"]
    return []


def _databaseProblems(config: Config) -> list[str]:
    """
    A server database whose driver cannot be loaded (the [postgresql] extra
    not installed, a misspelt driver): found here rather than at the first
    query.  Nothing connects, and SQLite is skipped because opening it
    would create the data folder.
    """
    if not config.database or config.database.startswith("sqlite"):
        return []
    from jabberd.store import Store

    try:
        Store(config.database).engine.dispose()
    except ImportError as e:
        return [
            f"database: the driver is not installed ({e.name or e});"
            " for PostgreSQL: pip install 'jabberd[postgresql]'"
        ]
    except Exception as e:  # sqlalchemy.exc.ArgumentError and friends
        text = str(e).strip().splitlines()
        return [f"database: {text[0] if text else type(e).__name__}"]
    return []


def configurationProblems(path: str | None) -> tuple[Config | None, list[str]]:
    """
    Everything wrong with the configuration at C{path} (None: the defaults),
    each problem starting with its key path: the file's own validation, the
    module names (which only the plugin loader knows) and the certificate
    files it names, whether the data folder can be written, and whether the
    database driver loads (nothing connects, nothing is created).
    Returns the config when it loaded, and the problems.

    The server (jabberd.tap) runs the same function before it starts, so
    `jabberdctl check` passing means the configuration will not stop it.
    """
    try:
        config: Config | None = load(path)
    except ConfigError as e:
        config, problems = None, list(e.problems)
    else:
        problems = []
    if config is not None:
        modules = {"enabled": config.modules.enabled, "disabled": config.modules.disabled}
    else:
        modules = _rawModules(path)
    problems += _moduleProblems(modules)
    if config is not None:
        problems += _dataDirProblems(config)
        problems += _databaseProblems(config)
        problems += _certificateProblems(config)
    return (config if not problems else None), problems


# -- command line -------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per task."""
    p = _Parser(
        prog="jabberdctl",
        description="Administer a jabberd server: accounts, certificates, configuration, database.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from jabberd import __version__

    p.add_argument("--version", action="version", version=f"jabberd {__version__}")
    p.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="the server's jabberd.toml (default: built-in defaults, data in $JABBERD_DATA_DIR"
        " or ~/.local/share/jabberd)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, fn: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help, epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(fn=fn)
        return sp

    for name, fn, help in (
        ("adduser", cmdAdduser, "create an account"),
        ("passwd", cmdPasswd, "change an account's password"),
    ):
        sp = command(sub, name, fn, help)
        sp.add_argument("jid", metavar="JID", help="the account, user@host")
        sp.add_argument(
            "--password",
            help="the password (visible in the process list; otherwise prompted"
            " for on a terminal or read as one line from standard input)",
        )
    command(sub, "deluser", cmdDeluser, "delete an account and everything stored for it").add_argument(
        "jid", metavar="JID", help="the account, user@host"
    )
    command(sub, "users", cmdUsers, "list accounts, one JID a line").add_argument(
        "host", metavar="HOST", nargs="?", help="only the accounts of this host"
    )
    cert = sub.add_parser("cert", help="certificates: cert generate HOST").add_subparsers(
        dest="cert_command", required=True, metavar="SUBCOMMAND"
    )
    gen = command(cert, "generate", cmdCertGenerate, "write a self-signed certificate and key for HOST")
    gen.add_argument("host", metavar="HOST")
    gen.add_argument(
        "--output", "-o", metavar="FILE", help="file to write (default: <data_dir>/certs/HOST.pem)"
    )
    gen.add_argument("--force", action="store_true", help="replace an existing file")
    command(sub, "check", cmdCheck, "validate the configuration and the module names; print every problem")
    db = sub.add_parser("db", help="database: db upgrade").add_subparsers(
        dest="db_command", required=True, metavar="SUBCOMMAND"
    )
    command(db, "upgrade", cmdDbUpgrade, "apply pending schema migrations (safe to repeat)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `jabberdctl`; returns the process exit status."""
    args = parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmdCheck(None, args)
        try:
            config = load(args.config)
        except ConfigError as e:
            for problem in e.problems:
                sys.stderr.write(f"jabberdctl: {problem}\n")
            return ExitCode.CONFIG
        return args.fn(config, args)
    except CtlError as e:
        sys.stderr.write(f"jabberdctl: {e}\n")
        return e.code
    except KeyboardInterrupt:
        sys.stderr.write("jabberdctl: interrupted\n")
        return ExitCode.FAILURE
    except Exception as e:
        return _unexpected(e)


def _unexpected(error: Exception) -> int:
    """
    One line for what went wrong outside the expected cases; the database
    being down is common enough to get its own exit status.
    """
    from jabberd.store import StoreUnavailable

    if isinstance(error, StoreUnavailable):
        sys.stderr.write(f"jabberdctl: {error}\n")
        return ExitCode.DATABASE
    if isinstance(error, ImportError) and (error.name or "").startswith("psycopg"):
        sys.stderr.write(
            f"jabberdctl: the PostgreSQL driver is not installed ({error.name}):"
            " pip install 'jabberd[postgresql]'\n"
        )
        return ExitCode.DATABASE
    try:
        import sqlalchemy.exc

        if isinstance(error, sqlalchemy.exc.OperationalError):
            reason = str(error.orig or error).strip().splitlines()[0]
            sys.stderr.write(f"jabberdctl: database error: {reason}\n")
            return ExitCode.DATABASE
    except ImportError:  # pragma: no cover
        pass
    text = str(error).strip().splitlines()
    sys.stderr.write(f"jabberdctl: {type(error).__name__}: {text[0] if text else ''}\n")
    return ExitCode.FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
