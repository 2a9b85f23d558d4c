"""Upsell and cross-sell suggestions, as renewal line items marked upsell / cross_sell.

Rules (never for red accounts): seat utilisation above `above_utilisation` suggests the seats
that bring it to `target_utilisation`; heavy use of a capped feature suggests the next tier;
a product most peers in the account's segment own, and it does not, suggests a cross-sell.
Each line's key names its rule, so a changed signal updates the line instead of adding one,
and a rule that stops holding withdraws it. Pure.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health
from crm_renewals.connector.domain.models import Contract, RenewalLine, share
from crm_renewals.connector.domain.policy import Upsell

CENT = Decimal("0.01")
_NONE: frozenset[str] = frozenset()


@dataclass
class BookFacts:
    """What the rules read across the book, computed once per run."""

    #: account id -> licensed seats on its live (active) contracts
    seats: dict[str, Decimal] = field(default_factory=dict)
    #: account id -> recurring product codes on its live contracts
    owned: dict[str, frozenset[str]] = field(default_factory=dict)
    #: segment -> number of accounts with a live contract
    peers: dict[str, int] = field(default_factory=dict)
    #: segment -> product code -> how many of those accounts own it
    owners: dict[str, dict[str, int]] = field(default_factory=dict)
    #: product code -> (median unit price, median quantity, name) over the book's lines
    prices: dict[str, tuple[Decimal, Decimal, str | None]] = field(default_factory=dict)


def book_facts(
    book: Book, active_statuses: tuple[str, ...], seat_products: tuple[str, ...]
) -> BookFacts:
    facts = BookFacts()
    # a contract past its end date but still active is awaiting its renewal: still live
    contracts = book.contracts  # a live one: status in active_statuses (no copy of them)
    price_lists: dict[str, list[Decimal]] = defaultdict(list)
    qty_lists: dict[str, list[Decimal]] = defaultdict(list)
    names: dict[str, str | None] = {}
    seats: dict[str, Decimal] = defaultdict(Decimal)
    # accounts own a few combinations of a few codes: one frozenset each combination, shared
    owned: dict[str, frozenset[str]] = {}
    combos: dict[frozenset[str], frozenset[str]] = {}
    for line in book.contract_lines.values():
        if not line.recurring:
            continue
        code = line.product_code
        price_lists[code].append(line.unit_price)
        qty_lists[code].append(line.quantity)
        names.setdefault(code, line.product_name)
        contract = contracts.get(line.contract_id)
        if contract is None or contract.status not in active_statuses:
            continue
        mine = owned.get(contract.account_id, _NONE)
        if code not in mine:
            more = mine | {code}
            owned[contract.account_id] = combos.setdefault(more, more)
        if code in seat_products:
            seats[contract.account_id] += line.quantity
    facts.seats, facts.owned = {a: share(n) for a, n in seats.items()}, owned
    facts.prices = {
        code: (_median(prices), _median(qty_lists[code]), names[code])
        for code, prices in price_lists.items()
    }
    for account_id, codes in facts.owned.items():
        account = book.accounts.get(account_id)
        segment = account.segment if account else None
        if segment is None:
            continue
        facts.peers[segment] = facts.peers.get(segment, 0) + 1
        counts = facts.owners.setdefault(segment, {})
        for code in codes:
            counts[code] = counts.get(code, 0) + 1
    return facts


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    value = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return value.quantize(CENT, ROUND_HALF_UP)


def suggest(
    rules: Upsell,
    renewal_key: str,
    contract: Contract,
    segment: str | None,
    lines: tuple[RenewalLine, ...],
    health: Health | None,
    usage: Mapping[str, float],
    facts: BookFacts,
) -> tuple[RenewalLine, ...]:
    """Upsell and cross-sell lines for one renewal (its renewal `lines` already planned)."""
    if not rules.enabled or (health is not None and health.grade == "red"):
        return ()
    out: list[RenewalLine] = []
    seat_lines = [ln for ln in lines if ln.product_code in rules.seat_expansion.seat_products]
    main = max(seat_lines, key=lambda ln: (ln.quantity, ln.product_code), default=None)
    util = health.values.get("seat_utilisation") if health else None
    if main is not None and util is not None:
        out += _more_seats(rules, renewal_key, main, util, facts.seats.get(contract.account_id))
    capped = usage.get("capped_feature_usage")
    if main is not None and capped is not None and capped >= rules.tier_upgrade.usage_share:
        out += _next_tier(rules, renewal_key, main, capped, facts)
    out += _cross_sell(rules, renewal_key, contract.account_id, segment, facts)
    return tuple(out)


def _more_seats(
    rules: Upsell, key: str, main: RenewalLine, util: float, seats: Decimal | None
) -> list[RenewalLine]:
    rule = rules.seat_expansion
    if util <= rule.above_utilisation or not seats:
        return []
    active = util * float(seats)
    wanted = math.ceil(active / rule.target_utilisation - 1e-9)
    extra = wanted - int(seats)
    if extra <= 0:
        return []
    return [
        RenewalLine(
            key=f"{key}:upsell:seats",
            renewal_key=key,
            product_code=main.product_code,
            quantity=Decimal(extra),
            unit_price=main.unit_price,
            kind="upsell",
            description=f"Upsell: seat utilisation {util:.0%} of {seats:f} seats "
            f"({active:.0f} active users); {extra} more seats bring it to "
            f"{rule.target_utilisation:.0%}",
        )
    ]


def _next_tier(
    rules: Upsell, key: str, main: RenewalLine, capped: float, facts: BookFacts
) -> list[RenewalLine]:
    nxt = rules.tier_upgrade.next_tier.get(main.product_code)
    if nxt is None or nxt not in facts.prices:
        return []
    price = facts.prices[nxt][0]
    return [
        RenewalLine(
            key=f"{key}:upsell:tier",
            renewal_key=key,
            product_code=nxt,
            quantity=main.quantity,
            unit_price=price,
            kind="upsell",
            description=f"Upsell: capped feature used at {capped:.0%} of the "
            f"{main.product_code} cap; next tier {nxt} for {main.quantity:f} seats",
        )
    ]


def _cross_sell(
    rules: Upsell, key: str, account_id: str, segment: str | None, facts: BookFacts
) -> list[RenewalLine]:
    rule = rules.cross_sell
    if segment is None:
        return []
    mine = facts.owned.get(account_id, set())
    # the account itself is not its own peer
    peers = facts.peers.get(segment, 0) - (1 if mine else 0)
    if peers < rule.min_peers:
        return []
    out = []
    for code, count in sorted(facts.owners.get(segment, {}).items()):
        if code in mine or count / peers < rule.peer_share or code not in facts.prices:
            continue
        price, qty, name = facts.prices[code]
        out.append(
            RenewalLine(
                key=f"{key}:cross_sell:{code}",
                renewal_key=key,
                product_code=code,
                quantity=qty,
                unit_price=price,
                kind="cross_sell",
                description=f"Cross-sell: {count} of {peers} {segment} peers "
                f"({count / peers:.0%}) own {name or code}",
            )
        )
    return out


def book_wide(facts: BookFacts) -> dict:
    """The book-wide part of the facts (peers, owners, prices) as JSON, kept between runs."""
    return {
        "peers": facts.peers,
        "owners": facts.owners,
        "prices": {c: [str(p), str(q), name] for c, (p, q, name) in facts.prices.items()},
    }


def with_book_wide(local: BookFacts, stored: dict | None) -> BookFacts:
    """Facts computed from part of the book (each account's seats and products are its own)
    with the book-wide part of a whole-book run's (`book_wide`)."""
    if not stored:
        return local
    prices = {c: (Decimal(p), Decimal(q), name) for c, (p, q, name) in stored["prices"].items()}
    return BookFacts(local.seats, local.owned, dict(stored["peers"]), stored["owners"], prices)
