"""The fake portal's built-in schema: default properties, association types, a deal pipeline."""

from __future__ import annotations

#: Default properties whose values HubSpot sets (ids, stamps, merges).
SET_BY_HUBSPOT = {
    "hs_object_id",
    "createdate",
    "hs_lastmodifieddate",
    "lastmodifieddate",
    "hs_merged_object_ids",
}


def _p(name: str, type_: str = "string", field_type: str = "text", options=()) -> dict:
    """A property as GET /crm/v3/properties/{object} lists it; an enumeration's `options`
    carry label, value, displayOrder, hidden."""
    return {
        "name": name,
        "label": name.replace("_", " ").title(),
        "type": type_,
        "fieldType": field_type,
        "groupName": "default",
        "hasUniqueValue": False,
        "formField": False,
        "calculated": False,
        "externalOptions": False,
        "options": [
            {"label": label, "value": value, "displayOrder": i, "hidden": False}
            for i, (value, label) in enumerate(options)
        ],
        "description": "",
        "displayOrder": 0,
        # the Property model's PropertyModificationMetadata (hubspot-api-client,
        # crm.properties): HubSpot sets these values itself; no API write changes them
        "modificationMetadata": {
            "archivable": name not in SET_BY_HUBSPOT,
            "readOnlyDefinition": True,
            "readOnlyValue": name in SET_BY_HUBSPOT,
        },
    }


#: Stage ids of the default deal pipeline (also the dealstage property's options).
DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "closedwon", "closedlost")
_COMMON = [
    _p("hs_object_id", "number", "number"),
    _p("createdate", "datetime", "date"),
    _p("hs_lastmodifieddate", "datetime", "date"),
    _p("hs_merged_object_ids", "enumeration", "checkbox"),
    _p("hubspot_owner_id", "enumeration", "select"),
]
DEFAULT_PROPERTIES = {
    "deals": _COMMON
    + [
        _p("dealname"),
        _p("dealstage", "enumeration", "radio", [(s, s) for s in DEAL_STAGES]),
        _p("pipeline", "enumeration", "select"),
        _p("closedate", "datetime", "date"),
        _p("amount", "number", "number"),
        # HubSpot's default deal types
        _p(
            "dealtype",
            "enumeration",
            "radio",
            [("newbusiness", "New Business"), ("existingbusiness", "Existing Business")],
        ),
        _p("deal_currency_code", "enumeration", "select"),
    ],
    "companies": _COMMON + [_p("name"), _p("domain")],
    "contacts": _COMMON
    + [
        _p("firstname"),
        _p("lastname"),
        _p("email"),
        _p("jobtitle"),
        _p("lastmodifieddate", "datetime", "date"),
    ],
    "line_items": _COMMON
    + [
        _p("name"),
        _p("hs_sku"),
        _p("quantity", "number", "number"),
        _p("price", "number", "number"),
        _p("recurringbillingfrequency", "enumeration", "select"),
        _p("description", "string", "textarea"),
        _p("hs_product_id", "number", "number"),
    ],
    "tasks": _COMMON
    + [
        _p("hs_task_subject"),
        _p("hs_task_body", "string", "html"),
        _p("hs_timestamp", "datetime", "date"),
        # "either COMPLETED or NOT_STARTED"; "LOW, MEDIUM, or HIGH" (developers.hubspot.com,
        # CRM API | Tasks, Properties); a portal's task board offers the other statuses too
        _p(
            "hs_task_status",
            "enumeration",
            "select",
            [
                ("NOT_STARTED", "Not started"),
                ("IN_PROGRESS", "In progress"),
                ("WAITING", "Waiting"),
                ("COMPLETED", "Completed"),
                ("DEFERRED", "Deferred"),
            ],
        ),
        _p("hs_task_completion_date", "datetime", "date"),
        _p(
            "hs_task_priority",
            "enumeration",
            "select",
            [("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")],
        ),
        _p("hs_task_type", "enumeration", "select"),
    ],
}
#: HUBSPOT_DEFINED association type id -> the reverse direction's id.
_PAIRS = [(5, 6), (341, 342), (3, 4), (19, 20), (215, 216), (191, 192), (203, 204), (1, 2)]
_PAIRS += [(279, 280)]
INVERSE = {a: b for a, b in _PAIRS} | {b: a for a, b in _PAIRS}
#: HUBSPOT_DEFINED type id -> (from type, to type), after hubspot.crm.association_type
#: (API_NOTES D); HubSpot refuses a defined type between other objects.
TYPE_PAIRS = {
    1: ("contacts", "companies"),
    2: ("companies", "contacts"),
    3: ("deals", "contacts"),
    4: ("contacts", "deals"),
    5: ("deals", "companies"),
    6: ("companies", "deals"),
    19: ("deals", "line_items"),
    20: ("line_items", "deals"),
    191: ("companies", "tasks"),
    192: ("tasks", "companies"),
    203: ("contacts", "tasks"),
    204: ("tasks", "contacts"),
    215: ("deals", "tasks"),
    216: ("tasks", "deals"),
    279: ("contacts", "companies"),
    280: ("companies", "contacts"),
    341: ("deals", "companies"),
    342: ("companies", "deals"),
}
#: type id -> label shown by the v4 read (primary associations are labelled "Primary").
LABELS = {1: "Primary", 2: "Primary", 5: "Primary", 6: "Primary"}
#: USER_DEFINED contact -> company label the tests use for renewal contacts.
RENEWAL_CONTACT_TYPE = 101
LABELS[RENEWAL_CONTACT_TYPE] = "Renewal contact"
PIPELINES = {
    "deals": {
        "default": {
            "id": "default",
            "label": "Sales Pipeline",
            "displayOrder": 0,
            "archived": False,
            "createdAt": "2024-01-01T00:00:00.000Z",
            "updatedAt": "2024-01-01T00:00:00.000Z",
            "stages": [
                {
                    "id": stage,
                    "label": stage,
                    "displayOrder": i,
                    "metadata": {"probability": "0.2"},
                    "archived": False,
                    "createdAt": "2024-01-01T00:00:00.000Z",
                    "updatedAt": "2024-01-01T00:00:00.000Z",
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                }
                for i, stage in enumerate(DEAL_STAGES)
            ],
        }
    }
}
