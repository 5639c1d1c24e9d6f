"""
The twistd plugin of the MUC component: `twistd -n jabberd-muc --config etc/muc.toml`.

A Twisted dropin (installed into site-packages/twisted/plugins/): it stays
cheap to import by naming the module that holds the options and
makeService instead of importing it.
"""

from twisted.application.service import ServiceMaker

jabberdMuc = ServiceMaker(
    "jabberd-muc",
    "components.muc.tap",
    "jabberd multi-user chat (XEP-0045) as an external component (XEP-0114); see --help",
    "jabberd-muc",
)
