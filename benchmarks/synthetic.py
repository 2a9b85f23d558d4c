"""A deterministic synthetic Book of canonical models, built in memory (no CRM, no state store).

End dates spread from SPREAD_BEFORE days before `as_of` to SPREAD_AFTER days after it, so about
120 / (SPREAD_BEFORE + SPREAD_AFTER) of the active contracts fall in the renewal window and get a
full RenewalPlan (opportunity, lines, tasks); the rest are skipped as not due or ended.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.models import (
    Account,
    Contact,
    Contract,
    ContractLine,
    Owner,
    share,
)
from crm_renewals.connector.domain.planning.values import ContractPlan, RenewalPlan

AS_OF = date(2026, 3, 2)
SEED = 1234
SPREAD_BEFORE = 30
SPREAD_AFTER = 240
#: (code, name, list price); all recurring except the last two.
PRODUCTS = (
    ("PLAT-STD", "Platform Standard (seat)", "420.00"),
    ("PLAT-PRO", "Platform Professional (seat)", "780.00"),
    ("PLAT-ENT", "Platform Enterprise (seat)", "1200.00"),
    ("ANL-ADD", "Analytics add-on", "6000.00"),
    ("API-1M", "API calls, 1M bundle", "2400.00"),
    ("SSO", "Single sign-on", "3000.00"),
    ("SUP-PREM", "Premium support", "9000.00"),
    ("TRAIN", "Onboarding training (one-time)", "5000.00"),
    ("IMPL", "Implementation services (one-time)", "15000.00"),
)
RECURRING = 7
FIRST = ("Ann", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas")
LAST = ("Lee", "Novak", "Okafor", "Schmidt", "Rossi", "Tanaka", "Silva", "Dubois", "Khan")
ORGS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka")
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")


class EmptyLedger:
    """A LedgerView with nothing written yet: every in-window contract is a create."""

    def written(self, kind: str, key: str) -> dict[str, Any] | None:
        return None


def build_book(
    contracts: int, *, seed: int = SEED, as_of: date = AS_OF, accounts: int | None = None
) -> Book:
    """`contracts` contracts over `accounts` accounts (default 60% of contracts), 2-4 contacts
    an account, 1-5 lines a contract, ~50 owners of whom a few left (with or without a manager).
    Same arguments, same book."""
    rnd = random.Random(seed)
    book = Book()
    owners = _owners(book)
    n_accounts = accounts or max(1, contracts * 3 // 5)
    account_ids = []
    for i in range(n_accounts):
        acc = _record(
            Account,
            id=f"001B{i:010d}",
            name=f"{ORGS[i % len(ORGS)]} {i}",
            owner_id=rnd.choice(owners),
            segment=rnd.choice(SEGMENTS),
        )
        book.put("account", acc.id, acc)
        account_ids.append(acc.id)
        renewal_contacts = rnd.randint(0, 2)
        for k in range(rnd.randint(2, 4)):
            name = share(f"{rnd.choice(FIRST)} {rnd.choice(LAST)}")
            contact = _record(
                Contact,
                id=f"003B{i:08d}{k:02d}",
                account_id=acc.id,
                name=name,
                email=f"{name.split()[0].lower()}@org{i}.example",
                renewal_contact=k < renewal_contacts,
                role="CFO" if k == 0 else "Champion",
            )
            book.put("contact", contact.id, contact)
    span = SPREAD_BEFORE + SPREAD_AFTER
    for j in range(contracts):
        account_id = account_ids[j] if j < n_accounts else rnd.choice(account_ids)
        end = as_of + timedelta(days=rnd.randrange(span) - SPREAD_BEFORE)
        contract = _record(
            Contract,
            id=f"800B{j:010d}",
            account_id=account_id,
            number=f"{j + 1:08d}",
            status="draft" if j % 41 == 5 else "active",
            start_date=end - timedelta(days=rnd.choice((365, 365, 730, 1095))) + timedelta(days=1),
            end_date=end,
            owner_id=None,
            uplift_percent=Decimal(rnd.choice((3, 5, 7))) if j % 7 == 3 else None,
            currency="USD",
        )
        book.put("contract", contract.id, contract)
        picks = rnd.sample(range(len(PRODUCTS)), rnd.randint(1, 5))
        if all(p >= RECURRING for p in picks):
            picks[0] = rnd.randrange(RECURRING)
        for k, p in enumerate(picks):
            code, name, price = PRODUCTS[p]
            line = _record(
                ContractLine,
                id=f"811B{j:010d}{k}",
                contract_id=contract.id,
                product_code=code,
                product_name=name,
                quantity=Decimal(rnd.choice((1, 5, 10, 25, 50, 100)) if "seat" in name else 1),
                unit_price=(Decimal(price) * Decimal(rnd.randint(80, 100)) / 100).quantize(
                    Decimal("0.01")
                ),
                recurring=p < RECURRING,
            )
            book.put("contract_line", line.id, line)
    return book


def _record(cls: type, **values: Any) -> Any:
    """A record whose amounts and dates are shared as models.validate shares those of a
    record read from the CRM (models.share). Ids are shared by construction (a contract's
    account_id is its account's id), and so is text that repeats (product names, codes)."""
    return cls(**{k: v if type(v) is str else share(v) for k, v in values.items()})


def _owners(book: Book) -> list[str]:
    """Two managers, 44 reps (every 11th has left, with a manager), one who left alone."""
    managers = []
    for m in range(2):
        owner = Owner(id=f"005BM{m:09d}", name=f"Manager {m}", email=f"m{m}@example.com")
        book.put("owner", owner.id, owner)
        managers.append(owner.id)
    reps = []
    for r in range(44):
        owner = _record(
            Owner,
            id=f"005BR{r:09d}",
            name=f"Rep {r}",
            email=f"r{r}@example.com",
            active=r % 11 != 4,
            manager_id=managers[r % 2],
        )
        book.put("owner", owner.id, owner)
        reps.append(owner.id)
    gone = Owner(id="005BX000000000", name="Gone", active=False)
    book.put("owner", gone.id, gone)
    return reps + [gone.id]


def summarize(plans: Iterable[ContractPlan]) -> dict[str, int]:
    """Counts of plan outcomes (create/update, skip reasons) and of the lines, tasks and writes
    of the renewals planned."""
    counts: Counter[str] = Counter(lines=0, tasks=0, writes=0)
    for plan in plans:
        renewal = plan.renewal
        if isinstance(renewal, RenewalPlan):
            counts[f"plan.{renewal.action}"] += 1
            counts["lines"] += len(renewal.lines)
            counts["tasks"] += len(plan.tasks.tasks)
            counts["writes"] += len(plan.writes)
        else:
            counts[f"skip.{renewal.reason}"] += 1
    return dict(sorted(counts.items()))
