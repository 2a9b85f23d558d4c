"""`object_fields`, one shape from every adapter (the console's field pickers and `renewals
mappings fields` read it): a CRM object's fields by name with their type, picklist values
and whether the CRM sets them, from the schema the online mapping checks read (the sandbox's
schema, Salesforce describe through `responses`, HubSpot properties from a fake portal)."""

from __future__ import annotations

import pytest

from crm_renewals.connector.adapters.sandbox.schema import STAGES
from crm_renewals.connector.ports import FieldInfo
from tests.fakes.harness import harness
from tests.fakes.hubspot_schema import DEAL_STAGES
from tests.fakes.salesforce_org import PICKLISTS

ADAPTERS = ["sandbox", "salesforce", "hubspot"]
#: the renewal's object, its stage field and the stages the CRM's schema offers; its id field
STAGES_OF = {
    "sandbox": ("Opportunity", "StageName", STAGES, "Id"),
    "salesforce": ("Opportunity", "StageName", PICKLISTS[("Opportunity", "StageName")], "Id"),
    "hubspot": ("deals", "dealstage", DEAL_STAGES, "hs_object_id"),
}


@pytest.fixture(params=ADAPTERS)
def h(request, tmp_path):
    with harness(request.param, tmp_path) as made:
        yield made


def test_an_objects_fields_come_by_name_with_type_picklist_values_and_who_sets_them(h):
    obj, stage, values, id_field = STAGES_OF[h.name]
    fields = h.crm.object_fields(obj)
    assert fields and all(isinstance(f, FieldInfo) for f in fields)
    names = [f.name for f in fields]
    assert names == sorted(set(names))
    found = {f.name: f for f in fields}
    assert found[stage].picklist == tuple(values) and found[stage].label
    assert found[id_field].read_only and not found[stage].read_only


def test_every_crm_field_the_shipped_mapping_names_is_offered(h):
    for kind, om in h.crm.mapping.models.items():
        offered = {f.name for f in h.crm.object_fields(om.object)}
        for name, spec in om.fields.items():
            for path in spec.join or (spec.field,):
                if path and "." not in path:
                    assert path in offered, f"{kind}.{name}: {om.object}.{path}"


def test_an_object_the_crm_does_not_have_has_no_fields(h):
    assert h.crm.object_fields("No_Such_Object__c") == []
