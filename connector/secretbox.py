"""Secrets kept at rest (the OAuth tokens of connections), encrypted with Fernet
(cryptography) under keys from RENEWALS_ENCRYPTION_KEY, never from a file.

The variable holds one key, or several separated by commas for rotation: the first encrypts,
every one decrypts (MultiFernet). To rotate: put a new key first, keep the old ones after it,
run `renewals connections rotate-key` (every token re-encrypted under the first key), then
drop the old keys. Make a key with `renewals connections new-key`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from crm_renewals.connector.errors import ConfigError, ConnectorError, Problem

KEY_ENV = "RENEWALS_ENCRYPTION_KEY"


class UnreadableSecret(ConnectorError):
    """A stored secret none of the keys decrypts (a key was dropped too early, or changed)."""


def new_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    """Encrypts and decrypts text under the keys of RENEWALS_ENCRYPTION_KEY."""

    def __init__(self, env: Mapping[str, str] | None = None):
        raw = (os.environ if env is None else env).get(KEY_ENV, "")
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if not keys:
            raise ConfigError(
                [
                    Problem(
                        KEY_ENV,
                        "not set: OAuth tokens are stored encrypted under it; make one with "
                        "`renewals connections new-key` and keep it with your other secrets",
                        "environment",
                    )
                ]
            )
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise ConfigError(
                [
                    Problem(
                        KEY_ENV,
                        "not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                        "`renewals connections new-key`)",
                        "environment",
                    )
                ]
            ) from None

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret(
                f"stored tokens cannot be decrypted with the keys in {KEY_ENV}: put back the "
                "key they were sealed with (after the new one), or reconnect the connection"
            ) from None

    def rotate(self, sealed: str) -> str:
        """`sealed` encrypted again under the first key."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret(
                f"stored tokens cannot be decrypted with the keys in {KEY_ENV}"
            ) from None
