"""
XEP-0077 in-band registration, and password change for a logged-in user.

Registration before authentication is off unless the host enables it
(`[host."example.org"] registration = true`), and a stream registers at
most one account (XEP-0077 §3.1.1: a server MAY refuse a second identity),
so one connection cannot mass-create accounts.  Changing one's own
password is always allowed; removing one's account only where
registration is.  Credentials are derived off the reactor thread (PBKDF2
is deliberately slow).
"""

from __future__ import annotations

from twisted.internet import defer, threads
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.module import Module
from jabberd.passwords import credentialsFor
from jabberd.store.accounts import AccountExists, NoSuchAccount
from jabberd.store.database import StoreUnavailable
from jabberd.xmlstream import errorReply, iqResult

NS_REGISTER = "jabber:iq:register"


def _field(query: domish.Element, name: str) -> str | None:
    for child in query.elements(NS_REGISTER, name):
        return str(child)
    return None


def _prepped(username: str) -> str | None:
    """The username as a localpart (nodeprep'd), None if it cannot be one."""
    try:
        return J.prepNode(username)
    except J.InvalidJID:
        return None


class RegisterModule(Module):
    """In-band registration (pre-auth) and password change / cancellation (post-auth)."""

    name = "register"
    accountFeatures = ()
    features = (NS_REGISTER,)

    def hooks(self):
        return [
            (B.iq("get", "preauth", NS_REGISTER, "query"), self.formBeforeAuth, B.PRIORITY_NORMAL),
            (B.iq("set", "preauth", NS_REGISTER, "query"), self.registerBeforeAuth, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_REGISTER, "query"), self.formForAccount, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_REGISTER, "query"), self.changeForAccount, B.PRIORITY_NORMAL),
            (B.iq("get", B.HOST, NS_REGISTER, "query"), self.formForAccountToHost, B.PRIORITY_NORMAL),
            (B.iq("set", B.HOST, NS_REGISTER, "query"), self.changeForAccountToHost, B.PRIORITY_NORMAL),
        ]

    @property
    def _iterations(self) -> int:
        return self.server.config.auth.scram_iterations

    def _enabled(self, host: str) -> bool:
        return self.server.config.forHost(host).registration

    # -- before authentication: the reply goes straight back on the stream ----

    def formBeforeAuth(self, session, iq) -> bool:
        if not self._enabled(session.host):
            session.send(errorReply(iq, "service-unavailable"))
            return True
        reply = iqResult(iq)
        query = reply.addElement((NS_REGISTER, "query"))
        query.addElement("instructions", content="Choose a username and password.")
        query.addElement("username")
        query.addElement("password")
        session.send(reply)
        return True

    def registerBeforeAuth(self, session, iq) -> bool:
        if not self._enabled(session.host):
            session.send(errorReply(iq, "service-unavailable"))
            return True
        if session.data.get(self.name):
            session.send(errorReply(iq, "not-acceptable", "this stream already registered an account"))
            return True
        query = next(iq.elements())
        username, password = _field(query, "username"), _field(query, "password")
        if not username or not password:
            session.send(errorReply(iq, "not-acceptable", "username and password are required"))
            return True
        try:
            username = J.prepNode(username)
        except J.InvalidJID:
            session.send(errorReply(iq, "jid-malformed", "invalid username"))
            return True
        # Claimed before the store answers, so a burst of requests on one
        # stream cannot slip in several accounts; released on failure.
        session.data[self.name] = True

        def failed(failure):
            session.data.pop(self.name, None)
            return failure

        d = self._create(session.host, username, password)
        d.addCallbacks(lambda _: session.send(iqResult(iq)), failed)
        d.addErrback(self._failed, session.send, iq)
        return True

    def _derive(self, password: str):
        """SCRAM credentials for C{password}, computed in the server's thread pool."""
        reactor = self.server.reactor
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), credentialsFor, password, self._iterations)

    @defer.inlineCallbacks
    def _create(self, host: str, username: str, password: str):
        credentials = yield self._derive(password)
        yield self.server.accounts.create(host, username, credentials)
        self.server.bus.notify(B.ACCOUNT_CREATED, host, username)

    # -- after authentication: the account's own registration ----------------

    def formForAccountToHost(self, iq, fromJID, toJID) -> bool:
        if fromJID is None or fromJID.host != toJID.host or fromJID.user is None:
            return False
        return self.formForAccount(iq, fromJID, toJID)

    def changeForAccountToHost(self, iq, fromJID, toJID) -> bool:
        if fromJID is None or fromJID.host != toJID.host or fromJID.user is None:
            return False
        return self.changeForAccount(iq, fromJID, toJID)

    def formForAccount(self, iq, fromJID, toJID) -> bool:
        reply = iqResult(iq)
        query = reply.addElement((NS_REGISTER, "query"))
        query.addElement("registered")
        query.addElement("username", content=fromJID.user)
        query.addElement("password")
        self.server.router.route(reply)
        return True

    def changeForAccount(self, iq, fromJID, toJID) -> bool:
        query = next(iq.elements())
        host, user = fromJID.host, fromJID.user
        if next(query.elements(NS_REGISTER, "remove"), None) is not None:
            if len(list(query.elements())) != 1:
                self.server.router.bounce(iq, "bad-request", "<remove/> must be the only child")
                return True
            if not self._enabled(host):
                self.server.router.bounce(iq, "not-allowed", "account removal is disabled on this server")
                return True
            d = self.server.accounts.delete(host, user)
            d.addCallback(lambda _: self._removed(iq, host, user))
            d.addErrback(self._failed, self.server.router.route, iq)
            return True
        username, password = _field(query, "username"), _field(query, "password")
        if not password or (username is not None and _prepped(username) != user):
            # XEP-0077 §3.3: an empty password never replaces the old one.
            self.server.router.bounce(iq, "bad-request", "send your own username and the new password")
            return True
        d = self._derive(password)
        d.addCallback(lambda creds: self.server.accounts.setCredentials(host, user, creds))
        d.addCallback(lambda _: self.server.router.route(iqResult(iq)))
        d.addErrback(self._failed, self.server.router.route, iq)
        return True

    def _removed(self, iq, host: str, user: str) -> None:
        self.server.router.route(iqResult(iq))
        self.server.bus.notify(B.ACCOUNT_DELETED, host, user)
        for session in list(self.server.sessions.resources(f"{user}@{host}").values()):
            session.terminate("not-authorized", "the account was removed")

    def _failed(self, failure, send, iq) -> None:
        if failure.check(AccountExists):
            send(errorReply(iq, "conflict", "that username is taken"))
        elif failure.check(NoSuchAccount):
            send(errorReply(iq, "item-not-found"))
        elif failure.check(ValueError):
            send(errorReply(iq, "not-acceptable", str(failure.value)))
        elif failure.check(StoreUnavailable):  # the store logged it
            send(errorReply(iq, "internal-server-error", StoreUnavailable.clientText, errorType="wait"))
        else:
            self.log.failure("registration failed", failure)
            send(errorReply(iq, "internal-server-error"))
