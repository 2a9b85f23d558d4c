"""The mappings page (/admin/mappings) over the seeded demo book, with a copy of the sandbox
mapping as the installed file: view, edit a field with the CRM's fields as choices, validate,
preview, save (the file stays the source of truth, comments kept; every save in the history;
a stale form refused), history, diff and revert."""

from __future__ import annotations

import difflib
import hashlib
import html
import re
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_renewals.connector.adapters.sandbox.schema import OBJECTS
from crm_renewals.connector.config import load_config
from crm_renewals.connector.state import StateStore
from tests.conftest import AS_OF, ROOT, cli_for, write_config
from tests.console.conftest import post

SHIPPED = ROOT / "mappings" / "sandbox.yaml"
_CANDIDATE = re.compile(r'<textarea name="text" hidden>\n(.*?)</textarea>', re.S)


@pytest.fixture
def console_config(demo_book: Path, tmp_path: Path) -> Path:
    """This test's copy of the demo book, its mapping a copy the console may rewrite."""
    shutil.copytree(demo_book / "data", tmp_path / "data")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_bytes(SHIPPED.read_bytes())
    return write_config(tmp_path, mapping=str(mapping))


@pytest.fixture
def mapping(console_config: Path) -> Path:
    return console_config.parent / "mapping.yaml"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def field_form(mapping: Path, model: str, field: str, **options) -> dict:
    """The field form as the edit page posts it (base: the file as it is now)."""
    return {"base": sha(mapping), "model": model, "field": field, **options}


def candidate(answer) -> str:
    """The candidate text a preview page carries to its Save button."""
    found = _CANDIDATE.search(answer.get_data(as_text=True))
    assert found, answer.get_data(as_text=True)[:2000]
    return html.unescape(found.group(1))


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().startswith("#")]


def page(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


# ------------------------------------------------------------------ view


def test_the_page_lists_each_model_and_field_with_its_crm_field_and_transforms(admin, mapping):
    text = page(admin.get("/admin/mappings"))
    assert str(mapping) in text and sha(mapping)[:8] in text
    for kind in ("owner", "account", "contract", "renewal_opportunity", "task", "account_health"):
        assert f'id="model-{kind}"' in text
    assert "Account.Segment__c" in text and "Opportunity.Amount" in text
    assert "computed by the CRM: written on create only" in text  # amount
    assert "value map Draft → draft" in text  # contract.status
    assert "ContractLine.Product2.ProductCode" in text
    assert 'href="/admin/mappings/edit?model=account&amp;field=segment"' in admin.get(
        "/admin/mappings"
    ).get_data(as_text=True)


def test_a_viewer_sees_the_mapping_but_no_edit_links(viewer):
    text = viewer.get("/admin/mappings").get_data(as_text=True)
    assert "Account.Segment__c" in text
    assert "/admin/mappings/edit?" not in text


def test_the_edit_form_offers_the_crm_objects_fields_from_its_schema(admin):
    text = page(admin.get("/admin/mappings/edit?model=account&field=segment"))
    options = re.findall(r'<option value="([^"]*)"', text.split('id="crm-field"')[1])
    assert set(OBJECTS["Account"]) <= set(options)
    assert '<option value="Segment__c" selected>' in text
    assert "Enterprise" in text  # the picklist values of Segment__c


def test_history_lists_the_version_the_demo_sync_used_as_current(admin, mapping):
    text = page(admin.get("/admin/mappings?tab=history"))
    assert sha(mapping)[:8] in text and "current" in text


# ------------------------------------------------------------------ edit, validate, preview


def test_editing_one_field_changes_only_its_line_and_keeps_every_comment(admin, mapping):
    before = mapping.read_text()
    answer = post(
        admin,
        "/admin/mappings/validate",
        field_form(mapping, "account", "segment", crm_field="Health_Grade__c"),
    )
    assert answer.status_code == 200
    assert 'id="valid"' in answer.get_data(as_text=True)
    after = candidate(answer)
    assert changed_lines(before, after) == [
        "-      segment: Segment__c",
        "+      segment: Health_Grade__c",
    ]
    assert comments(after) == comments(before)
    assert mapping.read_text() == before  # nothing written before Save


def test_preview_shows_the_records_a_required_field_fails_and_the_guard_stop(admin, mapping):
    before = mapping.read_text()
    form = field_form(
        mapping,
        "contract",
        "uplift_percent",
        crm_field="Renewal_Uplift__c",
        type="number",
        required="1",
        as_of=AS_OF.isoformat(),
    )
    answer = post(admin, "/admin/mappings/preview", form)
    text = page(answer)
    assert answer.status_code == 200, text[:2000]
    failures = text.split('id="preview-failures"')[1].split("</table>")[0]
    assert "contract.uplift_percent" in failures and "required value missing" in failures
    assert 'class="verdict stop"' in text and "would stop before writing" in text
    assert changed_lines(before, candidate(answer)) == [
        "-      uplift_percent: {field: Renewal_Uplift__c, type: number}",
        "+      uplift_percent: {field: Renewal_Uplift__c, type: number, required: true}",
    ]
    assert mapping.read_text() == before


def test_a_harmless_edit_previews_as_a_sync_the_guard_lets_write(admin, mapping):
    form = field_form(
        mapping, "account", "segment", crm_field="Segment__c", as_of=AS_OF.isoformat()
    )
    text = page(post(admin, "/admin/mappings/preview", form))
    assert 'class="verdict go"' in text
    assert "No change: the candidate is the installed file." in text


# ------------------------------------------------------------------ save


def test_save_writes_the_file_keeps_comments_records_the_version_and_the_next_sync_uses_it(
    app, admin, mapping, console_config
):
    mapping.chmod(0o640)
    before, base = mapping.read_text(), sha(mapping)
    form = field_form(mapping, "account", "segment", crm_field="Health_Grade__c")
    text = candidate(post(admin, "/admin/mappings/preview", form))
    answer = post(admin, "/admin/mappings/save", {"text": text, "base": base})
    assert answer.status_code == 302
    after = mapping.read_text()
    assert after == text and comments(after) == comments(before)
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o640
    new = sha(mapping)
    assert f"saved: version {new[:8]}; the next sync uses it" in page(admin.get("/admin/mappings"))
    store = app.extensions["console"].store
    saved = next(v for v in store.versions.history("mapping") if v.hash == new)
    assert saved.runs == 0 and store.versions.content("mapping", new) == after
    (entry,) = [e for e in store.audit.list() if e.action == "mapping.save"]
    assert entry.actor == "admin@example.com"
    assert entry.detail == {"connection": "default", "before": base[:8], "after": new[:8]}
    history = page(admin.get("/admin/mappings?tab=history"))
    assert new[:8] in history and "never (saved, not run yet)" in history

    assert cli_for(console_config)("sync", "--as-of", AS_OF.isoformat()).exit_code in (0, 1)
    cli_store = StateStore(load_config(console_config).state_url)
    try:
        used = next(v for v in cli_store.versions.history("mapping") if v.hash == new)
    finally:
        cli_store.close()
    assert used.runs == 1


def test_a_save_from_a_stale_page_is_refused_with_409_and_the_file_is_untouched(admin, mapping):
    base = sha(mapping)
    form = field_form(mapping, "account", "segment", crm_field="Health_Grade__c")
    text = candidate(post(admin, "/admin/mappings/preview", form))
    mapping.write_text(mapping.read_text() + "# edited on disk meanwhile\n")
    edited = mapping.read_text()
    answer = post(admin, "/admin/mappings/save", {"text": text, "base": base})
    assert answer.status_code == 409
    assert "the file changed since you opened it (by another admin or on disk): reload" in page(
        answer
    )
    assert mapping.read_text() == edited


def test_invalid_yaml_shows_its_problems_with_lines_and_writes_nothing(admin, mapping):
    before, base = mapping.read_text(), sha(mapping)
    broken = before.replace("segment: Segment__c", "segment: {field: Segment__c, colour: red}")
    for path in ("/admin/mappings/validate", "/admin/mappings/preview", "/admin/mappings/save"):
        answer = post(admin, path, {"text": broken, "base": base})
        text = page(answer)
        assert answer.status_code == 400, (path, text[:1000])
        problems = text.split('id="mapping-problems"')[1].split("</table>")[0]
        line = broken.splitlines().index("      segment: {field: Segment__c, colour: red}") + 1
        assert f'<td class="num">{line}</td>' in problems
        assert "models.account.fields.segment.colour" in problems
    answer = post(admin, "/admin/mappings/preview", {"text": "models: [\n", "base": base})
    assert answer.status_code == 400 and "invalid YAML" in page(answer)
    assert mapping.read_text() == before


def test_a_viewer_cannot_save(viewer, mapping):
    before = mapping.read_text()
    text = before.replace("Segment__c", "Health_Grade__c", 1)
    answer = post(viewer, "/admin/mappings/save", {"text": text, "base": sha(mapping)})
    assert answer.status_code == 403
    assert mapping.read_text() == before


def test_a_candidate_over_one_megabyte_is_refused(admin, mapping):
    before = mapping.read_text()
    huge = before + "# " + "x" * 1_100_000 + "\n"
    answer = post(admin, "/admin/mappings/preview", {"text": huge, "base": sha(mapping)})
    assert answer.status_code == 413
    assert "too large" in page(answer)
    assert mapping.read_text() == before


# ------------------------------------------------------------------ revert


def test_revert_brings_an_old_version_back_through_preview_and_save(app, admin, mapping):
    original, first = mapping.read_text(), sha(mapping)
    form = field_form(mapping, "account", "segment", crm_field="Health_Grade__c")
    text = candidate(post(admin, "/admin/mappings/preview", form))
    post(admin, "/admin/mappings/save", {"text": text, "base": first})
    second = sha(mapping)
    version_page = page(admin.get(f"/admin/mappings/versions/{first[:8]}"))
    assert 'id="revert-form"' in version_page
    assert "+      segment: Health_Grade__c" in version_page
    answer = post(
        admin,
        "/admin/mappings/preview",
        {"version": first, "base": second, "as_of": AS_OF.isoformat()},
    )
    assert answer.status_code == 200
    assert candidate(answer) == original
    assert mapping.read_text() == text  # previewed, not written
    answer = post(
        admin,
        "/admin/mappings/save",
        {"text": candidate(answer), "base": second, "revert_of": first[:8]},
    )
    assert answer.status_code == 302
    assert mapping.read_text() == original
    saves = [e for e in app.extensions["console"].store.audit.list() if e.action == "mapping.save"]
    assert saves[0].detail == {
        "connection": "default",
        "before": second[:8],
        "after": first[:8],
        "revert_of": first[:8],
    }


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "path",
    [
        "/admin/mappings?tab=nope",
        "/admin/mappings/edit?model=nope&field=id",
        "/admin/mappings/edit?model=account&field=nope",
        "/admin/mappings/edit",
        "/admin/mappings/versions/ffffffff",
        "/admin/mappings/versions/not-a-hash",
    ],
)
def test_an_unknown_tab_model_field_or_version_is_a_404_page(admin, path):
    answer = admin.get(path)
    assert answer.status_code == 404
    assert "<h1>" in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"model": "nope", "field": "id"}, 404),
        ({"model": "account", "field": "segment", "type": "colour"}, 400),
        ({"model": "account", "field": "segment", "direction": "sideways"}, 400),
        ({"model": "account", "field": "segment", "as_of": "yesterday"}, 400),
        ({"model": "account", "field": "segment", "as_of": "0999-01-01"}, 400),
        ({"version": "ffffffff"}, 404),
    ],
)
def test_bad_form_values_are_refused_with_a_message(admin, mapping, form, status):
    before = mapping.read_text()
    answer = post(admin, "/admin/mappings/preview", {"base": sha(mapping), **form})
    assert answer.status_code == status
    assert 'class="flash error"' in answer.get_data(as_text=True)
    assert mapping.read_text() == before


def test_a_form_without_its_base_is_refused(admin, mapping):
    answer = post(admin, "/admin/mappings/save", {"text": mapping.read_text()})
    assert answer.status_code == 400
    assert "reload the page" in page(answer)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(max_size=300),
    path=st.text(max_size=30),
    default=st.text(max_size=15),
    fmt=st.text(max_size=15),
)
def test_any_yaml_or_field_form_gets_an_answer_never_a_500(
    admin, mapping, text, path, default, fmt
):
    before, base = mapping.read_text(), sha(mapping)
    answer = post(admin, "/admin/mappings/validate", {"text": text, "base": base})
    assert answer.status_code in (200, 400)
    form = field_form(mapping, "account", "segment", path=path, default=default, format=fmt)
    answer = post(admin, "/admin/mappings/validate", form)
    assert answer.status_code in (200, 400), page(answer)[:1000]
    assert mapping.read_text() == before


def test_a_broken_installed_file_shows_its_problems_and_is_fixed_by_saving_a_good_one(
    admin, mapping
):
    good = mapping.read_text()
    mapping.write_text(good.replace("segment: Segment__c", "segment: {colour: red}"))
    text = page(admin.get("/admin/mappings"))
    assert "The installed mapping file has problems" in text
    assert "models.account.fields.segment.colour" in text
    assert admin.get("/admin/mappings/edit?model=account&field=segment").status_code == 409
    answer = post(admin, "/admin/mappings/preview", {"text": good, "base": sha(mapping)})
    assert answer.status_code == 503 and "The preview could not run" in page(answer)
    answer = post(admin, "/admin/mappings/save", {"text": good, "base": sha(mapping)})
    assert answer.status_code == 302
    assert mapping.read_text() == good
