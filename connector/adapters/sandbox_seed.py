"""A deterministic demo book for the sandbox CRM: same seed and date, same book."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

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


def seed(
    crm: SandboxCrm, *, seed: int = 42, as_of: date, accounts: int = 160, contracts: int = 260
) -> SeedSummary:
    """Fill an empty sandbox with a book whose end dates spread from 90 days ago to 18 months
    ahead of `as_of`, plus a few broken records that show how errors look."""
    rnd = random.Random(seed)
    broken: dict[str, str] = {}
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
            acc = crm.insert(
                "Account", {"Name": name, "OwnerId": owner, "Segment__c": rnd.choice(SEGMENTS)}
            )
            account_ids.append(acc)
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
            for k, code in enumerate(rnd.sample([p for p in PRODUCTS if p[3]], rnd.randint(1, 5))):
                qty = rnd.choice([5, 10, 25, 50, 100]) if "seat" in code[1] else 1
                price = round(code[2] * rnd.uniform(0.8, 1.0), 2)
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
    return SeedSummary(len(users), accounts, n_contacts, contracts, n_lines, broken)


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
