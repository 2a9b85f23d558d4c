"""Where alerts land in tests: a loopback HTTP endpoint taking Apprise's json:// posts (or
refusing them with a 500, or never answering), and a local SMTP server (aiosmtpd) taking its
e-mail after an AUTH LOGIN/PLAIN."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: what the hook answers: a status code, or HANG (reads the post, never answers)
HANG = "hang"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hook:
    """`with Hook() as hook:` a JSON webhook on loopback; `hook.posts` what it was sent."""

    def __init__(self, answer: int | str = 200):
        self.answer = answer
        self.posts: list[dict] = []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                hook.posts.append({**body, "path": self.path})
                if hook.answer == HANG:
                    hook.release.wait(30)
                    return
                self.send_response(hook.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, token: str) -> str:
        """The Apprise URL of this hook; `token` stands for the secret part of a real one."""
        return f"json://127.0.0.1:{self.port}/hook/{token}"

    def titles(self) -> list[str]:
        return [p["title"] for p in self.posts]

    def __enter__(self) -> Hook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """`with Mailbox() as box:` an SMTP server on loopback that wants a login (over plain
    SMTP: no TLS on loopback); `box.mails` (from, to, text), `box.logins` (user, password)."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[tuple[str, list[str], str]] = []
        self.logins: list[tuple[str, str]] = []
        box = self

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):
                text = envelope.content.decode("utf-8", "replace")
                box.mails.append((envelope.mail_from, envelope.rcpt_tos, text))
                return "250 OK"

        def authenticate(_server, _session, _envelope, _mechanism, data):
            self.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=True)

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_require_tls=False,
        )

    def url(self, user: str, password: str) -> str:
        return (
            f"mailto://{user}:{password}@127.0.0.1:{self.port}"
            "?from=renewals@example.com&to=ops@example.com"
        )

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.controller.stop()
