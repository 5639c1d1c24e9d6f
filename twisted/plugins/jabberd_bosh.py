"""
The twistd plugin of the standalone web connection manager:
`twistd -n jabberd-bosh [--config etc/bosh.toml]` (components/bosh).

A Twisted dropin, cheap to import: it names the module holding the options
and makeService instead of importing it.
"""

from twisted.application.service import ServiceMaker

jabberdBosh = ServiceMaker(
    "jabberd-bosh",
    "components.bosh.tap",
    "jabberd BOSH (XEP-0124/0206) and WebSocket (RFC 7395) connection manager, relaying to a jabberd server",
    "jabberd-bosh",
)
