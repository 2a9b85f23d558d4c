"""Fixtures for the HubSpot adapter: a FakeHubSpot on loopback and the real client pointed at it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot import TOKEN_ENV, HubSpotCrm
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import HubspotSettings
from crm_renewals.connector.domain.mapping import FieldSpec, ObjectMapping
from crm_renewals.connector.mapping_file import load_mapping
from tests.conftest import ROOT, write_config
from tests.fakes.hubspot_harness import fast
from tests.fakes.hubspot_schema import RENEWAL_CONTACT_TYPE
from tests.fakes.hubspot_server import FakeHubSpot

MAPPING = ROOT / "mappings" / "hubspot.yaml"


class HubBook:
    """Builds records in the fake portal as its users would (owners, companies, contacts,
    closed-won contract deals with line items), and reads back what the connector wrote."""

    def __init__(self, fake: FakeHubSpot):
        self.fake = fake

    def owner(self, name: str = "Jane Rep", archived: bool = False) -> str:
        first, _, last = name.partition(" ")
        return self.fake.add_owner(first, last or "X", archived=archived)

    def company(self, name: str = "Acme", owner: str | None = None) -> str:
        owner = owner or self.owner(f"{name} Owner")
        return self.fake.create("companies", {"name": name, "hubspot_owner_id": owner})

    def contact(self, company: str, name: str, renewal: bool = True) -> str:
        first, _, last = name.partition(" ")
        cid = self.fake.create(
            "contacts", {"firstname": first, "lastname": last, "email": f"{first.lower()}@x.test"}
        )
        self.fake.associate("contacts", cid, "companies", company, 1)
        if renewal:
            self.fake.associate(
                "contacts", cid, "companies", company, RENEWAL_CONTACT_TYPE, "USER_DEFINED"
            )
        return cid

    def contract(
        self,
        company: str,
        end: date,
        *,
        lines: tuple = (("SEAT", 10, 100.0),),
        uplift: float | None = None,
        name: str = "Acme 2026",
        stage: str = "closedwon",
    ) -> str:
        props = {
            "dealname": name,
            "pipeline": "default",
            "dealstage": stage,
            "contract_start_date": "2025-01-01",
            "contract_end_date": end.isoformat(),
            "deal_currency_code": "USD",
        }
        if uplift is not None:
            props["renewal_uplift_percent"] = uplift
        deal = self.fake.create("deals", props)
        self.fake.associate("deals", deal, "companies", company, 5)
        for code, qty, price in lines:
            self.line(deal, code, qty, price)
        return deal

    def line(self, deal: str, code: str, qty: float, price: float) -> str:
        item = self.fake.create(
            "line_items",
            {
                "hs_sku": code,
                "name": code,
                "quantity": qty,
                "price": price,
                "recurringbillingfrequency": "annually",
            },
        )
        self.fake.associate("line_items", item, "deals", deal, 20)
        return item

    def renewal(self, key: str) -> dict:
        found = self.fake.find("deals", "renewal_key", key)
        assert found is not None, f"no renewal deal {key}"
        return found


def health_by_id(crm: HubSpotCrm) -> None:
    """account_health updated by object id (batch update), as the shipped mapping does."""
    health = ObjectMapping(
        object="companies",
        id_field="hs_object_id",
        key_field="hs_object_id",
        fields={"score": FieldSpec(field="renewal_health_score", type="number")},
    )
    crm.mapping = crm.mapping.model_copy(
        update={"models": {**crm.mapping.models, "account_health": health}}
    )


def settings(fake: FakeHubSpot, **kw) -> HubspotSettings:
    return HubspotSettings(base_url=fake.url, **kw)


def make_crm(fake: FakeHubSpot, *, interval: float = 10.0, sleep=None, **kw) -> HubSpotCrm:
    mapping = load_mapping(MAPPING, expect_crm="hubspot")
    extra = {"sleep": sleep} if sleep else {}
    return HubSpotCrm(mapping, settings(fake, **kw), fake.token, interval=interval, **extra)


@pytest.fixture
def fake():
    server = FakeHubSpot(search_per_second=0)  # limits have their own tests
    server.start()
    server.define_connector_properties()
    yield server
    server.stop()


@pytest.fixture
def crm(fake):
    adapter = fast(make_crm(fake))
    yield adapter
    adapter.close()


@pytest.fixture
def hub(fake) -> HubBook:
    return HubBook(fake)


def hubspot_config(folder: Path, fake: FakeHubSpot, **sections) -> Path:
    """An app.yaml for crm: hubspot against the fake (stage ids of its default pipeline)."""
    path = write_config(
        folder,
        crm="hubspot",
        mapping=str(MAPPING),
        hubspot={"base_url": fake.url, **sections.pop("hubspot", {})},
        **sections,
    )
    data = yaml.safe_load(path.read_text())
    data["renewals"].update(
        initial_stage="appointmentscheduled",
        closed_won_stages=["closedwon"],
        closed_lost_stages=["closedlost"],
        **sections.get("renewals", {}),
    )
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def hub_context(tmp_path, fake, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    ctx = bootstrap.build(load_config(hubspot_config(tmp_path, fake)))
    ctx.sleep = lambda _s: None
    fast(ctx.crm)
    yield ctx
    ctx.close()
