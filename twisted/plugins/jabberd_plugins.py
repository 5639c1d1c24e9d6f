"""
The twistd plugins of jabberd: `twistd -n jabberd [--config PATH]`.

This file is a Twisted dropin: pip installs it into
site-packages/twisted/plugins/, where twistd looks for plugins wherever it is
started from.  It must stay cheap to import (Twisted imports every dropin to
build its plugin cache), so it names the module holding the options and
makeService instead of importing it.  Server modules are not plugins: the
server reads them from jabberd/modules/builtin.py directly.
"""

from twisted.application.service import ServiceMaker

jabberd = ServiceMaker(
    "jabberd",
    "jabberd.tap",
    "jabberd XMPP server (client connections, accounts, IM features; see --help)",
    "jabberd",
)
