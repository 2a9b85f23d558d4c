"""The baseline for the webhook benchmark: a bare Flask app that only checks the HubSpot v3
signature and inserts one row per request into SQLite (WAL), nothing else. Served by gunicorn
with the workers and threads of `renewals serve` in gthread workers (`renewals serve` runs gevent
workers): `gunicorn 'benchmarks.bare_webhook:create_app()'`, configured by BARE_DB, BARE_SECRET
and BARE_BASE_URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sqlite3
import threading

from flask import Flask, request


def create_app() -> Flask:
    db_path, secret = os.environ["BARE_DB"], os.environ["BARE_SECRET"].encode()
    base = os.environ["BARE_BASE_URL"].rstrip("/")
    local = threading.local()
    app = Flask("bare", static_folder=None)

    def db() -> sqlite3.Connection:
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
            local.db.execute("PRAGMA journal_mode=WAL")
            local.db.execute("PRAGMA synchronous=NORMAL")
            local.db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body)")
        return local.db

    @app.post("/webhooks/hubspot")
    def hubspot():
        body = request.get_data()
        ts = request.headers.get("X-HubSpot-Request-Timestamp", "")
        uri = base + request.full_path.rstrip("?")
        message = b"POST" + uri.encode() + body + ts.encode()
        expected = base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest())
        given = request.headers.get("X-HubSpot-Signature-v3", "").encode()
        if not hmac.compare_digest(expected, given):
            return {"error": "invalid signature"}, 401
        db().execute("INSERT INTO events (body) VALUES (?)", (body,))
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
