"""
The service's own duties: ghosts (333), shutdown (332), a lost link to the
server, invitations and declines, and the store's separation from the core.
"""

from __future__ import annotations

import sqlalchemy as sa
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone

from components.muc import store as S
from jabberd.store import Store
from tests.components.muc.support import (
    ALICE,
    BOB,
    CAROL,
    NS_USER,
    ROOM,
    STANZAS,
    MucTestCase,
    error,
    item,
    userX,
)


class GhostTests(MucTestCase):
    """§17.3.3: a delivery error from an occupant's session removes it with 333."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_deliveryErrorRemoves(self):
        """A message bounced as recipient-unavailable from Bob's session removes Bob (333)."""
        self.send(f"<message type='error' id='m' from='{BOB}' to='{ROOM}/Alice'><body>x</body>"
                  f"<error type='wait'><recipient-unavailable xmlns='{STANZAS}'/></error></message>")
        self.expect(
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>" + userX(item("none", "none"), codes=("110", "333")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{ALICE}' type='unavailable'>" + userX(item("none", "none", BOB), codes=("333",)) + "</presence>",
        )

    def test_clientErrorKeeps(self):
        """An error a client may send itself (service-unavailable to a message) does not remove it."""
        self.send(f"<message type='error' id='m' from='{BOB}' to='{ROOM}/Alice'>"
                  f"<error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></message>")
        self.expect()
        self.assertIn("Bob", self.room.occupants)


class ShutdownTests(MucTestCase):
    """§11.2 and a lost connection to the server."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_shutdown(self):
        """Shutting down tells every occupant, each about itself, with 110 and 332."""
        self.service.shutdown()
        self.expect(
            f"<presence from='{ROOM}/Alice' to='{ALICE}' type='unavailable'>" + userX(item("none", "none"), codes=("110", "332")) + "</presence>",
            f"<presence from='{ROOM}/Bob' to='{BOB}' type='unavailable'>" + userX(item("none", "none"), codes=("110", "332")) + "</presence>",
        )
        self.assertNotIn("room", self.service.rooms)

    def test_lostLink(self):
        """When the link to the server is lost, nobody is in any room and temporary rooms are gone."""
        self.service.connectionLost(Failure(ConnectionDone()))
        self.expect()
        self.assertEqual(self.service.rooms, {})


class InvitationTests(MucTestCase):
    """Mediated invitations and declines (§7.8.2)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.create()
        self.enter(BOB, "Bob")

    def test_inviteAndDecline(self):
        """The room invites for the inviter; the invitee's decline goes back to the inviter."""
        self.send(f"<message from='{BOB}' to='{ROOM}' id='inv'><x xmlns='{NS_USER}'>"
                  "<invite to='carol@localhost'><reason>Come!</reason></invite></x></message>")
        self.expect(f"<message from='{ROOM}' to='carol@localhost' id='inv'><x xmlns='{NS_USER}'>"
                    "<invite from='bob@localhost'><reason>Come!</reason></invite></x></message>")
        self.send(f"<message from='{CAROL}' to='{ROOM}' id='dec'><x xmlns='{NS_USER}'>"
                  "<decline to='bob@localhost'><reason>Busy</reason></decline></x></message>")
        self.expect(f"<message from='{ROOM}' to='bob@localhost' id='dec'><x xmlns='{NS_USER}'>"
                    "<decline from='carol@localhost'><reason>Busy</reason></decline></x></message>")

    def test_declineWithoutInvitation(self):
        """A decline for an invitation the room never sent is not passed on."""
        self.send(f"<message from='{CAROL}' to='{ROOM}' id='dec'><x xmlns='{NS_USER}'><decline to='bob@localhost'/></x></message>")
        self.expect(f"<message from='{ROOM}' to='{CAROL}' type='error' id='dec'><x xmlns='{NS_USER}'><decline to='bob@localhost'/></x>"
                    + error("not-acceptable", "modify", "there is no invitation to decline") + "</message>")

    def test_membersOnlyInvitations(self):
        """In a members-only room a member may not invite (forbidden) unless the room allows it; the invitee becomes a member."""
        self.configure({"muc#roomconfig_membersonly": "1"})
        self.admin(ALICE, "<item affiliation='member' jid='bob@localhost'/>")
        self.enter(BOB, "Bob")
        self.pop()
        self.send(f"<message from='{BOB}' to='{ROOM}' id='i1'><x xmlns='{NS_USER}'><invite to='carol@localhost'/></x></message>")
        self.assertIn("forbidden", self.pop()[0].toXml())
        self.configure({"muc#roomconfig_allowinvites": "1"})
        self.pop()
        self.send(f"<message from='{BOB}' to='{ROOM}' id='i2'><x xmlns='{NS_USER}'><invite to='carol@localhost'/></x></message>")
        self.assertEqual(self.pop()[0]["to"], "carol@localhost")
        self.assertEqual(self.room.affiliationOf("carol@localhost"), "member")

    def test_passwordInInvitation(self):
        """An invitation to a password-protected room carries the password."""
        self.configure({"muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "pw"})
        self.pop()
        self.send(f"<message from='{ALICE}' to='{ROOM}' id='i'><x xmlns='{NS_USER}'><invite to='carol@localhost'/></x></message>")
        self.assertIn("<password>pw</password>", self.pop()[0].toXml())


class StoreTests(MucTestCase):
    """The MUC's tables: its own metadata, migrations and version table."""

    @defer.inlineCallbacks
    def test_ownVersionTable(self):
        """The MUC schema is versioned in muc_alembic_version, beside (not in) the core's alembic_version."""
        store = Store("sqlite://")
        store.upgrade()  # the core's migrations
        store.start()
        self.addCleanup(store.close)
        yield store.runInteraction("muc", S.upgrade_txn)
        revision = yield store.runInteraction("rev", S.current_revision_txn)
        self.assertEqual(revision, S.headRevision())
        self.assertEqual(store.currentRevision(), store.headRevision())
        tables = yield store.runInteraction("t", lambda conn: sorted(sa.inspect(conn).get_table_names()))
        self.assertIn("muc_rooms", tables)
        self.assertIn("accounts", tables)

    @defer.inlineCallbacks
    def test_migrationsMatchTables(self):
        """The tables the migrations create are exactly those of the MUC metadata."""
        tables = yield self.store.runInteraction("t", lambda conn: sorted(sa.inspect(conn).get_table_names()))
        self.assertEqual(tables, ["muc_affiliations", "muc_alembic_version", "muc_rooms"])
        columns = yield self.store.runInteraction(
            "c", lambda conn: {t: sorted(c["name"] for c in sa.inspect(conn).get_columns(t)) for t in ("muc_rooms", "muc_affiliations")})
        self.assertEqual(columns, {t: sorted(c.name for c in S.metadata.tables[t].columns) for t in ("muc_rooms", "muc_affiliations")})
