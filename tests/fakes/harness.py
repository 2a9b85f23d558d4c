"""One way to seed and inspect each CRM, so the same tests run against every adapter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import responses

from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect
from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.mapping_file import load_mapping
from tests.fakes.salesforce_org import FakeOrg

ROOT = Path(__file__).resolve().parents[2]
SALESFORCE_ENV = {
    "SALESFORCE_USERNAME": "integration@acme.test",
    "SALESFORCE_PASSWORD": "pw",
    "SALESFORCE_SECURITY_TOKEN": "token",
}


class Harness:
    """`crm` is the adapter under test; `admin` changes the CRM as its users would."""

    name: str
    crm: SandboxCrm | SalesforceCrm
    admin: SandboxCrm | FakeOrg
    #: the CRM's error code for a record owned by an inactive user
    inactive_owner_code = "INACTIVE_OWNER_OR_USER"
    #: calls to read a handful of records of one kind
    calls_per_small_read = 1

    def freeze_clock(self) -> None:
        """Records written from now on share one modified stamp."""
        raise NotImplementedError

    def contract_line(self, contract_id: str, product_id: str, qty: float, price: float) -> str:
        raise NotImplementedError


class SandboxHarness(Harness):
    name = "sandbox"

    def __init__(self, folder: Path, page_size: int):
        mapping = load_mapping(ROOT / "mappings" / "sandbox.yaml")
        self.now, self.tick = datetime(2026, 11, 23, 8, 0, tzinfo=UTC), timedelta(seconds=1)
        self.crm = self.admin = SandboxCrm(
            folder / "crm.db", mapping, page_size=page_size, clock=self._clock
        )

    def _clock(self) -> datetime:
        self.now += self.tick
        return self.now

    def freeze_clock(self) -> None:
        self.tick = timedelta(0)

    def contract_line(self, contract_id: str, product_id: str, qty: float, price: float) -> str:
        return self.admin.insert(
            "ContractLine",
            {
                "ContractId": contract_id,
                "Product2Id": product_id,
                "Quantity": qty,
                "UnitPrice": price,
                "IsRecurring": True,
            },
        )


class SalesforceHarness(Harness):
    name = "salesforce"

    def __init__(self, org: FakeOrg, page_size: int, **settings):
        self.admin = org
        self.settings = SalesforceSettings(**settings)
        mapping = load_mapping(ROOT / "mappings" / "salesforce.yaml")
        self.crm = SalesforceCrm(
            connect(self.settings, SALESFORCE_ENV), mapping, self.settings, page_size=page_size
        )

    def freeze_clock(self) -> None:
        self.admin.tick = self.admin.tick * 0

    def contract_line(self, contract_id: str, product_id: str, qty: float, price: float) -> str:
        return self.admin.contract_line(contract_id, product_id, qty, price)


class HubSpotHarness(Harness):
    """A FakeHubSpot on loopback, the real client; see tests/fakes/hubspot_harness.py."""

    name = "hubspot"
    inactive_owner_code = "VALIDATION_ERROR"  # HubSpot: INVALID_OWNER_ID in the message
    calls_per_small_read = 2  # a search, and the archived listing (deletions)

    def __init__(self, fake, page_size: int):
        from crm_renewals.connector.adapters.hubspot import HubSpotCrm
        from crm_renewals.connector.config_sections import HubspotSettings
        from tests.fakes.hubspot_harness import HubSpotAdmin, Speaking, fast

        self.fake = fake
        self.admin = HubSpotAdmin(fake)
        mapping = load_mapping(ROOT / "mappings" / "hubspot.yaml")
        adapter = HubSpotCrm(
            mapping, HubspotSettings(base_url=fake.url), fake.token, page_size=page_size
        )
        self.crm = Speaking(fast(adapter))

    def freeze_clock(self) -> None:
        self.fake.freeze()

    def contract_line(self, contract_id: str, product_id: str, qty: float, price: float) -> str:
        return self.admin.insert(
            "ContractLine",
            {
                "ContractId": contract_id,
                "Product2Id": product_id,
                "Quantity": qty,
                "UnitPrice": price,
            },
        )


@contextmanager
def harness(name: str, folder: Path, page_size: int = 2000) -> Iterator[Harness]:
    if name == "hubspot":
        from tests.fakes.hubspot_server import FakeHubSpot

        fake = FakeHubSpot(search_per_second=0)
        fake.start()
        fake.define_connector_properties()
        try:
            yield HubSpotHarness(fake, page_size)
        finally:
            fake.stop()
        return
    if name == "sandbox":
        h = SandboxHarness(folder, page_size)
        try:
            yield h
        finally:
            h.crm.close()
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        h = SalesforceHarness(FakeOrg(rsps), page_size)
        yield h


def salesforce_config(folder: Path, monkeypatch, mapping: Path | None = None, **sections) -> Path:
    """An app.yaml for crm: salesforce (password login) with credentials in the environment."""
    from tests.conftest import write_config

    for name, value in SALESFORCE_ENV.items():
        monkeypatch.setenv(name, value)
    return write_config(
        folder,
        crm="salesforce",
        salesforce={"auth": "password", **sections.pop("salesforce", {})},
        mapping=str(mapping or ROOT / "mappings" / "salesforce.yaml"),
        **sections,
    )
