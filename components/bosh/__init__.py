"""
XMPP for web browsers: BOSH (XEP-0124 + XEP-0206) and WebSocket (RFC 7395)
on one twisted.web site, with XEP-0156 discovery.

The web transports carry client streams, which a XEP-0114 component cannot
authenticate or bind, so this package is a transport, not a component:

  - in process (L{components.bosh.inprocess}), each BOSH session or
    WebSocket connection is a L{jabberd.c2s.session.Link} feeding the same
    L{jabberd.c2s.session.ClientSession} a TCP connection gets;
  - standalone (C{twistd -n jabberd-bosh}, L{components.bosh.upstream}), it is
    a XEP-0206 connection manager that opens an ordinary c2s stream, with
    STARTTLS, to the core for each session.

Both sit behind the same two interfaces (L{components.bosh.framing}): the
transports (L{components.bosh.bosh}, L{components.bosh.websocket}) speak to
an C{Upstream}, which answers through the transport's C{Downstream} methods.
"""
