"""The loopback HTTP server every fake CRM on a port uses (FakeHubSpot, the fleet's portals,
FakeSalesforceLogin, the fleet's Salesforce orgs over HTTPS): a thread per connection, HTTP/1.1
keep-alive, quiet, and a client that went away (a timeout test, a worker killed mid-request) is
not reported as an error."""

from __future__ import annotations

import json
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connecting at once (the listen backlog)
    scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError | ssl.SSLError):
            return  # the client is gone (or never finished its TLS handshake): nothing to report
        super().handle_error(request, client_address)


def serve(
    handle: Callable[[BaseHTTPRequestHandler], None],
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> LoopbackServer:
    """A server on 127.0.0.1:`port` (0: any free port) passing every request to `handle`,
    serving from a daemon thread; HTTPS with the server certificate of `tls` if given."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            if tls is not None:  # the handshake in this connection's thread, not the acceptor's
                self.request.do_handshake()
            super().setup()

        def log_message(self, *args):  # quiet
            pass

        def _any(self):
            handle(self)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    server = LoopbackServer(("127.0.0.1", port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.scheme = "https"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def send_json(
    h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    """Answer with `body` as JSON (None: empty) and `headers`; a client gone is let be."""
    send_text(h, status, "" if body is None else json.dumps(body), headers)


def send_text(
    h: BaseHTTPRequestHandler, status: int, text: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with `text` as it is (JSON already, unless `headers` name another Content-Type,
    as Bulk API 2.0's CSV results; empty stays empty, as a 204's body)."""
    data = text.encode()
    h.send_response(status)
    given = [v for k, v in (headers or {}).items() if k.lower() == "content-type"]
    h.send_header("Content-Type", given[0] if given else "application/json;charset=utf-8")
    for name, value in (headers or {}).items():
        if name.lower() != "content-type":
            h.send_header(name, value)
    h.send_header("Content-Length", str(len(data)))
    try:
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
