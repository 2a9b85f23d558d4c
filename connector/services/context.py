"""What a use case needs, built once by connector.bootstrap."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.ports import CrmClient
from crm_renewals.connector.state import StateStore


@dataclass(frozen=True)
class UsedFile:
    """A file a run uses (`mapping` or `config`: app.yaml) as it was read when the Context was
    built: its text, with no secret (services/versions.py), and where it came from."""

    kind: str
    path: str
    content: str

    @property
    def hash(self) -> str:
        """sha256 of the text: of the file's bytes as they are (`sha256sum` says the same)."""
        return hashlib.sha256(self.content.encode()).hexdigest()


@dataclass
class Context:
    config: AppConfig
    mapping: Mapping
    crm: CrmClient
    store: StateStore
    #: the mapping file and app.yaml, as read: each run records their versions
    files: tuple[UsedFile, ...] = ()

    @property
    def sleep(self) -> Callable[[float], None]:
        """Waits before retrying: the adapter's, so its own call retries and the services'
        per-record retries wait alike (tests make it instant, the inbox worker counts it)."""
        return self.crm.sleep

    @sleep.setter
    def sleep(self, value: Callable[[float], None]) -> None:
        self.crm.sleep = value

    def close(self) -> None:
        self.crm.close()
        self.store.close()
