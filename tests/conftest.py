"""Shared fixtures: a sandbox CRM with a hand-built book, and the context the services use."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
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


#: the PostgreSQL the tests use (this machine's: trust auth, database `test`); each test gets a
#: schema of its own in it
TEST_POSTGRES = os.environ.get(
    "RENEWALS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test PostgreSQL's URL; the tests that need it skip, saying why, when none answers."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("no PostgreSQL driver: pip install -e '.[dev]' (or crm-renewals[postgres])")
    try:
        psycopg.connect(TEST_POSTGRES, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        pytest.skip(f"no PostgreSQL at {TEST_POSTGRES.split('@')[-1]}: {reason}")
    return TEST_POSTGRES


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A state URL of this test's own: a new schema in the test database (the URL sets the
    search path), dropped afterwards with everything in it."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    # the application name: which sessions are this test's, so none outlives it
    yield f"{postgres_server}?options=-csearch_path%3D{schema}&application_name={schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )
        # and the schemas of the connections the test added (`<schema>_<connection>`)
        extra = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (schema + "\\_%",)
        ).fetchall()
        for (name,) in [(schema,), *extra]:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
