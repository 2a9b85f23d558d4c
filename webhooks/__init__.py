"""The webhook receiver: `create_app(config)` builds the Flask app; nothing runs at import.

`create_app` is imported on first use: `renewals serve` imports `webhooks.server` before
prometheus_client may be imported (it reads PROMETHEUS_MULTIPROC_DIR once, at import)."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from crm_renewals.webhooks.app import create_app

        return create_app
    raise AttributeError(f"module 'webhooks' has no attribute {name!r}")
