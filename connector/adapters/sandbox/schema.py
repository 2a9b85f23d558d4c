"""The sandbox org's schema, as Salesforce's describe gives it: objects, fields and their types,
picklist values, external ids, and the fields the CRM sets itself (read-only) or rolls up
(computed). One source of truth: writes are validated against it (an unknown field is refused
with INVALID_FIELD, a value outside a restricted picklist with
INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, a read-only field with INVALID_FIELD_FOR_INSERT_UPDATE)
and `mappings validate --online` / `doctor` check the mapping against it."""

from __future__ import annotations

from dataclasses import dataclass

from crm_renewals.connector.adapters.sandbox.book import LOSS_REASONS, SEGMENTS


@dataclass(frozen=True)
class FieldDef:
    #: Salesforce's field types: id, string, textarea, email, boolean, int, double, currency,
    #: percent, date, datetime, picklist, reference
    type: str = "string"
    picklist: tuple[str, ...] = ()
    external_id: bool = False
    #: set by the CRM on save (Id, SystemModstamp, Task.AccountId from WhatId / WhoId)
    read_only: bool = False
    #: rolled up by the CRM (Opportunity.Amount from its line items): writes are ignored while
    #: the source records exist, so a mapping writes it `computed: true`
    computed: str | None = None
    #: objects a reference field points at (WhatId: several)
    reference: tuple[str, ...] = ()


def _f(type_: str = "string", **kw) -> FieldDef:
    return FieldDef(type_, **kw)


def _ref(*objects: str, **kw) -> FieldDef:
    return FieldDef("reference", reference=objects, **kw)


SYSTEM = {"Id": _f("id", read_only=True), "SystemModstamp": _f("datetime", read_only=True)}
HEALTH = {
    "Health_Score__c": _f("double"),
    "Health_Grade__c": _f(),
    "Health_Drivers__c": _f("textarea"),
}
#: The stages the demo book and app.yaml use (renewals.initial_stage, the closed stages).
STAGES = ("Prospecting", "Negotiation", "Closed Won", "Closed Lost")

OBJECTS: dict[str, dict[str, FieldDef]] = {
    "User": {
        **SYSTEM,
        "Name": _f(),
        "Email": _f("email"),
        "IsActive": _f("boolean"),
        "ManagerId": _ref("User"),
    },
    "Account": {
        **SYSTEM,
        "Name": _f(),
        "OwnerId": _ref("User"),
        "Segment__c": _f("picklist", picklist=tuple(SEGMENTS)),
        "NPS__c": _f("double"),
        "Open_Tickets__c": _f("double"),
        "High_Priority_Tickets__c": _f("double"),
        "Late_Payments__c": _f("double"),
        "Last_Meeting_Date__c": _f("date"),
        "Executive_Sponsor__c": _f("boolean"),
        **HEALTH,
        "Health_Trend__c": _f(),
    },
    "Contact": {
        **SYSTEM,
        "AccountId": _ref("Account"),
        "Name": _f(),
        "Email": _f("email"),
        "Title": _f(),
        "Renewal_Contact__c": _f("boolean"),
    },
    "Contract": {
        **SYSTEM,
        "AccountId": _ref("Account"),
        "ContractNumber": _f(read_only=True),
        "Status": _f(
            "picklist",
            picklist=(
                "Draft",
                "In Approval Process",
                "Activated",
                "Expired",
                "Terminated",
                "Cancelled",
            ),
        ),
        "StartDate": _f("date"),
        "EndDate": _f("date"),
        "ContractTerm": _f("int"),
        "OwnerId": _ref("User"),
        "Renewal_Uplift__c": _f("percent"),
        "CurrencyIsoCode": _f("picklist", picklist=("USD", "EUR", "GBP")),
    },
    "Product2": {
        **SYSTEM,
        "ProductCode": _f(),
        "Name": _f(),
        "ListPrice": _f("currency"),
        "IsRecurring": _f("boolean"),
    },
    "ContractLine": {
        **SYSTEM,
        "ContractId": _ref("Contract"),
        "Product2Id": _ref("Product2"),
        "Quantity": _f("double"),
        "UnitPrice": _f("currency"),
        "IsRecurring": _f("boolean"),
    },
    "Opportunity": {
        **SYSTEM,
        "Renewal_Key__c": _f(external_id=True),
        "Renewal_Contract__c": _ref("Contract"),
        "AccountId": _ref("Account"),
        "Name": _f(),
        "Type": _f("picklist", picklist=("New Business", "Renewal")),
        "StageName": _f("picklist", picklist=STAGES),
        "CloseDate": _f("date"),
        "OwnerId": _ref("User"),
        "Amount": _f("currency", computed="rolled up from its line items while it has any"),
        **HEALTH,
        "Loss_Reason__c": _f("picklist", picklist=tuple(LOSS_REASONS)),
    },
    "OpportunityLineItem": {
        **SYSTEM,
        "Renewal_Line_Key__c": _f(external_id=True),
        "OpportunityId": _ref("Opportunity"),
        "ProductCode": _f(),
        "Quantity": _f("double"),
        "UnitPrice": _f("currency"),
        "Line_Type__c": _f("picklist", picklist=("Renewal", "Upsell", "Cross-sell")),
        "Description": _f("textarea"),
    },
    "Task": {
        **SYSTEM,
        "Dedupe_Key__c": _f(external_id=True),
        "OwnerId": _ref("User"),
        "Subject": _f(),
        "Description": _f("textarea"),
        "ActivityDate": _f("date"),
        "Priority": _f("picklist", picklist=("High", "Normal", "Low")),
        "Status": _f(
            "picklist",
            picklist=(
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting on someone else",
                "Deferred",
            ),
        ),
        "CompletedDateTime": _f("datetime", read_only=True),
        "WhatId": _ref("Opportunity", "Account", "Contract"),
        "WhoId": _ref("Contact"),
        "AccountId": _ref("Account", read_only=True),
    },
}


#: Task statuses that close a task (Salesforce: TaskStatus.IsClosed; of the standard values,
#: Completed only)
CLOSED_TASK_STATUSES = ("Completed",)


def task_completed_at(fields: dict, now: str) -> str | None:
    """Task.CompletedDateTime as the CRM keeps it: set when the task is saved closed, kept
    while it stays closed, cleared when it is reopened."""
    if fields.get("Status") not in CLOSED_TASK_STATUSES:
        return None
    return fields.get("CompletedDateTime") or now


def relationship(obj: str, name: str) -> FieldDef | None:
    """The reference field behind a relationship name, as SOQL resolves `Rel.Field`
    (Product2 -> Product2Id, What -> WhatId, Renewal_Contract__r -> Renewal_Contract__c)."""
    fields = OBJECTS.get(obj, {})
    ref = name[:-3] + "__c" if name.endswith("__r") else name + "Id"
    found = fields.get(ref)
    return found if found is not None and found.type == "reference" else None


def lookup(obj: str, path: str) -> FieldDef | None:
    """A field of `obj`, or `Rel.Field` of a related object (any of a polymorphic lookup's)."""
    head, _, rest = path.partition(".")
    if not rest:
        return OBJECTS.get(obj, {}).get(head)
    ref = relationship(obj, head)
    for target in ref.reference if ref else ():
        found = lookup(target, rest)
        if found is not None:
            return found
    return None


def write_error(obj: str, fields: dict) -> tuple[str, str] | None:
    """Salesforce's refusal of these fields written to `obj`, or None."""
    schema = OBJECTS.get(obj, {})
    for name in fields:
        if name not in schema:
            return "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}"
    read_only = sorted(n for n in fields if schema[n].read_only)
    if read_only:
        return (
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
        )
    for name, value in fields.items():
        allowed = schema[name].picklist
        if allowed and value is not None and str(value) not in allowed:
            return (
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{name}: bad value for restricted picklist field: {value}",
            )
    return None
