"""What a use case needs, built once by connector.bootstrap."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connector.config import AppConfig
from connector.domain.mapping import Mapping
from connector.ports import CrmClient
from connector.retry import retrying
from connector.state import StateStore


@dataclass
class Context:
    config: AppConfig
    mapping: Mapping
    crm: CrmClient
    store: StateStore
    sleep: Callable[[float], None] = field(default=time.sleep)

    def retrying(self):
        s = self.config.sync
        return retrying(s.retry_attempts, s.retry_max_wait_seconds, sleep=self.sleep)

    def close(self) -> None:
        self.crm.close()
        self.store.close()
