"""Reading from HubSpot: search paging, the 10,000 cap, increments, archived and merged records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from crm_renewals.connector.domain.mapping import to_model
from crm_renewals.connector.ports import Cursor
from tests.fakes.hubspot_schema import RENEWAL_CONTACT_TYPE
from tests.fakes.hubspot_server import iso
from tests.hubspot.conftest import fast, make_crm


def read_all(crm, kind, since=None):
    return [r for page in crm.read_changes(kind, since) for r in page]


def test_full_read_pages_with_after_oldest_first(crm, fake):
    ids = [fake.create("companies", {"name": f"Co {i}"}) for i in range(450)]
    pages = list(crm.read_changes("account", None))
    assert [len(p) for p in pages] == [200, 200, 50]
    records = [r for p in pages for r in p]
    assert [r.id for r in records] == ids
    assert [r.cursor for r in records] == sorted(r.cursor for r in records)
    assert fake.count("/companies/search") == 3 and fake.statuses[400] == 0


def test_search_cap_moves_the_window_forward_instead_of_stopping(crm, fake):
    ids = {fake.create("companies", {"name": f"Co {i}"}) for i in range(10_450)}
    records = read_all(crm, "account")
    assert {r.id for r in records} == ids and len(records) == len(ids)
    assert fake.statuses[400] == 0  # never asked past the cap
    assert fake.count("/companies/search") > 10_450 // 200


def test_records_sharing_a_stamp_across_the_cap_are_read_once(crm, fake):
    ids = {fake.create("companies", {"name": f"Co {i}"}) for i in range(9_900)}
    later = datetime.now(UTC) + timedelta(hours=1)
    for offset, count in ((0, 300), (1, 100)):  # results 9,901..10,200 share one stamp
        stamp = iso(later + timedelta(minutes=offset))
        ids |= {fake.create("companies", {"name": "Same"}, stamp=stamp) for _ in range(count)}
    records = read_all(crm, "account")
    assert len(records) == len(ids) == len({r.id for r in records})
    assert fake.count("/companies/search") > 51 and fake.statuses[400] == 0


def test_incremental_read_returns_changes_since_the_cursor_with_deletes(crm, fake, hub):
    company = hub.company("Acme")
    old = hub.contract(company, date(2027, 3, 31), name="Old")
    keep = hub.contract(company, date(2027, 6, 30), name="Keep")
    cursor = read_all(crm, "contract")[-1].cursor
    fake.edit("deals", keep, {"dealname": "Keep v2"})
    fake.archive("deals", old)
    fake.create("deals", {"dealname": "Open deal", "dealstage": "qualifiedtobuy"})
    changed = read_all(crm, "contract", cursor)
    assert [(r.id, r.deleted) for r in changed] == [(keep, False), (old, True)]
    assert changed[0].fields["dealname"] == "Keep v2"
    assert changed[0].fields["associated_company_id"] == company


def test_records_archived_before_the_cursor_cost_no_association_read(crm, fake, hub):
    company = hub.company("Acme")
    old = hub.contract(company, date(2027, 3, 31), name="Old")
    fake.archive("deals", old)
    hub.contract(company, date(2027, 6, 30), name="Keep")
    cursor = read_all(crm, "contract")[-1].cursor
    before = fake.count("associations")
    assert read_all(crm, "contract", cursor) == []
    # one read, for the newest deal the overlap reads again; none for the old archived one
    assert fake.count("associations") - before == 1


def test_merged_records_are_flagged_deleted(crm, fake):
    a = fake.create("companies", {"name": "Acme"})
    b = fake.create("companies", {"name": "Acme Inc"})
    cursor = read_all(crm, "account")[-1].cursor
    fake.merge("companies", a, b)
    changed = {r.id: r.deleted for r in read_all(crm, "account", Cursor(cursor.modified_at))}
    assert changed == {a: False, b: True}


def test_contacts_carry_company_and_renewal_label(crm, hub):
    company = hub.company("Acme")
    ann = hub.contact(company, "Ann Buyer", renewal=True)
    bob = hub.contact(company, "Bob User", renewal=False)
    got = {r.id: to_model(crm.mapping, "contact", r.fields) for r in read_all(crm, "contact")}
    assert (got[ann].account_id, got[ann].renewal_contact) == (company, True)
    assert (got[bob].account_id, got[bob].renewal_contact) == (company, False)


def test_contract_lines_point_at_their_contract_and_renewal_lines_are_apart(crm, hub):
    deal = hub.contract(hub.company(), date(2027, 3, 31), lines=(("SEAT", 5, 10.0),))
    (line,) = read_all(crm, "contract_line")
    model = to_model(crm.mapping, "contract_line", line.fields)
    assert (model.contract_id, model.product_code, model.quantity) == (deal, "SEAT", 5)
    assert read_all(crm, "renewal_line") == []


def test_owners_read_from_the_official_sample_pages(crm, fake):
    active = fake.load_owners()
    (gone,) = fake.load_owners("owners_page_archived.json")
    owners = {r.id: to_model(crm.mapping, "owner", r.fields) for r in read_all(crm, "owner")}
    assert {o: owners[o].active for o in [*active, gone]} == {
        "11223344": True,
        "11223355": True,
        "11223366": False,
    }
    assert owners["11223344"].email == "jane.rep@example.com"


def test_archived_owners_are_inactive(crm, hub, fake):
    active = hub.owner("Jane Rep")
    gone = hub.owner("Lee Former", archived=True)
    owners = {r.id: to_model(crm.mapping, "owner", r.fields) for r in read_all(crm, "owner")}
    assert (owners[active].active, owners[gone].active) == (True, False)
    assert owners[active].name == "Jane Rep"
    assert fake.count("GET /crm/v3/owners/") == 2  # active, then archived


def test_read_ids_flags_archived_and_leaves_out_unknown(crm, fake):
    a = fake.create("companies", {"name": "A"})
    b = fake.create("companies", {"name": "B"})
    fake.archive("companies", b)
    got = {r.id: r.deleted for r in crm.read_ids("account", [a, b, "999999"])}
    assert got == {a: False, b: True}


def test_api_calls_count_every_request(fake):
    crm = fast(make_crm(fake))
    fake.create("companies", {"name": "A"})
    before = sum(fake.calls.values())
    read_all(crm, "account")
    assert crm.api_calls == sum(fake.calls.values()) - before > 0


def test_read_ids_tells_contracts_from_renewal_deals(crm, fake, hub):
    company = hub.company()
    contract = hub.contract(company, date(2027, 3, 31))
    renewal = fake.create("deals", {"dealname": "Renewal", "renewal_key": "k1"})
    fake.associate("deals", renewal, "companies", company, 5)  # ours: on its company
    assert [r.id for r in crm.read_ids("contract", [contract, renewal])] == [contract]
    assert [r.id for r in crm.read_ids("renewal_opportunity", [contract, renewal])] == [renewal]
    fake.archive("deals", contract)
    (gone,) = crm.read_ids("contract", [contract, renewal])
    assert gone.deleted and gone.fields["associated_company_id"]


def test_association_reads_follow_each_records_paging_past_500_links(crm, fake, hub):
    """HubSpot pages one object's links (500 a page): a contact linked to 520 companies, the
    renewal-contact label on the 515th link, is read to the end."""
    contact = fake.create("contacts", {"firstname": "Ann", "lastname": "Lee"})
    companies = [fake.create("companies", {"name": f"Co {i}"}) for i in range(520)]
    for i, company in enumerate(companies):
        fake.associate("contacts", contact, "companies", company, 1)
        if i == 514:
            fake.associate(
                "contacts", contact, "companies", company, RENEWAL_CONTACT_TYPE, "USER_DEFINED"
            )
    (record,) = read_all(crm, "contact")
    assert record.fields["renewal_contact_label"] is True
    assert fake.count("/associations/contacts/companies/batch/read") == 2


def test_a_company_with_523_deals_and_a_contract_with_520_lines_keep_every_link(
    hub_context, fake, hub
):
    from crm_renewals.connector.services import sync
    from crm_renewals.connector.services.gather import load_book

    company = hub.company("Acme")
    deals = [hub.contract(company, date(2029, 1, 31), name=f"D{i}", lines=()) for i in range(523)]
    for i in range(520):
        hub.line(deals[0], f"SKU{i}", 1, 10.0)
    assert sync(hub_context, as_of=date(2026, 11, 23)).failed == 0
    book = load_book(hub_context.store)
    assert {book.contracts[d].account_id for d in deals} == {company}
    assert len(book.lines_of(deals[0])) == 520
