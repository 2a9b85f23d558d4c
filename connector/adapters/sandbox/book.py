"""The demo book's raw material: products, names, segments, and the pure helpers the seed draws
on (health profiles, usage signals, dates), so the same seed and date give the same book."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

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


LOSS_REASONS = ["Budget cut", "Switched to a competitor", "Low adoption", "Company acquired"]


def health_profile(i: int) -> str:
    """Half the accounts do well, three in ten are middling, two in ten struggle."""
    return "good" if i % 10 < 5 else "fair" if i % 10 < 8 else "poor"


def health_fields(rnd: random.Random, profile: str, as_of: date) -> dict:
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


def usage_signals(
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


def write_signals_csv(path: Path, signals: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ("account", "measure", "value", "timestamp"))
        writer.writeheader()
        writer.writerows(signals)


def email(name: str) -> str:
    return name.lower().replace(" ", ".") + "@example.com"


def months_before(day: date, months: int) -> date:
    month = day.month - 1 - months % 12
    year = day.year - months // 12 + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, 28))
