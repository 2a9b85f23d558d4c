"""The webhook receiver: `create_app(config)` builds the Flask app; nothing runs at import."""

from webhooks.app import create_app

__all__ = ["create_app"]
