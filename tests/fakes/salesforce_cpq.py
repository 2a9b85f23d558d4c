"""Salesforce CPQ's renewal forecast on the fake org, as CPQ documents it.

help.salesforce.com, "Renewal Forecast and Renewal Quoted" (CPQ contract fields): selecting
Renewal Forecast on a contract makes CPQ create a renewal opportunity for it, with renewal
products from the contract's subscriptions, and link it from the contract (Renewal Opportunity)
and back (Renewed Contract). The job runs at once or later (asynchronously), and it can fail
(for instance when the renewal owner is inactive): then nothing is created and nothing says so
on the contract. Turning the forecast off and on again runs the job again.
"""

from __future__ import annotations

from typing import Literal

from tests.fakes.salesforce_org import FakeOrg

Mode = Literal["now", "later", "fail"]


class FakeCpq:
    def __init__(self, org: FakeOrg, mode: Mode = "now"):
        self.org, self.mode = org, mode
        self.queued: list[str] = []
        self.failed: list[str] = []
        org.schema["Opportunity"].append("SBQQ__RenewedContract__c")
        org.after_save.append(self._on_save)

    def run_jobs(self) -> None:
        """The deferred renewal jobs run (a scheduled CPQ job)."""
        queued, self.queued = self.queued, []
        for contract_id in queued:
            self._renew(contract_id)

    def _on_save(self, obj: str, before: dict, after: dict) -> None:
        if obj != "Contract" or before.get("SBQQ__RenewalForecast__c"):
            return
        if not after.get("SBQQ__RenewalForecast__c") or after.get("SBQQ__RenewalOpportunity__c"):
            return
        if self.mode == "fail":
            self.failed.append(after["Id"])
        elif self.mode == "later":
            self.queued.append(after["Id"])
        else:
            self._renew(after["Id"])

    def _renew(self, contract_id: str) -> None:
        org = self.org
        contract = org.get("Contract", contract_id)
        account = org.get("Account", contract["AccountId"])
        uplift = 1 + float(contract.get("Renewal_Uplift__c") or 0) / 100
        opp = org.insert(
            "Opportunity",
            {
                "Name": f"{account['Name']} Renewal (CPQ)",
                "AccountId": contract["AccountId"],
                "OwnerId": contract.get("OwnerId") or account["OwnerId"],
                "StageName": "Prospecting",
                "CloseDate": contract["EndDate"],
                "Pricebook2Id": org.standard_pricebook,
                "SBQQ__RenewedContract__c": contract_id,
            },
        )
        origin = org.origins.get(contract_id)
        for item in org.line_items(origin) if origin else []:
            org.insert(
                "OpportunityLineItem",
                {
                    "OpportunityId": opp,
                    "PricebookEntryId": item["PricebookEntryId"],
                    "Quantity": item["Quantity"],
                    "UnitPrice": round(item["UnitPrice"] * uplift, 2),
                },
            )
        org.edit("Contract", contract_id, {"SBQQ__RenewalOpportunity__c": opp})
