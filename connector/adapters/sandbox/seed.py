"""A deterministic demo book for the sandbox CRM: same seed and date, same book."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from crm_renewals.connector.adapters.sandbox.book import (
    FIRST,
    LAST,
    LOSS_REASONS,
    ORG_A,
    ORG_B,
    ORPHANED,
    PRODUCTS,
    SEGMENTS,
    email,
    health_fields,
    health_profile,
    months_before,
    usage_signals,
)

if TYPE_CHECKING:  # the seed uses the CRM as its users do, through the adapter's admin methods
    from crm_renewals.connector.adapters.sandbox import SandboxCrm


@dataclass(frozen=True)
class SeedSummary:
    users: int
    accounts: int
    contacts: int
    contracts: int
    lines: int
    broken: dict[str, str]
    #: product-usage signals for `renewals signals import` (account, measure, value, timestamp)
    signals: list[dict[str, str]] = field(default_factory=list)
    #: closed renewals of ended terms (won, lost), for the report
    closed_renewals: dict[str, int] = field(default_factory=dict)


def seed(
    crm: SandboxCrm, *, seed: int = 42, as_of: date, accounts: int = 160, contracts: int = 260
) -> SeedSummary:
    """Fill an empty sandbox with a book whose end dates spread from 90 days ago to 18 months
    ahead of `as_of`, plus a few broken records that show how errors look."""
    rnd = random.Random(seed)
    # health, usage and renewal outcomes draw from their own stream: the book stays as it was
    extra = random.Random(seed * 7919 + 1)
    broken: dict[str, str] = {}
    signals: list[dict[str, str]] = []
    owner_of: dict[str, str] = {}
    segment_of: dict[str, str] = {}
    closed = {"won": 0, "lost": 0}
    with crm.transaction():
        users = _users(crm)
        active_reps = [u for u, active, _ in users if active]
        left_with_manager = [u for u, active, mgr in users if not active and mgr]
        left_alone = [u for u, active, mgr in users if not active and not mgr]
        products = {
            code: crm.insert(
                "Product2",
                {"ProductCode": code, "Name": name, "ListPrice": price, "IsRecurring": rec},
            )
            for code, name, price, rec in PRODUCTS
        }
        account_ids, n_contacts = [], 0
        for i in range(accounts):
            owner = rnd.choice(active_reps)
            if i % 20 == 7:
                owner = rnd.choice(left_with_manager)
            if i in ORPHANED:
                owner = left_alone[0]
            name = f"{ORG_A[i % len(ORG_A)]} {ORG_B[(i // len(ORG_A)) % len(ORG_B)]}"
            if i >= len(ORG_A) * len(ORG_B):
                name += f" {i}"
            segment = rnd.choice(SEGMENTS)
            profile = health_profile(i)
            acc = crm.insert(
                "Account",
                {
                    "Name": name,
                    "OwnerId": owner,
                    "Segment__c": segment,
                    **health_fields(extra, profile, as_of),
                },
            )
            account_ids.append(acc)
            owner_of[acc] = owner
            segment_of[acc] = segment
            signals += usage_signals(extra, i, profile, acc, as_of)
            if i in ORPHANED:
                broken[acc] = "owner has left and has no manager"
            n_contacts += _contacts(crm, rnd, acc, name, renewal=i % 25 != 3)
        n_lines = 0
        span = 90 + 548
        for j in range(contracts):
            acc = account_ids[j % accounts] if j < accounts else rnd.choice(account_ids)
            end = as_of - timedelta(days=90) + timedelta(days=(j * span) // contracts)
            term = rnd.choice([12, 12, 12, 24, 36])
            start = months_before(end, term) + timedelta(days=1)
            status = "Activated" if end >= as_of or j % 3 else "Expired"
            if j % 53 == 5:
                status = "Draft"
            fields = {
                "AccountId": acc,
                "ContractNumber": f"{j + 1:08d}",
                "Status": status,
                "StartDate": start.isoformat(),
                "EndDate": end.isoformat(),
                "ContractTerm": term,
                "CurrencyIsoCode": "USD",
                "OwnerId": None,
            }
            if j % 7 == 3:
                fields["Renewal_Uplift__c"] = rnd.choice([3, 5, 7])
            if j in (40, 150):
                fields["EndDate"] = None
            cid = crm.insert("Contract", fields)
            if j in (40, 150):
                broken[cid] = "missing end date"
            value = 0.0
            picked = rnd.sample([p for p in PRODUCTS if p[3]], rnd.randint(1, 5))
            for k, code in enumerate(picked):
                qty = rnd.choice([5, 10, 25, 50, 100]) if "seat" in code[1] else 1
                price = round(code[2] * rnd.uniform(0.8, 1.0), 2)
                value += qty * price
                product = products[code[0]]
                if j in (60, 170) and k == 0:
                    product = "01tSB9999999999"  # a product that was deleted from the CRM
                    broken[cid] = "line points at an unknown product"
                crm.insert(
                    "ContractLine",
                    {
                        "ContractId": cid,
                        "Product2Id": product,
                        "Quantity": qty,
                        "UnitPrice": price,
                        "IsRecurring": True,
                    },
                )
                n_lines += 1
            # enterprise customers mostly buy premium support: the others are cross-sell leads
            if (
                segment_of[acc] == "Enterprise"
                and extra.random() < 0.6
                and "SUP-PREM" not in {p[0] for p in picked}
            ):
                price = round(9000.0 * extra.uniform(0.8, 1.0), 2)
                value += price
                crm.insert(
                    "ContractLine",
                    {
                        "ContractId": cid,
                        "Product2Id": products["SUP-PREM"],
                        "Quantity": 1,
                        "UnitPrice": price,
                        "IsRecurring": True,
                    },
                )
                n_lines += 1
            if end < as_of and status != "Draft" and cid not in broken:
                _closed_renewal(crm, extra, cid, fields, owner_of[acc], value, as_of, closed)
            if j % 11 == 0:
                one_time = rnd.choice([p for p in PRODUCTS if not p[3]])
                crm.insert(
                    "ContractLine",
                    {
                        "ContractId": cid,
                        "Product2Id": products[one_time[0]],
                        "Quantity": 1,
                        "UnitPrice": one_time[2],
                        "IsRecurring": False,
                    },
                )
                n_lines += 1
    return SeedSummary(
        len(users), accounts, n_contacts, contracts, n_lines, broken, signals, closed
    )


#: Loss reasons reps pick on lost renewals (Loss_Reason__c).
def _closed_renewal(
    crm: SandboxCrm,
    rnd: random.Random,
    contract_id: str,
    fields: dict,
    owner: str,
    value: float,
    as_of: date,
    closed: dict[str, int],
) -> None:
    """A renewal a rep already closed for a term that has ended: won (some grew, some
    shrank), lost with a reason, or still undecided."""
    pick = rnd.random()
    if pick > 0.85:
        return  # no decision recorded yet
    won = pick < 0.6
    end = fields["EndDate"]
    crm.insert(
        "Opportunity",
        {
            "Renewal_Key__c": f"{contract_id}:{end}",
            "Renewal_Contract__c": contract_id,
            "AccountId": fields["AccountId"],
            "Name": f"Renewal {fields['ContractNumber']} {end[:7]}",
            "Type": "Renewal",
            "StageName": "Closed Won" if won else "Closed Lost",
            "CloseDate": end,
            "OwnerId": owner,
            "Amount": round(value * rnd.choice([0.9, 1.0, 1.0, 1.05, 1.2]), 2) if won else 0,
            "Loss_Reason__c": None if won else rnd.choice(LOSS_REASONS),
        },
        ext_key=f"{contract_id}:{end}",
    )
    closed["won" if won else "lost"] += 1


def _users(crm: SandboxCrm) -> list[tuple[str, bool, str | None]]:
    """Managers, reps (two have left and have a manager, one left with none), an ops user."""
    out = []
    managers = [
        crm.insert("User", {"Name": n, "Email": email(n), "IsActive": True, "ManagerId": None})
        for n in ("Morgan Hale", "Rita Osei")
    ]
    out += [(m, True, None) for m in managers]
    for i, name in enumerate(
        [
            "Sam Rivera",
            "Jo Becker",
            "Alex Moreau",
            "Kai Tanaka",
            "Lena Fischer",
            "Omar Haddad",
            "Pia Larsen",
            "Ravi Patel",
            "Tess Nguyen",
            "Yusuf Demir",
        ]
    ):
        active = i not in (4, 7)
        uid = crm.insert(
            "User",
            {"Name": name, "Email": email(name), "IsActive": active, "ManagerId": managers[i % 2]},
        )
        out.append((uid, active, managers[i % 2]))
    gone = crm.insert(
        "User",
        {"Name": "Vic Stone", "Email": email("Vic Stone"), "IsActive": False, "ManagerId": None},
    )
    out.append((gone, False, None))
    ops = crm.insert(
        "User",
        {
            "Name": "Renewals Desk",
            "Email": "renewals@example.com",
            "IsActive": True,
            "ManagerId": None,
        },
    )
    out.append((ops, True, None))
    return out


def _contacts(crm: SandboxCrm, rnd: random.Random, account: str, org: str, renewal: bool) -> int:
    count = rnd.randint(2, 4)
    renewal_count = rnd.randint(1, 2) if renewal else 0
    domain = org.lower().replace(" ", "") + ".example"
    titles = ["CFO", "Head of Procurement", "IT Director", "Operations Lead", "Champion"]
    for i in range(count):
        name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        crm.insert(
            "Contact",
            {
                "AccountId": account,
                "Name": name,
                "Email": f"{name.split()[0].lower()}@{domain}",
                "Title": rnd.choice(titles),
                "Renewal_Contact__c": i < renewal_count,
            },
        )
    return count
