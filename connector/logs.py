"""Logging set-up: secrets from the environment are redacted from every record."""

from __future__ import annotations

import logging
import os

from crm_renewals.connector.config import SECRET_ENV_VARS


class RedactSecrets(logging.Filter):
    """Replaces the value of any secret environment variable with '***'."""

    def __init__(self, names: tuple[str, ...] = SECRET_ENV_VARS):
        super().__init__()
        self.secrets = [v for n in names if len(v := os.environ.get(n, "")) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def setup(level: int = logging.WARNING) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
