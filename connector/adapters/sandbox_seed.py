"""A deterministic demo book for the sandbox CRM: same seed and date, same book."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from connector.adapters.sandbox import SandboxCrm

PRODUCTS = [  # code, name, list price, recurring
    ("PLAT-STD", "Platform Standard (seat)", 420.0, True),
    ("PLAT-PRO", "Platform Professional (seat)", 780.0, True),
    ("PLAT-ENT", "Platform Enterprise (seat)", 1200.0, True),
    ("ANL-ADD", "Analytics add-on", 6000.0, True),
    ("API-1M", "API calls, 1M bundle", 2400.0, True),
    ("SSO", "Single sign-on", 3000.0, True),
    ("SUP-PREM", "Premium support", 9000.0, True),
    ("STOR-1T", "Storage, 1 TB", 1800.0, True),
    ("TRAIN", "Onboarding training (one-time)", 5000.0, False),
    ("IMPL", "Implementation services (one-time)", 15000.0, False),
]
#: Accounts whose owner left with no manager (their contracts fall in the demo window).
ORPHANED = (55, 75)
SEGMENTS = ["SMB", "Mid-Market", "Enterprise"]
FIRST = [
    "Ann",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kim",
    "Lars",
    "Maya",
    "Nils",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Vera",
]
LAST = [
    "Lee",
    "Novak",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Silva",
    "Dubois",
    "Khan",
    "Larsen",
    "Moreau",
    "Nguyen",
    "Patel",
    "Fischer",
    "Garcia",
    "Kowalski",
]
ORG_A = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Massive",
    "Gringotts",
    "Oscorp",
    "Pied",
    "Dunder",
    "Sterling",
    "Monarch",
]
ORG_B = [
    "Corp",
    "Labs",
    "Systems",
    "Industries",
    "Logistics",
    "Health",
    "Foods",
    "Energy",
    "Capital",
    "Media",
    "Retail",
    "Analytics",
]


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
            profile = _profile(i)
            acc = crm.insert(
                "Account",
                {
                    "Name": name,
                    "OwnerId": owner,
                    "Segment__c": segment,
                    **_health_fields(extra, profile, as_of),
                },
            )
            account_ids.append(acc)
            owner_of[acc] = owner
            segment_of[acc] = segment
            signals += _usage_signals(extra, i, profile, acc, as_of)
            if i in ORPHANED:
                broken[acc] = "owner has left and has no manager"
            n_contacts += _contacts(crm, rnd, acc, name, renewal=i % 25 != 3)
        n_lines = 0
        span = 90 + 548
        for j in range(contracts):
            acc = account_ids[j % accounts] if j < accounts else rnd.choice(account_ids)
            end = as_of - timedelta(days=90) + timedelta(days=(j * span) // contracts)
            term = rnd.choice([12, 12, 12, 24, 36])
            start = _months_before(end, term) + timedelta(days=1)
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
LOSS_REASONS = ["Budget cut", "Switched to a competitor", "Low adoption", "Company acquired"]


def _profile(i: int) -> str:
    """Half the accounts do well, three in ten are middling, two in ten struggle."""
    return "good" if i % 10 < 5 else "fair" if i % 10 < 8 else "poor"


def _health_fields(rnd: random.Random, profile: str, as_of: date) -> dict:
    """Health measures a CRM keeps on the account: NPS, tickets, payments, last meeting."""
    lo_hi = {
        "good": ((25, 60), (0, 2), (0, 0), (0, 0), (5, 40)),
        "fair": ((-10, 25), (3, 8), (0, 2), (0, 1), (50, 120)),
        "poor": ((-45, -10), (8, 20), (2, 6), (1, 4), (120, 300)),
    }[profile]
    nps, tickets, high, late, meeting = (rnd.randint(a, b) for a, b in lo_hi)
    return {
        "NPS__c": nps,
        "Open_Tickets__c": tickets,
        "High_Priority_Tickets__c": high,
        "Late_Payments__c": late,
        "Last_Meeting_Date__c": (as_of - timedelta(days=meeting)).isoformat(),
        "Executive_Sponsor__c": profile == "good" or (profile == "fair" and rnd.random() < 0.5),
    }


def _usage_signals(
    rnd: random.Random, i: int, profile: str, account: str, as_of: date
) -> list[dict[str, str]]:
    """Product-usage signals as a product would push them (some accounts send none)."""
    if i % 17 == 0:
        return []
    util = {"good": (0.72, 0.9), "fair": (0.5, 0.72), "poor": (0.15, 0.45)}[profile]
    values = {
        "seat_utilisation": rnd.uniform(*util),
        "feature_adoption": rnd.uniform(*util),
        "days_since_last_activity": {"good": 2, "fair": 20, "poor": 50}[profile]
        + rnd.randint(0, 9),
    }
    if profile == "good" and i % 10 in (0, 1):
        values["seat_utilisation"] = rnd.uniform(0.93, 0.99)  # outgrowing its seats
    if profile == "good" and i % 10 in (2, 3):
        values["capped_feature_usage"] = rnd.uniform(0.9, 1.0)  # at its tier's cap
    at = f"{as_of - timedelta(days=1)}T09:00:00Z"
    return [
        {"account": account, "measure": m, "value": f"{v:.4g}", "timestamp": at}
        for m, v in values.items()
    ]


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


def write_signals_csv(path: Path, signals: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ("account", "measure", "value", "timestamp"))
        writer.writeheader()
        writer.writerows(signals)


def _users(crm: SandboxCrm) -> list[tuple[str, bool, str | None]]:
    """Managers, reps (two have left and have a manager, one left with none), an ops user."""
    out = []
    managers = [
        crm.insert("User", {"Name": n, "Email": _email(n), "IsActive": True, "ManagerId": None})
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
            {"Name": name, "Email": _email(name), "IsActive": active, "ManagerId": managers[i % 2]},
        )
        out.append((uid, active, managers[i % 2]))
    gone = crm.insert(
        "User",
        {"Name": "Vic Stone", "Email": _email("Vic Stone"), "IsActive": False, "ManagerId": None},
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


def _email(name: str) -> str:
    return name.lower().replace(" ", ".") + "@example.com"


def _months_before(day: date, months: int) -> date:
    month = day.month - 1 - months % 12
    year = day.year - months // 12 + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, 28))
