"""Editing one field of a mapping file's text (connector.mapping_text.set_field): the field's
entry changes, every other line stays byte for byte (comments, wrapped value maps, quoting),
and the result reads back as the options asked for."""

from __future__ import annotations

import difflib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_renewals.connector.mapping_text import FORM_KEYS, MappingTextError, set_field
from tests.conftest import ROOT

SANDBOX = (ROOT / "mappings" / "sandbox.yaml").read_text()
HUBSPOT = (ROOT / "mappings" / "hubspot.yaml").read_text()


def changes(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def spec_of(text: str, model: str, field: str):
    value = yaml.safe_load(text)["models"][model]["fields"].get(field)
    return {"field": value} if isinstance(value, str) else value


def test_a_shorthand_field_stays_a_shorthand_when_only_its_crm_field_changes():
    after = set_field(SANDBOX, "account", "segment", {"field": "Health_Grade__c"})
    assert changes(SANDBOX, after) == [
        "-      segment: Segment__c",
        "+      segment: Health_Grade__c",
    ]


def test_a_shorthand_with_options_becomes_a_flow_mapping_on_its_line():
    after = set_field(SANDBOX, "account", "segment", {"field": "Segment__c", "default": "SMB"})
    assert changes(SANDBOX, after)[1] == "+      segment: {field: Segment__c, default: SMB}"


def test_an_option_is_added_changed_and_removed_inside_a_flow_mapping():
    spec = {"field": "EndDate", "type": "datetime", "format": "%d/%m/%Y"}
    after = set_field(SANDBOX, "contract", "end_date", spec)
    assert changes(SANDBOX, after) == [
        "-      end_date: {field: EndDate, type: date, required: true}",
        "+      end_date: {field: EndDate, type: datetime, format: '%d/%m/%Y'}",
    ]


def test_a_block_mapping_keeps_its_value_map_and_gets_the_new_option_on_its_own_line():
    after = set_field(SANDBOX, "contract", "status", {"field": "Status", "required": True})
    assert changes(SANDBOX, after) == ["+        required: true"]
    assert spec_of(after, "contract", "status")["map"]["Activated"] == "active"


def test_a_wrapped_flow_mapping_changes_in_place_and_keeps_its_wrapping():
    spec = {"field": "contract_status", "type": "string", "default": "draft"}
    after = set_field(HUBSPOT, "contract", "status", spec)
    assert changes(HUBSPOT, after) == [
        "-      status: {field: contract_status, type: string, default: active,",
        "+      status: {field: contract_status, type: string, default: draft,",
    ]


def test_a_field_is_unmapped_and_a_new_one_added_at_the_end_of_its_model():
    gone = set_field(SANDBOX, "account_health", "health_trend", None)
    assert changes(SANDBOX, gone) == ["-      health_trend: Health_Trend__c"]
    added = set_field(SANDBOX, "contract", "renewal_forecast", {"field": "Forecast__c"})
    assert changes(SANDBOX, added) == ["+      renewal_forecast: Forecast__c"]
    lines = added.splitlines()
    assert lines[lines.index("      renewal_forecast: Forecast__c") - 1].startswith(
        "      currency:"
    )


def test_a_file_without_the_model_is_refused_with_a_reason():
    with pytest.raises(MappingTextError, match="no models.nope.fields"):
        set_field(SANDBOX, "nope", "id", {"field": "Id"})
    with pytest.raises(MappingTextError, match="not valid YAML"):
        set_field("models: [", "account", "id", {"field": "Id"})


#: texts PyYAML (YAML 1.1, the connector's reader) reads otherwise than YAML 1.2 or plain
_TRICKY = ["yes", "No", "on", "0?", "~", "null", "- x", "a: b", "#x", "2027-03-31", "1e3"]
_scalars = st.one_of(
    st.sampled_from(_TRICKY),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
)
_specs = st.fixed_dictionaries(
    {
        "field": st.from_regex(
            r"[A-Za-z][A-Za-z0-9_]{0,15}(\.[A-Za-z][A-Za-z0-9_]{0,10})?", fullmatch=True
        )
    },
    optional={
        "type": st.sampled_from(["string", "number", "integer", "boolean", "date", "datetime"]),
        "format": st.one_of(st.sampled_from(_TRICKY), st.text(max_size=10).filter(str.strip)),
        "default": _scalars,
        "const": _scalars,
        "required": st.just(True),
        "direction": st.sampled_from(["in", "out"]),
        "computed": st.just(True),
    },
)
_targets = st.sampled_from(
    [
        ("account", "segment"),  # shorthand
        ("account", "nps"),  # flow
        ("contract", "status"),  # block with a wrapped flow value map
        ("contract_line", "product_code"),  # flow with a related path
        ("contract", "renewal_forecast"),  # not mapped yet
    ]
)


@settings(max_examples=150, deadline=None)
@given(target=_targets, spec=_specs)
def test_any_options_read_back_as_set_and_every_other_line_is_untouched(target, spec):
    model, field = target
    after = set_field(SANDBOX, model, field, spec)
    kept = {k: v for k, v in (spec_of(SANDBOX, model, field) or {}).items() if k not in FORM_KEYS}
    read = spec_of(after, model, field)
    assert read == {**spec, **kept}
    other = yaml.safe_load(SANDBOX)["models"]
    now = yaml.safe_load(after)["models"]
    other[model]["fields"].pop(field, None)
    now[model]["fields"].pop(field, None)
    assert now == other
    removed = [line[1:] for line in changes(SANDBOX, after) if line.startswith("-")]
    assert all(not line.strip().startswith("#") for line in removed)
