"""The HubSpot adapter: the CRM port over hubspot-api-client (CRM v3 objects, v4 associations).

Reads use the search API (sorted by the last-modified property, `after` paging, the window moved
forward at the 10,000-result cap) plus one v4 association read per 1,000 records; archived
records come from the archived listing, merged-away ones from `hs_merged_object_ids`. Writes
are batch upserts by a unique-valued property, 100 inputs a call, then v4 associations; tasks
are created once per dedupe key with inline associations. Every call takes a token from the
portal's bucket and is retried with tenacity on 429, 5xx and timeouts (the transport).

Parts: `transport` (client, limits, retries, errors), `kinds` (what a kind is in the portal),
`queries` (search, associations, batch reads), `reads`, `writes`, `diagnosis`; `HubSpotCrm`
only delegates to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from crm_renewals.connector.adapters.facade import AdapterFacade
from crm_renewals.connector.adapters.hubspot.diagnosis import HubSpotDiagnosis
from crm_renewals.connector.adapters.hubspot.kinds import Kinds, parse_time
from crm_renewals.connector.adapters.hubspot.limits import PortalLimits
from crm_renewals.connector.adapters.hubspot.queries import SEARCH_PAGE
from crm_renewals.connector.adapters.hubspot.reads import BATCH, HubSpotReads
from crm_renewals.connector.adapters.hubspot.transport import HubSpotTransport
from crm_renewals.connector.adapters.hubspot.writes import HubSpotWrites
from crm_renewals.connector.config_sections import HubspotSettings
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.domain.policy import RenewalPolicy

if TYPE_CHECKING:
    from crm_renewals.connector.adapters.shared_limits import SharedLimits

__all__ = ["TOKEN_ENV", "HubSpotCrm", "parse_time"]

TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"


class HubSpotCrm(AdapterFacade):
    system = "hubspot"
    max_batch = BATCH

    def __init__(
        self,
        mapping: Mapping,
        settings: HubspotSettings,
        token: str | Callable[[], str],
        *,
        page_size: int = SEARCH_PAGE,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        interval: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        policy: RenewalPolicy | None = None,
        portal: str | None = None,
        shared: SharedLimits | None = None,
    ):
        """`token`: a private app's, or an OAuth connection's token source (a callable);
        `portal`: the portal id, when known (its rate-limit buckets); `shared`: the Redis the
        buckets are shared through by every process (workers.redis_url)."""
        self.transport = HubSpotTransport(
            settings,
            token,
            portal=portal,
            shared=shared,
            retry_attempts=retry_attempts,
            retry_max_wait=retry_max_wait,
            interval=interval,
            sleep=sleep,
        )
        self.kinds = Kinds(mapping, settings)
        self.page_size = min(page_size, SEARCH_PAGE)  # the search API's maximum
        self.reads = HubSpotReads(self.transport, self.kinds, self.page_size)
        self.writes = HubSpotWrites(self.transport, self.kinds, self.max_batch)
        self.diagnosis = HubSpotDiagnosis(self.transport, self.kinds, policy)

    # ------------------------------------------------------------------ shared state

    @property
    def mapping(self) -> Mapping:
        return self.kinds.mapping

    @mapping.setter
    def mapping(self, value: Mapping) -> None:
        self.kinds.mapping = value

    @property
    def settings(self) -> HubspotSettings:
        return self.kinds.settings

    @property
    def limits(self) -> PortalLimits:
        return self.transport.limits

    @limits.setter
    def limits(self, value: PortalLimits) -> None:
        self.transport.limits = value

    @property
    def ids(self) -> dict[tuple[str, str], str]:
        return self.writes.ids

    def object_type(self, kind: str) -> str:
        return self.kinds.object_type(kind)
