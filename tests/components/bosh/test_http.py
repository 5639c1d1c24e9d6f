"""
The HTTP side shared by BOSH and WebSocket: XEP-0156 discovery, CORS, the
request body limit, and the plain answers to other methods.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web.client import ResponseFailed

from components.bosh.framing import NS_HTTPBIND
from tests.components.bosh.support import WebMixin
from tests.harness import LOOPBACK


class HTTPMixin(WebMixin):
    """Discovery, CORS and limits."""

    @defer.inlineCallbacks
    def test_hostMeta(self):
        """/.well-known/host-meta announces both endpoints in XRD, from the request's scheme and Host."""
        yield self.startWeb()
        answer = yield self.http("GET", self.url("/.well-known/host-meta"))
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("content-type"), "application/xrd+xml; charset=utf-8")
        self.assertEqual(answer.header("access-control-allow-origin"), "*")
        port = self.web.port("http_tls")
        self.assertEqual(
            answer.raw.decode(),
            "<?xml version='1.0' encoding='utf-8'?>\n"
            "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
            f"  <Link rel='urn:xmpp:alt-connections:xbosh' href='https://localhost:{port}/http-bind'/>\n"
            f"  <Link rel='urn:xmpp:alt-connections:websocket' href='wss://localhost:{port}/xmpp-websocket'/>\n"
            "</XRD>\n",
        )

    @defer.inlineCallbacks
    def test_hostMetaJSON(self):
        """/.well-known/host-meta.json gives the same links in JSON; public_url overrides the request's address."""
        yield self.startWeb(http={"public_url": "https://chat.example.org"})
        answer = yield self.http("GET", self.url("/.well-known/host-meta.json", secure=False))
        self.assertEqual(answer.header("content-type"), "application/json")
        self.assertEqual(
            json.loads(answer.raw),
            {
                "links": [
                    {"rel": "urn:xmpp:alt-connections:xbosh", "href": "https://chat.example.org/http-bind"},
                    {"rel": "urn:xmpp:alt-connections:websocket", "href": "wss://chat.example.org/xmpp-websocket"},
                ]
            },
        )

    @defer.inlineCallbacks
    def test_preflight(self):
        """An OPTIONS preflight from an allowed origin gets the CORS headers (any origin by default)."""
        yield self.startWeb()
        answer = yield self.http("OPTIONS", self.url(), headers={"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST"})
        self.assertEqual(answer.code, 204)
        self.assertEqual(
            [answer.header(h) for h in ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers")],
            ["*", "GET, POST, OPTIONS", "Content-Type"],
        )

    @defer.inlineCallbacks
    def test_originList(self):
        """With cors_origins listed, a listed origin is echoed and any other gets no CORS header."""
        yield self.startWeb(http={"cors_origins": ["https://app.example.org"]})
        client = self.bosh()
        answer = yield client.post("", {"to": "localhost", "ver": "1.11", "xmpp:version": "1.0", "wait": "5", "hold": "1"}, headers={"Origin": "https://app.example.org"})
        self.assertEqual(answer.header("access-control-allow-origin"), "https://app.example.org")
        answer = yield self.http("OPTIONS", self.url(), headers={"Origin": "https://evil.example.org"})
        self.assertIsNone(answer.header("access-control-allow-origin"))

    @defer.inlineCallbacks
    def test_bodyTooLarge(self):
        """A body over max_body_size gets 413 and a closed connection, whatever its content."""
        yield self.startWeb(http={"max_body_size": 10000})
        data = f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'>{'x' * 20000}</body>".encode()
        try:
            answer = yield self.http("POST", self.url(), data)
        except ResponseFailed:
            return  # closed before the client finished sending: refused all the same
        self.assertEqual(answer.code, 413)

    @defer.inlineCallbacks
    def test_get(self):
        """GET on the BOSH path says what it is; an unknown path is 404."""
        yield self.startWeb()
        answer = yield self.http("GET", self.url())
        self.assertEqual((answer.code, answer.raw), (200, b"BOSH (XEP-0124, XEP-0206): POST a <body/> here.\n"))
        answer = yield self.http("GET", f"http://{LOOPBACK}:{self.web.port('http')}/nothing")
        self.assertEqual(answer.code, 404)


class InProcessHTTP(HTTPMixin, unittest.TestCase):
    """The in-process site."""


class StandaloneHTTP(HTTPMixin, unittest.TestCase):
    """The standalone connection manager's site."""

    standalone = True
