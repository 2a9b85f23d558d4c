"""What a use case needs, built once by connector.bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connector.config import AppConfig
from connector.domain.mapping import Mapping
from connector.ports import CrmClient
from connector.state import StateStore


@dataclass
class Context:
    config: AppConfig
    mapping: Mapping
    crm: CrmClient
    store: StateStore

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
