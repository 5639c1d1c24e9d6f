"""
Every built-in module class, in one place: jabberd.module.availableModules
reads this module directly (no Twisted plugin cache in between).

A module added to jabberd/modules/ gets one import line here, in
alphabetical order; third-party modules ship their own dropin instead.
"""

from jabberd.modules.blocking import BlockingModule  # noqa: F401
from jabberd.modules.caps import CapsModule  # noqa: F401
from jabberd.modules.disco import DiscoModule  # noqa: F401
from jabberd.modules.entitytime import EntityTimeModule  # noqa: F401
from jabberd.modules.last import LastActivityModule  # noqa: F401
from jabberd.modules.messages import MessagesModule  # noqa: F401
from jabberd.modules.muc import MucModule  # noqa: F401
from jabberd.modules.offline import OfflineModule  # noqa: F401
from jabberd.modules.pep import PepModule  # noqa: F401
from jabberd.modules.ping import PingModule  # noqa: F401
from jabberd.modules.presence import PresenceModule  # noqa: F401
from jabberd.modules.privacy import PrivacyModule  # noqa: F401
from jabberd.modules.private import PrivateModule  # noqa: F401
from jabberd.modules.register import RegisterModule  # noqa: F401
from jabberd.modules.roster import RosterModule  # noqa: F401
from jabberd.modules.vcard import VCardModule  # noqa: F401
from jabberd.modules.version import VersionModule  # noqa: F401
