"""Issue 14's browser tests: an admin signs in to a real `renewals serve` in headless Chromium
and uses every page; no page logs a console error (a CSP violation, a failed script or
request included); each page is screenshotted."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ADMIN

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


class Watched:
    """A page whose console errors and failed requests are collected."""

    def __init__(self, page):
        self.page, self.errors = page, []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("requestfailed", lambda r: self.errors.append(f"{r.url}: {r.failure}"))

    def clean(self) -> None:
        errors, self.errors[:] = list(self.errors), []
        assert errors == [], errors


@pytest.fixture(scope="module")
def signed_in(browser, server):
    base, _folder = server
    context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
    watched = Watched(context.new_page())
    page = watched.page
    page.goto("/admin/")
    assert page.url.endswith("/admin/login?next=/admin/")
    page.fill("input[name=email]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))
    watched.clean()
    yield watched
    context.close()


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
