"""The Salesforce adapter against real-shaped REST payloads (fixtures) and the fake org."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
import responses
import yaml

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.errors import ApiLimitReached, ConfigError, FatalCrmError
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.ports import OutboundRecord
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF, ROOT
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import SALESFORCE_ENV, salesforce_config
from tests.fakes.salesforce_org import BASE, FakeOrg

FIXTURES = ROOT / "tests" / "fixtures" / "salesforce"
SESSION_ENV = {"SALESFORCE_SESSION_ID": "00Dxx!token", "SALESFORCE_INSTANCE_URL": BASE[:-21]}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def direct_crm(**settings) -> SalesforceCrm:
    s = SalesforceSettings(auth="session", **settings)
    mapping = load_mapping(ROOT / "mappings" / "salesforce.yaml")
    return SalesforceCrm(connect(s, SESSION_ENV), mapping, s)


@pytest.fixture
def org_context(rsps, tmp_path, monkeypatch):
    """A sync context on crm: salesforce, talking to a fake org."""
    org = FakeOrg(rsps)
    path = salesforce_config(tmp_path, monkeypatch)
    ctx = bootstrap.build(load_config(path))
    waits: list[float] = []
    ctx.sleep = waits.append
    yield ctx, org, SalesforceBook(org), waits
    ctx.close()


def due_contracts(book, count: int, lines: int = 1):
    owner = book.user("Sam Rep")
    for i in range(count):
        acc = book.account(f"Account {i}", owner=owner)
        codes = [("SEAT", 10, 100.0), ("SUPPORT", 1, 1000.0), ("ADDON", 2, 500.0)][:lines]
        book.contract(acc, AS_OF.replace(year=2027, month=3, day=1), lines=tuple(codes))


# ------------------------------------------------------------------ wire format (fixtures)


def test_query_follows_next_records_url_across_two_pages(rsps):
    page1, page2 = fixture("query_contracts_page1.json"), fixture("query_contracts_page2.json")
    rsps.get(f"{BASE}queryAll/", json=page1)
    rsps.get(f"https://fake.my.salesforce.com{page1['nextRecordsUrl']}", json=page2)
    crm = direct_crm()
    pages = list(crm.read_changes("contract", None))
    assert [[r.id for r in p] for p in pages] == [
        ["800000000000AaAAAU", "800000000000AbAAAU"],
        ["800000000000AcAAAU"],
    ]
    first = pages[0][0]
    assert first.modified_at.isoformat() == "2026-11-02T09:15:27+00:00" and not first.deleted
    assert "attributes" not in first.fields and first.fields["EndDate"] == "2027-03-31"
    soql = rsps.calls[0].request.params["q"]
    assert soql.startswith("SELECT Id, SystemModstamp, AccountId, ContractNumber")
    assert soql.endswith("FROM Contract ORDER BY SystemModstamp, Id")
    assert rsps.calls[0].request.headers["Sforce-Query-Options"] == "batchSize=2000"
    assert crm.api_calls == 2


def test_collection_upsert_reports_each_record_with_salesforce_codes(rsps):
    rsps.patch(
        f"{BASE}composite/sobjects/Opportunity/Renewal_Key__c",
        json=fixture("collections_upsert_response_mixed.json"),
    )
    crm = direct_crm(pricebook_id="01s000000000AaAAAU")
    sent = fixture("collections_upsert_request.json")["records"]
    records = [
        OutboundRecord(r["Renewal_Key__c"], {k: v for k, v in r.items() if k != "attributes"})
        for r in sent
    ]
    results = crm.upsert("renewal_opportunity", records)
    assert [(r.ok, r.created) for r in results] == [(True, True), (True, False), (False, False)]
    assert results[0].crm_id == "006000000000AaAAAU"
    assert results[2].error_code == "INACTIVE_OWNER_OR_USER"
    assert "inactive user" in results[2].message
    body = json.loads(rsps.calls[0].request.body)
    assert body["allOrNone"] is False
    assert body["records"][0]["attributes"] == {"type": "Opportunity"}
    assert body["records"][2]["Pricebook2Id"] == "01s000000000AaAAAU"


def test_get_deleted_shape_is_not_needed_query_all_flags_deleted_records(rsps):
    page = fixture("query_contracts_page2.json")
    page["records"][0]["IsDeleted"] = True
    rsps.get(f"{BASE}queryAll/", json=page)
    (record,) = next(iter(direct_crm().read_changes("contract", None)))
    assert record.deleted


def test_other_4xx_is_not_retried_and_says_what_to_fix(rsps):
    rsps.get(f"{BASE}queryAll/", json=fixture("error_malformed_id.json"), status=400)
    crm = direct_crm()
    with pytest.raises(FatalCrmError, match="MALFORMED_ID.*mappings validate --online"):
        list(crm.read_changes("contract", None))
    assert len(rsps.calls) == 1


# ------------------------------------------------------------------ authentication


def test_missing_credentials_name_the_environment_variable():
    with pytest.raises(ConfigError, match="SALESFORCE_SECURITY_TOKEN"):
        connect(SalesforceSettings(), {"SALESFORCE_USERNAME": "u", "SALESFORCE_PASSWORD": "p"})


def test_bad_credentials_stop_with_the_settings_to_fix(rsps):
    org = FakeOrg(rsps)
    org.password_ok = False
    with pytest.raises(FatalCrmError, match="INVALID_LOGIN.*SALESFORCE_PASSWORD.*domain"):
        connect(SalesforceSettings(), SALESFORCE_ENV)


def test_sandbox_orgs_log_in_at_test_salesforce_com(rsps):
    FakeOrg(rsps)
    connect(SalesforceSettings(domain="test"), SALESFORCE_ENV)
    assert rsps.calls[0].request.url.startswith("https://test.salesforce.com/services/Soap/u/59.0")


def test_expired_session_is_renewed_once_and_the_call_retried(rsps):
    org = FakeOrg(rsps)
    s = SalesforceSettings()
    crm = SalesforceCrm(
        connect(s, SALESFORCE_ENV), load_mapping(ROOT / "mappings/salesforce.yaml"), s
    )
    org.insert("User", {"Name": "Sam", "IsActive": True})
    org.expire_session()
    (page,) = list(crm.read_changes("owner", None))
    assert len(page) == 1 and org.logins == 2


def test_a_given_session_cannot_be_renewed_and_says_so(rsps):
    org = FakeOrg(rsps)
    org.session = "SOMETHING-ELSE"
    with pytest.raises(FatalCrmError, match="SALESFORCE_SESSION_ID"):
        list(direct_crm().read_changes("owner", None))


def test_a_reps_price_book_switch_survives_the_next_update_of_the_renewal(org_context):
    ctx, org, book, _ = org_context
    due_contracts(book, 1)
    sync(ctx, as_of=AS_OF)
    (opp,) = book.opportunities()
    assert opp["Pricebook2Id"] == org.standard_pricebook  # set when the renewal is created
    partner = org.insert("Pricebook2", {"Name": "Partner Price Book", "IsActive": True})
    org.edit("Opportunity", opp["Id"], {"Pricebook2Id": partner})
    assert sync(ctx, as_of=AS_OF).writes == {}  # the switch is no field of ours
    org.edit("Account", opp["AccountId"], {"Name": "Account 0 Renamed"})
    report = sync(ctx, as_of=AS_OF)  # the renewal itself is not read again: unchanged since
    assert report.writes == {"renewal_opportunity.update": 1}  # the name follows the account
    assert org.get("Opportunity", opp["Id"])["Name"].startswith("Account 0 Renamed")
    assert org.get("Opportunity", opp["Id"])["Pricebook2Id"] == partner


def test_a_changed_line_already_in_salesforce_is_sent_once_without_insert_only_fields(
    org_context,
):
    ctx, org, book, _ = org_context
    due_contracts(book, 1)
    sync(ctx, as_of=AS_OF)
    (line,) = [x for x in org.all("OpportunityLineItem") if not x.get("Renewal_Line_Key__c")]
    org.edit("OpportunityLineItem", line["Id"], {"Quantity": 12})
    org.calls.clear()
    assert sync(ctx, as_of=AS_OF).writes["renewal_line.update"] == 1
    assert org.calls_to("OpportunityLineItem/Renewal_Line_Key__c") == 1
    assert [x["Quantity"] for x in renewal_items(org)] == [12]


def test_a_line_thought_new_that_exists_is_sent_again_without_insert_only_fields(org_context):
    ctx, org, book, _ = org_context
    due_contracts(book, 1)
    sync(ctx, as_of=AS_OF)
    (item,) = renewal_items(org)
    ctx.crm.ids.clear()  # as in a run that has not read it, told nothing of it
    fields = {"ProductCode": "SEAT", "Quantity": 11, "UnitPrice": 105.0}
    key, renewal = item["Renewal_Line_Key__c"], item["Renewal_Line_Key__c"].rsplit(":", 1)[0]
    org.calls.clear()
    (result,) = ctx.crm.upsert("renewal_line", [OutboundRecord(key, fields, renewal)])
    assert result.ok and not result.created and result.crm_id == item["Id"]
    assert org.calls_to("OpportunityLineItem/Renewal_Line_Key__c") == 2  # refused, then again
    assert org.get("OpportunityLineItem", item["Id"])["Quantity"] == 11


def test_a_line_thought_to_exist_that_is_gone_is_created_again_with_insert_only_fields(
    org_context,
):
    ctx, org, book, _ = org_context
    due_contracts(book, 1)
    sync(ctx, as_of=AS_OF)
    (item,) = renewal_items(org)
    del org.records["OpportunityLineItem"][item["Id"]]  # purged, never seen deleted
    ctx.crm.ids.clear()
    fields = {"ProductCode": "SEAT", "Quantity": 11, "UnitPrice": 105.0}
    key, renewal = item["Renewal_Line_Key__c"], item["Renewal_Line_Key__c"].rsplit(":", 1)[0]
    org.calls.clear()
    (result,) = ctx.crm.upsert("renewal_line", [OutboundRecord(key, fields, renewal, exists=True)])
    assert result.ok and result.created
    assert org.calls_to("OpportunityLineItem/Renewal_Line_Key__c") == 2  # refused, then again
    (again,) = renewal_items(org)
    assert again["Quantity"] == 11 and again["OpportunityId"] == item["OpportunityId"]


# ------------------------------------------------------------------ retries and limits


def test_429_and_503_are_retried_honouring_retry_after_then_succeed(org_context):
    ctx, org, book, waits = org_context
    due_contracts(book, 2)
    org.fail_next(503, [{"message": "down for maintenance", "errorCode": "SERVER_UNAVAILABLE"}])
    org.fail_next(429, [{"message": "slow down", "errorCode": "TOO_MANY"}], {"Retry-After": "7"})
    report = sync(ctx, as_of=AS_OF)
    assert (report.status, report.created) == ("ok", 2)
    assert len(waits) == 2 and waits[1] == 7.0


def test_unable_to_lock_row_is_retried(org_context):
    ctx, org, book, waits = org_context
    due_contracts(book, 1)
    org.fail_next(400, json.loads((FIXTURES / "error_unable_to_lock_row.json").read_text()))
    assert sync(ctx, as_of=AS_OF).created == 1
    assert len(waits) == 1


def test_request_limit_exceeded_stops_the_run_at_once_and_the_next_run_resumes(org_context):
    ctx, org, book, waits = org_context
    due_contracts(book, 3)
    org.fail_next(403, fixture("error_request_limit_exceeded.json"))
    with pytest.raises(ApiLimitReached, match="TotalRequests Limit exceeded"):
        sync(ctx, as_of=AS_OF)
    assert waits == [] and ctx.store.runs.list()[0].status == "stopped"
    assert ctx.store.cursors.get("contract") is None  # nothing skipped next time
    assert sync(ctx, as_of=AS_OF).created == 3


def test_run_stops_cleanly_when_daily_usage_passes_the_configured_share(org_context):
    ctx, org, book, _ = org_context
    due_contracts(book, 3)
    org.api_limit, org.api_used = 1000, 795  # the guard trips once usage reaches 80%
    with pytest.raises(ApiLimitReached, match=r"800 of its 1,000 daily API requests \(80%\)"):
        sync(ctx, as_of=AS_OF)
    assert ctx.store.runs.list()[0].status == "stopped"
    assert org.api_used == 800  # no call after the guard tripped
    org.api_used = 0  # a new day
    ctx.crm.api_usage = None
    report = sync(ctx, as_of=AS_OF)
    # the stopped run may have created renewals (reads cost 2 calls): this one completes them
    assert report.created + report.updated == 3 and len(book.opportunities()) == 3


# ------------------------------------------------------------------ quota: calls per sync


@pytest.mark.parametrize("write_api", ["composite", "collections"])
def test_a_1000_contract_sync_makes_exactly_the_lower_bound_of_calls(
    rsps, tmp_path, monkeypatch, write_api
):
    org = FakeOrg(rsps)
    settings = {"write_api": write_api, "bulk_write_threshold": None}  # REST writes only
    path = salesforce_config(tmp_path, monkeypatch, salesforce=settings)
    ctx = bootstrap.build(load_config(path))
    book = SalesforceBook(org)
    due_contracts(book, 1000, lines=2)
    org.calls.clear()
    report = sync(ctx, as_of=AS_OF)
    assert (report.created, report.failed, report.dead_letters) == (1000, 0, 0)
    page = ctx.config.sync.page_size
    reads = {
        "User": 2,
        "Account": 1000,
        "Contact": 0,
        "Contract": 1000,
        "OpportunityLineItem": 2000,  # contract lines (the original deals' items)
        "Opportunity": 0,
        "OpportunityLineItem ": 0,  # renewal lines, none yet
        "Task": 0,  # the connector's tasks, none yet
    }
    # the first page of each kind: five to a Composite call; the pages after: a call each
    query_pages = math.ceil(len(reads) / 5) + sum(
        max(1, math.ceil(n / page)) - 1 for n in reads.values()
    )
    price_book = 2  # standard price book, then its entries
    per_call = {"composite": 1000, "collections": 200}[write_api]  # composite.py: the limits
    assert ctx.crm.max_batch == per_call
    writes = sum(math.ceil(n / per_call) for n in report.writes.values())
    assert report.writes["renewal_opportunity.create"] == 1000
    assert report.api_calls == query_pages + price_book + writes
    assert report.api_calls == len(org.calls)
    second = sync(ctx, as_of=AS_OF)
    # a first page of each kind, five to a call, then the pages after the first of the tasks
    # the first sync wrote
    tasks_pages = math.ceil(report.writes["task.create"] / page)
    assert second.writes == {} and second.api_calls == 2 + tasks_pages - 1
    ctx.close()


# ------------------------------------------------------------------ Salesforce CPQ


@pytest.fixture
def cpq_context(rsps, tmp_path, monkeypatch):
    org = FakeOrg(rsps)
    text = (ROOT / "mappings" / "salesforce.yaml").read_text()
    mapping = tmp_path / "salesforce-cpq.yaml"
    mapping.write_text(
        text.replace("# renewal_forecast:", "renewal_forecast:").replace("# cpq_", "cpq_")
    )
    path = salesforce_config(tmp_path, monkeypatch, mapping, renewals={"renewal_mode": "cpq"})
    ctx = bootstrap.build(load_config(path))
    ctx.sleep = lambda _s: None
    yield ctx, org, SalesforceBook(org)
    ctx.close()


def test_cpq_mode_asks_cpq_for_the_renewal_then_adds_tasks_to_it(cpq_context):
    ctx, org, book = cpq_context
    owner = book.user("Sam Rep")
    acc = book.account("Acme", owner=owner)
    book.contact(acc, "Ann Lee")
    end = AS_OF + timedelta(days=100)  # asked before the latest-creation point
    cid = book.contract(acc, end)
    first = sync(ctx, as_of=AS_OF)
    assert first.writes == {"contract.update": 1}
    assert org.get("Contract", cid)["SBQQ__RenewalForecast__c"] is True
    assert book.opportunities() == [] and renewal_items(org) == []
    waiting = sync(ctx, as_of=AS_OF)  # CPQ has not made the renewal yet
    assert waiting.skip_reasons == {"awaiting_cpq": 1} and waiting.writes == {}
    # CPQ creates its renewal opportunity and links it from the contract
    cpq_opp = org.insert(
        "Opportunity",
        {
            "Name": "Acme Renewal (CPQ)",
            "AccountId": acc,
            "StageName": "Prospecting",
            "CloseDate": end.isoformat(),
            "OwnerId": owner,
        },
    )
    org.edit("Contract", cid, {"SBQQ__RenewalOpportunity__c": cpq_opp})
    enriched = sync(ctx, as_of=AS_OF)
    assert enriched.writes.get("task.create", 0) >= 1 and set(enriched.writes) == {"task.create"}
    tasks, journey = term_tasks(org), journey_tasks(org)
    assert journey and all(t["WhatId"].startswith("001") for t in journey)  # on the account
    assert {t["WhatId"] for t in tasks} == {cpq_opp}
    assert any("Ann Lee" in (t.get("Description") or "") for t in tasks)
    assert book.opportunities() == [] and renewal_items(org) == []  # CPQ's, untouched
    assert sync(ctx, as_of=AS_OF).writes == {}


def test_cpq_tasks_go_on_cpqs_renewal_without_looking_it_up(cpq_context, rsps):
    """The plan knows CPQ's renewal (read with the contract): no query for renewals under our
    key (there are none in CPQ mode) and none for the contracts (read already)."""
    ctx, org, book = cpq_context
    owner = book.user("Sam Rep")
    renewals = set()
    for i in range(3):
        acc = book.account(f"Acme {i}", owner=owner)
        book.contact(acc, f"Ann Lee{i}")
        cid = book.contract(acc, AS_OF.replace(year=2027, month=2, day=1))
        opp = org.insert(
            "Opportunity",
            {
                "Name": f"Acme {i} Renewal (CPQ)",
                "AccountId": acc,
                "StageName": "Prospecting",
                "CloseDate": "2027-02-01",
                "OwnerId": owner,
            },
        )
        org.edit(
            "Contract", cid, {"SBQQ__RenewalForecast__c": True, "SBQQ__RenewalOpportunity__c": opp}
        )
        renewals.add(opp)
    start = len(rsps.calls)
    report = sync(ctx, as_of=AS_OF)
    queries = [c.request.url for c in rsps.calls[start:] if "/query/" in c.request.url]
    assert not [q for q in queries if "Renewal_Key__c+IN" in q or "FROM+Contract+WHERE+Id" in q]
    assert {t["WhatId"] for t in term_tasks(org)} == renewals
    # 8 kinds read (five to a Composite call), then the tasks in one call
    assert (report.api_calls, report.writes) == (3, {"task.create": report.tasks_created})


def test_cpq_mode_needs_the_cpq_fields_mapped(rsps, tmp_path, monkeypatch):
    FakeOrg(rsps)
    path = salesforce_config(tmp_path, monkeypatch, renewals={"renewal_mode": "cpq"})
    with pytest.raises(ConfigError, match="SBQQ__RenewalForecast__c"):
        bootstrap.build(load_config(path))


def renewal_items(org) -> list[dict]:
    return [x for x in org.all("OpportunityLineItem") if x.get("Renewal_Line_Key__c")]


def test_renewal_contacts_can_come_from_contact_roles(rsps, tmp_path, monkeypatch):
    org = FakeOrg(rsps)
    mapping = yaml.safe_load((ROOT / "mappings" / "salesforce.yaml").read_text())
    mapping["models"]["contact"] = {
        "object": "AccountContactRole",
        "modified_field": "SystemModstamp",
        "options": {"where": [{"field": "Role", "op": "IN", "value": ["Decision Maker"]}]},
        "fields": {
            "id": "ContactId",
            "account_id": "AccountId",
            "name": "Contact.Name",
            "email": "Contact.Email",
            "role": "Role",
            "renewal_contact": {"const": True},
        },
    }
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(mapping))
    path = salesforce_config(tmp_path, monkeypatch, tmp_path / "roles.yaml")
    ctx = bootstrap.build(load_config(path))
    book = SalesforceBook(org)
    acc = book.account("Acme")
    for who, role in (("Dana Decider", "Decision Maker"), ("Uma User", "End User")):
        contact = book.contact(acc, who, renewal=False)
        org.insert("AccountContactRole", {"AccountId": acc, "ContactId": contact, "Role": role})
    book.contract(acc, AS_OF.replace(year=2027, month=2, day=1))
    sync(ctx, as_of=AS_OF)
    notice = [t for t in org.all("Task") if t["Dedupe_Key__c"].endswith(":customer_notice")]
    assert "Dana Decider" in notice[0]["Description"]
    assert "Uma User" not in notice[0]["Description"]
    assert notice[0]["WhoId"].startswith("003")  # the contact, not the role record
    ctx.close()


def test_jwt_bearer_login_signs_an_assertion_with_the_private_key(rsps, tmp_path):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "server.key").write_bytes(pem)
    org = FakeOrg(rsps)
    env = {
        "SALESFORCE_USERNAME": "integration@acme.test",
        "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer",
        "SALESFORCE_PRIVATE_KEY_FILE": str(tmp_path / "server.key"),
    }
    s = SalesforceSettings(auth="jwt")
    crm = SalesforceCrm(connect(s, env), load_mapping(ROOT / "mappings/salesforce.yaml"), s)
    org.insert("User", {"Name": "Sam", "IsActive": True})
    assert len(next(iter(crm.read_changes("owner", None)))) == 1
    (form,) = org.token_requests
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        form["assertion"],
        key.public_key(),
        algorithms=["RS256"],
        audience=None,
        options={"verify_aud": False},
    )
    assert (claims["iss"], claims["sub"]) == ("3MVG9-consumer", "integration@acme.test")
    assert claims["aud"] == "https://login.salesforce.com"


def test_a_forecast_cpq_never_honours_is_named_then_re_flagged(cpq_context):
    """CPQ's renewal job fails (say, an inactive renewal owner): two days on, the contract is
    overdue in the sync and in the dead letters; `cpq retry` turns the forecast off and on
    again, CPQ creates the renewal, and the next sync puts the tasks on it."""
    from crm_renewals.connector.services.cpq import retry_forecasts
    from tests.fakes.salesforce_cpq import FakeCpq

    ctx, org, book = cpq_context
    cpq = FakeCpq(org, mode="fail")
    acc = book.account("Acme", owner=book.user("Sam Rep"))
    book.contact(acc, "Ann Lee")
    cid = book.contract(acc, AS_OF + timedelta(days=100))
    assert sync(ctx, as_of=AS_OF).writes == {"contract.update": 1} and cpq.failed == [cid]
    later = AS_OF + timedelta(days=2)
    stuck = sync(ctx, as_of=later)
    assert stuck.skip_reasons == {"cpq_overdue": 1}
    assert [p.contract_id for p in stuck.plans if p.renewal.reason == "cpq_overdue"] == [cid]
    (letter,) = ctx.store.dead_letters.list()
    assert (letter.error_code, letter.record_id) == ("CPQ_RENEWAL_OVERDUE", cid)
    assert f"since {AS_OF}" in letter.message

    cpq.mode = "now"  # the cause is fixed in CPQ
    retried = retry_forecasts(ctx, None, later)
    assert (retried.reflagged, retried.failed) == ([cid], {})
    renewal = org.get("Contract", cid)["SBQQ__RenewalOpportunity__c"]
    assert renewal and org.get("Opportunity", renewal)["Amount"] == 1000.0
    done = sync(ctx, as_of=later)
    assert set(done.writes) == {"task.create"} and ctx.store.dead_letters.list() == []
    assert {t["WhatId"] for t in term_tasks(org)} == {renewal}


def test_cpq_renewal_tasks_go_to_cpqs_owner_quoting_cpqs_amount_and_uplift(cpq_context):
    """CPQ priced the renewal (its own uplift) and chose its owner: the renewal's tasks quote
    CPQ's amount and the uplift it implies, for CPQ's owner; the account's own tasks stay with
    the account owner."""
    ctx, org, book = cpq_context
    rep, renewals_rep = book.user("Sam Rep"), book.user("Rita Renewals")
    acc = book.account("Acme", owner=rep)
    book.contact(acc, "Ann Lee")
    end = AS_OF + timedelta(days=50)  # the customer notice is due
    cid = book.contract(acc, end)  # 10 seats at 100: 1,000
    opp = org.insert(
        "Opportunity",
        {
            "Name": "Acme Renewal (CPQ)",
            "AccountId": acc,
            "StageName": "Prospecting",
            "CloseDate": end.isoformat(),
            "OwnerId": renewals_rep,
            "Amount": 1070.0,
        },
    )
    org.edit(
        "Contract", cid, {"SBQQ__RenewalForecast__c": True, "SBQQ__RenewalOpportunity__c": opp}
    )
    sync(ctx, as_of=AS_OF)
    tasks = {t["Dedupe_Key__c"]: t for t in org.all("Task")}
    notice = tasks[f"{cid}:{end}:customer_notice"]
    assert notice["OwnerId"] == renewals_rep and notice["WhatId"] == opp
    assert "1,070.00" in notice["Description"] and "uplift 7%" in notice["Description"]
    assert all(t["OwnerId"] == rep for k, t in tasks.items() if k.startswith(f"{acc}:"))


def test_cpq_retry_on_the_command_line(cpq_context, tmp_path):
    from tests.conftest import cli_for
    from tests.fakes.salesforce_cpq import FakeCpq

    ctx, org, book = cpq_context
    cpq = FakeCpq(org, mode="fail")
    cid = book.contract(book.account("Acme"), AS_OF + timedelta(days=100))
    sync(ctx, as_of=AS_OF)
    cli = cli_for(tmp_path / "app.yaml")
    assert cli("cpq", "retry").exit_code == 2  # neither ids nor --all: usage error
    assert cli("cpq", "retry", "800NOPE").exit_code == 2  # not waiting for CPQ
    cpq.mode = "now"
    done = cli("cpq", "retry", "--all", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["reflagged"] == [cid]
    assert org.get("Contract", cid)["SBQQ__RenewalOpportunity__c"]
    (retry,) = ctx.store.runs.list(1)
    assert retry.mode == "cpq_retry"
    assert (retry.mapping_hash, retry.config_hash) == tuple(f.hash for f in ctx.files)


def test_a_renewal_cpq_creates_later_is_awaited_then_found(cpq_context):
    """CPQ's renewal job runs later (asynchronously): the contract waits (not overdue within a
    day), and the sync after the job finds CPQ's renewal and adds the tasks to it."""
    from tests.fakes.salesforce_cpq import FakeCpq

    ctx, org, book = cpq_context
    cpq = FakeCpq(org, mode="later")
    acc = book.account("Acme")
    book.contact(acc, "Ann Lee")
    cid = book.contract(acc, AS_OF + timedelta(days=100))
    sync(ctx, as_of=AS_OF)
    assert sync(ctx, as_of=AS_OF).skip_reasons == {"awaiting_cpq": 1}
    cpq.run_jobs()
    renewal = org.get("Contract", cid)["SBQQ__RenewalOpportunity__c"]
    found = sync(ctx, as_of=AS_OF + timedelta(days=1))
    assert set(found.writes) == {"task.create"} and found.skip_reasons == {}
    assert {t["WhatId"] for t in term_tasks(org)} == {renewal}


def test_doctor_and_online_check_catch_a_wrong_field_and_a_stage_map_without_closed_lost(rsps):
    """The issue's scenario on the fake org: `amount` on a field the org lacks, and a `stage`
    value map without "Closed Lost" (describe's StageName picklist has it, and app.yaml's
    closed_lost_stages names it)."""
    org = FakeOrg(rsps)
    env = {**SESSION_ENV, "SALESFORCE_SESSION_ID": org.session}
    data = yaml.safe_load((ROOT / "mappings" / "salesforce.yaml").read_text())
    fields = data["models"]["renewal_opportunity"]["fields"]
    fields["amount"] = {"field": "Amount_Total__c", "type": "number", "computed": True}
    stages = {"Prospecting": "Prospecting", "Negotiation": "Negotiation"}
    fields["stage"] = {"field": "StageName", "map": {**stages, "Closed Won": "Closed Won"}}
    s = SalesforceSettings(auth="session")
    good = SalesforceCrm(connect(s, env), load_mapping(ROOT / "mappings" / "salesforce.yaml"), s)
    assert all(c.ok for c in good.doctor())
    crm = SalesforceCrm(connect(s, env), Mapping.model_validate(data), s)
    online = {c.name: c for c in crm.check_mapping_online() if not c.ok}
    doctor = {c.name: c for c in crm.doctor() if not c.ok}
    assert doctor == online and set(online) == {
        "field Opportunity.Amount_Total__c (renewal_opportunity.amount)",
        "value map Opportunity.StageName (renewal_opportunity.stage)",
        "renewals.closed_lost_stages 'Closed Lost' in the value map of Opportunity.StageName",
    }
    assert (
        "'Closed Lost'"
        in online["value map Opportunity.StageName (renewal_opportunity.stage)"].detail
    )


def journey_tasks(org) -> list[dict]:
    """The customer journey's tasks (app.yaml enables it): the account's, on the account."""
    return [t for t in org.all("Task") if ":journey:" in t["Dedupe_Key__c"]]


def term_tasks(org) -> list[dict]:
    """The tasks of contract terms and the account's other steps (not the journey's)."""
    return [t for t in org.all("Task") if ":journey:" not in t["Dedupe_Key__c"]]
