"""
Federation: server-to-server streams (RFC 6120), SASL EXTERNAL (XEP-0178),
server dialback (XEP-0220/XEP-0185) and the outgoing queue.  See
L{jabberd.s2s.federation} and docs/federation.md.
"""
