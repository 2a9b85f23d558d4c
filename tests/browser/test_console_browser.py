"""Issue 14's browser tests: an admin signs in to a real `renewals serve` in headless Chromium
and uses every page; no page logs a console error (a CSP violation, a failed script or
request included); each page is screenshotted."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import signed_in_page

#: every page of the console: (name of its screenshot, path)
PAGES = [
    ("overview", "/admin/"),
    ("runs", "/admin/runs"),
    ("contracts", "/admin/contracts"),
    ("health", "/admin/health"),
    ("deadletters", "/admin/deadletters"),
    ("mappings", "/admin/mappings"),
    ("reports", "/admin/reports"),
    ("settings", "/admin/settings"),
    ("audit", "/admin/audit"),
]


@pytest.fixture(scope="module")
def signed_in(browser, server):
    base, _folder = server
    with signed_in_page(browser, base) as watched:
        yield watched


@pytest.mark.parametrize(("name", "path"), PAGES)
def test_every_page_opens_with_no_console_error_and_is_screenshotted(signed_in, shots, name, path):
    page = signed_in.page
    page.goto("about:blank")  # what an earlier page logged arrives before the clear
    signed_in.errors.clear()
    answer = page.goto(path)
    assert answer is not None and answer.status == 200, path
    page.wait_for_load_state("networkidle")
    assert page.locator("main h1").first.is_visible()
    signed_in.clean()
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _until_ended(page, timeout_ms: int = 90_000) -> None:
    """The live panel shows the launched run's outcome (it polls while the run goes)."""
    page.wait_for_selector("#live-run[data-state=ended]", timeout=timeout_ms)


def test_a_dry_run_and_a_sync_started_from_the_overview_show_their_outcome(signed_in, shots):
    page = signed_in.page
    page.on("dialog", lambda dialog: dialog.accept())  # "Start a sync now?"
    page.goto("/admin/")
    with page.expect_navigation():  # the overview again, showing this launch
        page.click("#dry-run")
    _until_ended(page)
    assert "Dry run" in page.inner_text("#live-run")
    with page.expect_navigation():
        page.click("#sync-now")
    page.wait_for_selector("#live-outcome", timeout=90_000)
    outcome = page.inner_text("#live-outcome")
    assert "API calls" in outcome
    page.screenshot(path=str(shots / "overview-after-sync.png"), full_page=True)
    page.click("#live-outcome a")  # the run's own page
    page.wait_for_url(re.compile(r".*/admin/runs/\d+$"))
    assert "Writes" in page.inner_text("main") or "writes" in page.inner_text("main")
    signed_in.clean()


def test_a_dead_letter_is_retried_from_its_page(signed_in):
    page = signed_in.page
    page.goto("/admin/deadletters")
    page.locator("#deadletters-form input[name=ids]").first.check()
    page.click("#deadletters-form button:has-text('Retry selected')")
    page.wait_for_selector(".flash.success")
    assert "Retry of" in page.inner_text(".flash.success")
    page.goto("/admin/")
    _until_ended(page)
    page.goto("/admin/audit")
    assert "run.retry" in page.inner_text("main")
    signed_in.clean()


def test_a_contracts_explanation_opens_from_the_search(signed_in, shots):
    page = signed_in.page
    page.goto("/admin/contracts")
    page.locator("main table a[href*='/admin/contracts/']").first.click()
    page.wait_for_url(re.compile(r".*/admin/contracts/[^/?]+$"))
    text = page.inner_text("main")
    assert "renewal" in text.lower()
    page.screenshot(path=str(shots / "contract.png"), full_page=True)
    signed_in.clean()


def test_the_report_page_draws_its_charts(signed_in):
    page = signed_in.page
    page.goto("/admin/reports")
    charts = page.locator("figure.chart svg")
    assert charts.count() >= 5
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
        assert charts.nth(i).locator("rect, path, circle, polyline").count() > 0
    signed_in.clean()


def test_a_mapping_field_is_edited_previewed_saved_and_used_by_the_next_sync(signed_in, shots):
    page = signed_in.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/admin/mappings")
    before = page.inner_text("#mapping-version").strip()
    page.click("#field-account-nps a.edit")
    page.select_option("#crm-field", "Open_Tickets__c")  # another number field of Account
    page.click("#preview-button")
    page.wait_for_selector("#save-button")
    assert "Open_Tickets__c" in page.inner_text("#mapping-diff")
    page.screenshot(path=str(shots / "mapping-preview.png"), full_page=True)
    page.click("#save-button")
    page.wait_for_selector(".flash.success")
    saved = page.inner_text(".flash.success")
    assert saved.startswith("saved: version ")
    after = saved.removeprefix("saved: version ").split(";")[0]
    assert after != before
    page.goto("/admin/")
    with page.expect_navigation():
        page.click("#sync-now")
    page.wait_for_selector("#live-outcome", timeout=90_000)
    page.click("#live-outcome a")
    page.wait_for_url(re.compile(r".*/admin/runs/\d+$"))
    assert after in page.inner_text("main")  # the run used the saved mapping
    signed_in.clean()
