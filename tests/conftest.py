"""Shared fixtures: a sandbox CRM with a hand-built book, and the context the services use."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.config import load_config

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 23)


def write_config(folder: Path, **sections) -> Path:
    """An app.yaml in `folder` (data under it), based on the repo's, with `sections` merged."""
    data = yaml.safe_load((ROOT / "app.yaml").read_text())
    data["data_dir"] = str(folder / "data")
    data["mapping"] = str(ROOT / "mappings" / "sandbox.yaml")
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = folder / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli_for(config: Path):
    """`renewals --config CONFIG ...` in-process; errors raise instead of hiding in output."""
    from click.testing import CliRunner

    from crm_renewals.connector.cli import main

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)

    return invoke


class Book:
    """Builds records in the sandbox CRM as its users would."""

    def __init__(self, crm: SandboxCrm):
        self.crm = crm
        self.products = {}
        for code, price in (("SEAT", 100.0), ("SUPPORT", 1000.0), ("ADDON", 500.0)):
            self.products[code] = crm.insert(
                "Product2", {"ProductCode": code, "Name": code, "ListPrice": price}
            )
        self.manager = self.user("Morgan Manager")

    def user(self, name: str, active: bool = True, manager: str | None = None) -> str:
        return self.crm.insert(
            "User",
            {
                "Name": name,
                "Email": f"{name[:3].lower()}@x.test",
                "IsActive": active,
                "ManagerId": manager,
            },
        )

    def account(self, name: str = "Acme", owner: str | None = None) -> str:
        owner = owner or self.user(f"{name} Owner", manager=self.manager)
        return self.crm.insert("Account", {"Name": name, "OwnerId": owner, "Segment__c": "SMB"})

    def contact(self, account: str, name: str, renewal: bool = True) -> str:
        return self.crm.insert(
            "Contact",
            {
                "AccountId": account,
                "Name": name,
                "Email": f"{name.split()[0].lower()}@acme.test",
                "Renewal_Contact__c": renewal,
            },
        )

    def contract(
        self,
        account: str,
        end: date | None,
        *,
        status: str = "Activated",
        lines: tuple = (("SEAT", 10, 100.0),),
        uplift: float | None = None,
        number: str = "00001",
    ) -> str:
        cid = self.crm.insert(
            "Contract",
            {
                "AccountId": account,
                "ContractNumber": number,
                "Status": status,
                "StartDate": "2025-01-01",
                "EndDate": end.isoformat() if end else None,
                "Renewal_Uplift__c": uplift,
                "CurrencyIsoCode": "USD",
            },
        )
        for code, qty, price in lines:
            self.line(cid, code, qty, price)
        return cid

    def line(self, contract: str, code: str, qty: float, price: float, recurring=True) -> str:
        product = self.products.get(code, "01tSB9999999999")
        return self.crm.insert(
            "ContractLine",
            {
                "ContractId": contract,
                "Product2Id": product,
                "Quantity": qty,
                "UnitPrice": price,
                "IsRecurring": recurring,
            },
        )

    def opportunities(self) -> list[dict]:
        """Renewal opportunities (those with a renewal key)."""
        return [o for o in self.crm.all("Opportunity") if o.get("Renewal_Key__c")]

    def opportunity(self, key: str) -> dict:
        (found,) = [o for o in self.crm.all("Opportunity") if o.get("Renewal_Key__c") == key]
        return found


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def context(config_path: Path):
    ctx = bootstrap.build(load_config(config_path))
    ctx.sleep = lambda _s: None
    yield ctx
    ctx.close()


@pytest.fixture
def book(context) -> Book:
    return Book(context.crm)
