"""The HubSpot side of the contract suites (tests/contract): the suites speak the sandbox's
Salesforce-shaped vocabulary (User, Account, Opportunity, Name, OwnerId ...), so this module
translates it to a HubSpot portal (FakeHubSpot) and back.

`HubSpotAdmin` seeds, edits, deletes and inspects records as a portal's users would; `Speaking`
wraps the real adapter so outbound fields named the sandbox way reach it as HubSpot properties
and reads carry the sandbox names next to the HubSpot ones."""

from __future__ import annotations

from typing import Any

from crm_renewals.connector.adapters.hubspot import HubSpotCrm
from crm_renewals.connector.adapters.hubspot.limits import PortalLimits, RollingBucket
from crm_renewals.connector.ports import OutboundRecord
from tests.fakes.hubspot_schema import RENEWAL_CONTACT_TYPE
from tests.fakes.hubspot_server import FakeHubSpot

LINE = {
    "ProductCode": "hs_sku",
    "Quantity": "quantity",
    "UnitPrice": "price",
    "Renewal_Line_Key__c": "renewal_line_key",
    "Description": "description",
}
HEALTH = {
    "Health_Score__c": "renewal_health_score",
    "Health_Grade__c": "renewal_health_grade",
    "Health_Drivers__c": "renewal_health_drivers",
}
#: sandbox object -> {sandbox field: HubSpot property}
FIELDS: dict[str, dict[str, str]] = {
    "Account": {
        "Name": "name",
        "OwnerId": "hubspot_owner_id",
        "Segment__c": "customer_segment",
        "NPS__c": "nps_score",
        "Open_Tickets__c": "open_tickets",
        "High_Priority_Tickets__c": "high_priority_tickets",
        "Late_Payments__c": "late_payments",
        "Last_Meeting_Date__c": "last_meeting_date",
        "Executive_Sponsor__c": "executive_sponsor",
        "Health_Trend__c": "renewal_health_trend",
        **HEALTH,
    },
    "Contact": {"Email": "email", "Title": "jobtitle"},
    "Contract": {
        "ContractNumber": "dealname",
        "Status": "contract_status",
        "StartDate": "contract_start_date",
        "EndDate": "contract_end_date",
        "Renewal_Uplift__c": "renewal_uplift_percent",
        "CurrencyIsoCode": "deal_currency_code",
        "OwnerId": "hubspot_owner_id",
    },
    "Opportunity": {
        "Name": "dealname",
        "StageName": "dealstage",
        "CloseDate": "closedate",
        "OwnerId": "hubspot_owner_id",
        "Amount": "amount",
        "Type": "dealtype",
        "Renewal_Key__c": "renewal_key",
        "Renewal_Contract__c": "renewal_contract_id",
        "AccountId": "associated_company_id",
        "Loss_Reason__c": "renewal_loss_reason",
        **HEALTH,
    },
    "ContractLine": LINE,
    "OpportunityLineItem": LINE,
    "Task": {
        "Subject": "hs_task_subject",
        "Description": "hs_task_body",
        "OwnerId": "hubspot_owner_id",
        "ActivityDate": "hs_timestamp",
        "Dedupe_Key__c": "renewal_task_key",
        "Priority": "hs_task_priority",
        "Status": "hs_task_status",
        "CompletedDateTime": "hs_task_completion_date",
    },
}
#: sandbox field -> {sandbox value: HubSpot value}
VALUES = {
    "Status": {
        "Activated": "active",
        "Draft": "draft",
        "In Approval Process": "draft",
        "Expired": "expired",
        "Terminated": "terminated",
        "Cancelled": "cancelled",
        # a task's (no contract status shares these)
        "Not Started": "NOT_STARTED",
        "In Progress": "IN_PROGRESS",
        "Completed": "COMPLETED",
    },
    "Type": {"Renewal": "existingbusiness"},
    "Priority": {"High": "HIGH", "Normal": "MEDIUM", "Low": "LOW"},
}
NUMBERS = {"Amount", "Quantity", "UnitPrice", "Renewal_Uplift__c", "Health_Score__c", "NPS__c"}
NUMBERS |= {"Open_Tickets__c", "High_Priority_Tickets__c", "Late_Payments__c"}
DATES = {"CloseDate", "ActivityDate", "StartDate", "EndDate", "Last_Meeting_Date__c"}
KIND_OBJECT = {
    "account": "Account",
    "account_health": "Account",
    "contact": "Contact",
    "contract": "Contract",
    "contract_line": "ContractLine",
    "renewal_opportunity": "Opportunity",
    "renewal_line": "OpportunityLineItem",
    "task": "Task",
}


def fast(crm: HubSpotCrm) -> HubSpotCrm:
    """Budgets of the same size in a hundredth of the time: tests do not wait on the clock."""
    crm.limits = PortalLimits(RollingBucket(100, 0.1), RollingBucket(4, 0.01))
    return crm


def to_hubspot(obj: str, fields: dict[str, Any]) -> dict[str, Any]:
    names = FIELDS.get(obj, {})
    out = {}
    for name, value in fields.items():
        if name in names:
            out[names[name]] = VALUES.get(name, {}).get(value, value)
        else:
            out[name] = value
    return out


def from_hubspot(obj: str, props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in FIELDS.get(obj, {}).items():
        value = props.get(prop)
        back = {v: k for k, v in VALUES.get(name, {}).items()}
        value = back.get(value, value)
        if value not in (None, "") and name in NUMBERS:
            value = float(value)
        if value and name in DATES:
            value = str(value)[:10]
        out[name] = value
    return out


class HubSpotAdmin:
    """A portal's users, in the sandbox's words."""

    def __init__(self, fake: FakeHubSpot):
        self.fake = fake
        self.products: dict[str, str] = {}

    # ------------------------------------------------------------------ writes

    def insert(self, obj: str, fields: dict[str, Any]) -> str:
        f, fake = dict(fields), self.fake
        if obj == "User":
            first, _, last = f["Name"].partition(" ")
            return fake.add_owner(first, last or "X", archived=not f.get("IsActive", True))
        if obj == "Product2":
            pid = f"prod-{len(self.products) + 1}"
            self.products[pid] = f["ProductCode"]
            return pid
        if obj == "Contact":
            first, _, last = f.pop("Name").partition(" ")
            cid = fake.create(
                "contacts",
                {
                    "firstname": first,
                    "lastname": last,
                    **to_hubspot(obj, {k: v for k, v in f.items() if k in FIELDS["Contact"]}),
                },
            )
            fake.associate("contacts", cid, "companies", f["AccountId"], 1)
            if f.get("Renewal_Contact__c"):
                fake.associate(
                    "contacts",
                    cid,
                    "companies",
                    f["AccountId"],
                    RENEWAL_CONTACT_TYPE,
                    "USER_DEFINED",
                )
            return cid
        if obj == "Contract":
            props = to_hubspot(obj, {k: v for k, v in f.items() if k != "AccountId"})
            deal = fake.create("deals", {"pipeline": "default", "dealstage": "closedwon", **props})
            fake.associate("deals", deal, "companies", f["AccountId"], 5)
            return deal
        if obj == "ContractLine":
            props = {
                "hs_sku": self.products.get(f.get("Product2Id")),
                "quantity": f.get("Quantity"),
                "price": f.get("UnitPrice"),
                "recurringbillingfrequency": "annually" if f.get("IsRecurring", True) else None,
            }
            item = fake.create("line_items", props)
            fake.associate("line_items", item, "deals", f["ContractId"], 20)
            return item
        return fake.create(self._type(obj), to_hubspot(obj, f))

    def edit(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        if obj == "User":
            if changes.get("IsActive") is False:
                self.fake.archive_owner(record_id)
            return
        self.fake.edit(self._type(obj), record_id, to_hubspot(obj, changes))

    def remove(self, obj: str, record_id: str) -> None:
        if obj == "User":
            self.fake.archive_owner(record_id)
        else:
            self.fake.archive(self._type(obj), record_id)

    # ------------------------------------------------------------------ reads

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        return self._view(obj, self.fake.objects[self._type(obj)][record_id])

    def all(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        if obj == "User":
            return [
                {
                    "Id": o["id"],
                    "Name": f"{o['firstName']} {o['lastName']}",
                    "IsActive": not o["archived"],
                }
                for o in self.fake.owners.values()
            ]
        rows = [
            o
            for o in self.fake.objects[self._type(obj)].values()
            if (include_deleted or not o["archived"]) and self._is(obj, o["properties"])
        ]
        return [self._view(obj, o) for o in sorted(rows, key=lambda o: int(o["id"]))]

    def _is(self, obj: str, props: dict) -> bool:
        if obj in ("Opportunity", "Contract"):
            return bool(props.get("renewal_key")) == (obj == "Opportunity")
        if obj == "ContractLine":
            return not props.get("renewal_line_key")
        return True

    def _view(self, obj: str, o: dict) -> dict[str, Any]:
        props, oid = o["properties"], o["id"]
        out = {"Id": oid, **from_hubspot(obj, props), "IsDeleted": o["archived"]}
        links = {
            "Opportunity": ("deals", "companies", "AccountId"),
            "Contract": ("deals", "companies", "AccountId"),
            "OpportunityLineItem": ("line_items", "deals", "OpportunityId"),
            "ContractLine": ("line_items", "deals", "ContractId"),
            "Task": ("tasks", "deals", "WhatId"),
            "Contact": ("contacts", "companies", "AccountId"),
        }
        if obj in links:
            src, dst, name = links[obj]
            out[name] = next(iter(sorted(self.fake.associated(src, oid, dst))), None)
        if obj == "Task":
            out["WhoId"] = next(iter(self.fake.associated("tasks", oid, "contacts")), None)
        if obj == "Contact":
            out["Name"] = f"{props.get('firstname')} {props.get('lastname')}".strip()
        return out

    @staticmethod
    def _type(obj: str) -> str:
        return {
            "Account": "companies",
            "Contact": "contacts",
            "Contract": "deals",
            "Opportunity": "deals",
            "ContractLine": "line_items",
            "OpportunityLineItem": "line_items",
            "Task": "tasks",
        }[obj]


class Speaking:
    """The HubSpot adapter, taking and giving fields named as the sandbox names them."""

    def __init__(self, crm: HubSpotCrm):
        self.inner = crm

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _out(self, kind: str, records) -> list[OutboundRecord]:
        obj = KIND_OBJECT.get(kind, "")
        return [OutboundRecord(r.key, to_hubspot(obj, r.fields), r.parent_key) for r in records]

    def _in(self, kind: str, records):
        obj = KIND_OBJECT.get(kind, "")
        for rec in records:
            rec.fields.update(from_hubspot(obj, rec.fields))
        return records

    def read_changes(self, kind, since):
        for page in self.inner.read_changes(kind, since):
            yield self._in(kind, page)

    def read_ids(self, kind, ids):
        return self._in(kind, self.inner.read_ids(kind, ids))

    def upsert(self, kind, records):
        return self.inner.upsert(kind, self._out(kind, records))

    def create_missing(self, kind, records):
        return self.inner.create_missing(kind, self._out(kind, records))

    def delete(self, kind, keys):
        return self.inner.delete(kind, keys)
