"""The record pages over the seeded demo book: contracts (search, and a contract's `explain`),
accounts' health, and dead letters (filter, inspect, retry in a real background run, discard
with a reason), through the Flask test client."""

from __future__ import annotations

import re
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.contracts import search_contracts
from tests.conftest import AS_OF, ROOT, cli_for, write_config
from tests.console.conftest import ADMIN, SECRET, post, sign_in

#: the demo book (seed 7): contract 800SB0000000039 is number 00000039 of Sterling Labs, its
#: renewal (open, Prospecting) owned by Pia Larsen
STERLING, STERLING_NUMBER = "800SB0000000039", "00000039"


def page(client, path: str, status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, answer.get_data(as_text=True)[:800]
    return answer.get_data(as_text=True)


def rows(html: str, css_class: str) -> list[str]:
    """The table rows of `css_class` on a page."""
    return re.findall(rf'<tr class="{css_class}[^"]*".*?</tr>', html, re.S)


# contracts


def test_contracts_are_found_by_account_name_and_by_number(admin):
    by_name = page(admin, "/admin/contracts?q=sterling+LABS")
    assert any(STERLING in r and "Sterling Labs" in r for r in rows(by_name, "contract-row"))
    assert all("Sterling Labs" in r for r in rows(by_name, "contract-row"))
    by_number = rows(page(admin, f"/admin/contracts?q={STERLING_NUMBER}"), "contract-row")
    assert any(STERLING in r and "Pia Larsen" in r for r in by_number)
    assert all(STERLING_NUMBER in r for r in by_number)  # its number, or its account's id
    nothing = page(admin, "/admin/contracts?q=no-such-contract-anywhere")
    assert rows(nothing, "contract-row") == [] and 'id="contracts-empty"' in nothing


def test_contracts_without_a_query_come_ending_soonest_first_fifty_a_page(admin):
    first = rows(page(admin, f"/admin/contracts?as_of={AS_OF}"), "contract-row")
    ends = [re.search(r'class="date" data-sort="([^"]*)"', r).group(1) for r in first]
    assert len(first) == 50
    assert ends[0] >= AS_OF.isoformat() and ends == sorted(ends)
    last = page(admin, "/admin/contracts?page=6")
    assert "page 6 of 6" in last and 0 < len(rows(last, "contract-row")) <= 50


def test_a_contract_with_a_renewal_is_explained_with_names_and_its_planned_writes(app, admin):
    day = AS_OF + timedelta(days=7)  # windows opened since the demo's sync: renewals to create
    state = app.extensions["console"]
    found = search_contracts(state.store, state.config, "", 1, day)
    coming = next(r for r in found.rows if r.renewal == "would")
    html = page(admin, f"/admin/contracts/{coming.contract_id}?as_of={day}")
    assert coming.account.name in html and coming.owner.name in html
    assert "will be created" in html
    writes = html.split('id="planned-writes"')[1].split("</section>")[0]
    assert "renewal_opportunity" in writes and "renewal_line" in writes and ">create<" in writes
    assert 'id="tasks"' in html and 'id="health"' in html and 'id="journey"' in html


def test_an_existing_renewal_is_explained_with_its_account_owner_health_and_contacts(admin):
    html = page(admin, f"/admin/contracts/{STERLING}?as_of={AS_OF}")
    assert "Sterling Labs" in html and "Pia Larsen" in html
    assert f"Renewal <strong>{STERLING}:2026-11-26</strong>" in html and "exists" in html
    assert "uplift 3%" in html and "PLAT-ENT" in html
    health = html.split('id="health"')[1].split("</section>")[0]
    assert "red 13" in health and "seat utilisation 40%" in health and "trend <strong>new" in health
    assert "Quinn Kowalski" in html  # the renewal contact the tasks name
    assert "Segment 13 of 18" in html


def test_a_contract_not_in_the_book_is_a_404_page_with_a_search_box(admin):
    html = page(admin, "/admin/contracts/800SB9999999999", 404)
    assert "is not in the synced book" in html and 'id="contract-search"' in html
    assert "not in the synced book" in page(admin, "/admin/contracts/" + "x" * 300, 404)


def test_a_contract_that_failed_to_map_says_why_and_names_its_dead_letter(admin):
    html = page(admin, "/admin/contracts/800SB0000000041")
    assert "missing_data" in html and "required value missing (CRM field EndDate)" in html
    assert "/admin/deadletters/1" in html


def test_a_crm_that_cannot_be_reached_leaves_search_working_and_explain_saying_why(
    demo_book, tmp_path
):
    from crm_renewals.webhooks.app import create_app

    shutil.copytree(demo_book / "data", tmp_path / "data")
    mapping = str(ROOT / "mappings" / "salesforce.yaml")
    config = load_config(write_config(tmp_path, crm="salesforce", mapping=mapping))
    app = create_app(config, env={"RENEWALS_SECRET_KEY": SECRET})
    client = sign_in(app.test_client(), ADMIN)
    assert STERLING in page(client, "/admin/contracts?q=sterling")
    html = page(client, f"/admin/contracts/{STERLING}", 503)  # no credentials in the env
    assert "cannot be explained now" in html and "SALESFORCE" in html
    app.extensions["console"].close()
    app.extensions["renewals"].store.close()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/contracts?page=abc",
        "/admin/contracts?page=0",
        "/admin/contracts?as_of=2026-13-45",
        "/admin/contracts/800SB0000000039?as_of=yesterday",
        "/admin/contracts?q=" + "x" * 201,
        "/admin/health?sort=bogus",
        "/admin/health?grade=purple",
        "/admin/health?page=-1",
        "/admin/deadletters?page=1e9",
        "/admin/deadletters?kind=" + "k" * 81,
    ],
)
def test_a_bad_query_string_is_a_400_page_saying_what_is_wrong(admin, path):
    html = page(admin, path, 400)
    assert "must be" in html or "too long" in html
    assert "Traceback" not in html


# health


def score_of(row: str) -> int:
    return int(re.search(r'class="num score">(\d+)<', row).group(1))


def test_health_sorted_by_score_and_filtered_red_shows_only_red_accounts_lowest_first(admin):
    html = page(admin, "/admin/health?grade=red&sort=score")
    shown = rows(html, "health-row")
    assert len(shown) == 32  # the demo book's red accounts (20% of 160)
    assert all("grade-red" in r for r in shown)
    scores = [score_of(r) for r in shown]
    assert scores == sorted(scores)
    assert "Tyrell Energy" in shown[0] and "Tess Nguyen" in shown[0]  # name and owner
    highest = rows(page(admin, "/admin/health?sort=-score"), "health-row")
    assert [score_of(r) for r in highest] == sorted(map(score_of, highest), reverse=True)
    assert score_of(highest[0]) > max(scores)


def test_health_by_grade_puts_red_first_and_finds_an_account_by_name(admin):
    everything = rows(page(admin, "/admin/health"), "health-row")
    assert len(everything) == 50 and "grade-red" in everything[0]
    named = rows(page(admin, "/admin/health?q=sterling+labs"), "health-row")
    assert len(named) == 1 and "Sterling Labs" in named[0] and "seat utilisation 40%" in named[0]


# dead letters


def zero_quantity_lines(config: Path, *contracts: str) -> dict[str, int]:
    """Make the CRM refuse a renewal line of each contract (a line of quantity 0), sync, and
    return the refused writes' dead letter ids by contract."""
    ctx = bootstrap.build(load_config(config))
    for cid in contracts:
        line = next(r for r in ctx.crm.all("ContractLine") if r["ContractId"] == cid)
        ctx.crm.edit("ContractLine", line["Id"], {"Quantity": 0})
    ctx.close()
    assert cli_for(config)("sync", "--as-of", AS_OF.isoformat()).exit_code == 1
    store = bootstrap.open_store(load_config(config))
    found = {d.contract_id: d.id for d in store.dead_letters.list() if d.stage == "write"}
    store.close()
    return found


def letter_rows(html: str) -> list[str]:
    return rows(html, "letter-row")


def test_dead_letters_filter_by_kind_code_and_field(admin):
    every = letter_rows(page(admin, "/admin/deadletters"))
    assert len(every) == 4  # the demo book's records that fail to map
    contracts = letter_rows(page(admin, "/admin/deadletters?kind=contract"))
    assert len(contracts) == 2 and all("end_date" in r for r in contracts)
    lines = letter_rows(page(admin, "/admin/deadletters?code=MAPPING_ERROR&field=product_code"))
    assert len(lines) == 2 and all("contract_line" in r for r in lines)
    assert "Acme Industries" in "".join(lines)  # the contract's account, by name
    assert letter_rows(page(admin, "/admin/deadletters?code=FIELD_INTEGRITY_EXCEPTION")) == []


def test_a_dead_letter_is_inspected_on_its_own_page(admin):
    html = page(admin, "/admin/deadletters/3")
    assert "product_code" in html and "MAPPING_ERROR" in html and "run 2" in html
    assert "/admin/contracts/800SB0000000061" in html and "Acme Industries" in html
    assert "There is no dead letter 999" in page(admin, "/admin/deadletters/999", 404)


def wait_for_run(store, after: int, timeout: float = 90.0):
    """The run started after run `after`, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = store.runs.list(1)
        if latest and latest[0].id > after and latest[0].status != "running":
            return latest[0]
        time.sleep(0.5)
    raise AssertionError(f"no run finished after run {after} within {timeout} s")


def test_retry_of_selected_letters_runs_in_the_background_and_is_audited(
    app, admin, console_config
):
    store = app.extensions["console"].store
    refused = zero_quantity_lines(console_config, STERLING, "800SB0000000040")
    before = store.runs.list(1)[0].id
    chosen = refused[STERLING]
    answer = post(admin, "/admin/deadletters/retry", {"ids": str(chosen)})
    assert answer.status_code == 302
    assert f"Retry of dead letter(s) {chosen} started" in page(admin, "/admin/deadletters")
    run = wait_for_run(store, before)  # `renewals deadletters retry --id N`, planned as of today
    assert run.status == "partial" and run.counts["writes"]["renewal_line.held"] == 1
    attempts = {d.id: d.attempts for d in store.dead_letters.list()}
    assert attempts[chosen] == 2 and attempts[refused["800SB0000000040"]] == 1
    (audit,) = [e for e in store.audit.list() if e.action == "run.retry"]
    assert (audit.actor, audit.target) == (ADMIN[0], f"--id {chosen}")


def test_retry_refuses_a_letter_that_is_not_open_and_a_run_in_progress(app, admin):
    from crm_renewals.connector.state.runlock import run_lock

    answer = post(admin, "/admin/deadletters/retry", {"ids": "999"})
    assert answer.status_code == 400 and "no dead letter 999" in answer.get_data(as_text=True)
    assert post(admin, "/admin/deadletters/retry", {"ids": "x"}).status_code == 400
    with run_lock(app.extensions["console"].store):
        assert post(admin, "/admin/deadletters/retry", {"all": "1"}).status_code == 302
        assert "A run is in progress" in page(admin, "/admin/deadletters")
    assert not [e for e in app.extensions["console"].store.audit.list() if e.action == "run.retry"]


def test_discard_with_a_reason_resolves_it_audited_and_the_next_sync_does_not_resend_it(
    app, admin, console_config
):
    store = app.extensions["console"].store
    letter = zero_quantity_lines(console_config, STERLING)[STERLING]
    answer = post(
        admin, "/admin/deadletters/discard", {"ids": str(letter), "reason": "zero seats on purpose"}
    )
    assert answer.status_code == 302
    (gone,) = store.dead_letters.get_many([letter])
    assert gone.resolved_at is not None and gone.resolution["by"] == ADMIN[0]
    (audit,) = [e for e in store.audit.list() if e.action == "deadletters.discard"]
    assert (audit.actor, audit.target) == (ADMIN[0], str(letter))
    assert audit.detail["reason"] == "zero seats on purpose"
    assert letter not in [d.id for d in store.dead_letters.list()]
    shown = page(admin, "/admin/deadletters?all=1")
    assert "zero seats on purpose" in shown and "discarded" in shown

    renewals = cli_for(console_config)
    again = renewals("sync", "--as-of", AS_OF.isoformat(), "--json")  # plans what changed
    assert "renewal_line.update" not in again.output and "renewal_line.held" not in again.output
    # the whole book plans the line again, and drops it: discarded
    again = renewals("sync", "--as-of", AS_OF.isoformat(), "--full", "--json")
    assert '"renewal_line.discarded": 1' in again.output
    assert "renewal_line.update" not in again.output and "renewal_line.held" not in again.output
    assert [d.id for d in store.dead_letters.list() if d.stage == "write"] == []


def test_a_discard_without_a_reason_is_a_400_page_and_changes_nothing(app, admin):
    for reason in ("", "  x ", "y" * 501):
        answer = post(admin, "/admin/deadletters/discard", {"ids": "1", "reason": reason})
        assert answer.status_code == 400
        assert "say why the dead letters are discarded" in answer.get_data(as_text=True)
    assert post(admin, "/admin/deadletters/discard", {"reason": "no ids here"}).status_code == 400
    assert len(app.extensions["console"].store.dead_letters.list()) == 4


def test_a_viewer_cannot_discard_or_retry_a_dead_letter_and_sees_no_buttons(app, viewer):
    html = page(viewer, "/admin/deadletters")
    assert 'id="deadletters-actions"' not in html and 'name="ids"' not in html
    answer = post(viewer, "/admin/deadletters/discard", {"ids": "1", "reason": "not mine to say"})
    assert answer.status_code == 403
    assert post(viewer, "/admin/deadletters/retry", {"all": "1"}).status_code == 403
    store = app.extensions["console"].store
    assert len(store.dead_letters.list()) == 4
    assert not [e for e in store.audit.list() if e.action.startswith(("deadletters", "run"))]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(["/admin/contracts", "/admin/health", "/admin/deadletters"]),
    query=st.dictionaries(
        st.sampled_from(["q", "page", "as_of", "sort", "grade", "kind", "code", "field", "all"]),
        st.text(max_size=300),
        max_size=4,
    ),
)
def test_no_query_string_makes_a_record_page_fail(admin, path, query):
    answer = admin.get(path, query_string=query)
    assert answer.status_code in (200, 400), (path, query, answer.status_code)
    assert "Traceback" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("digit", ["¹", "²", "٣", "\u0e53"])  # str.isdigit() says yes, int() no
@pytest.mark.parametrize(
    "path", ["/admin/contracts", "/admin/health", "/admin/deadletters", "/admin/audit"]
)
def test_a_page_number_of_digits_int_cannot_read_is_refused(admin, path, digit):
    answer = admin.get(path, query_string={"page": digit})
    assert answer.status_code == 400
    assert "whole number" in answer.get_data(as_text=True)


def test_record_ids_of_digits_int_cannot_read_are_refused(admin):
    answer = post(admin, "/admin/deadletters/retry", {"ids": "²"})
    assert answer.status_code == 400
    assert "whole numbers" in answer.get_data(as_text=True)
