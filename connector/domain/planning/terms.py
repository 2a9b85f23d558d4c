"""A contract term's facts that every part of planning reads: its renewal key, the renewal's
owner, the uplift and the renewal price of a line."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from crm_renewals.connector.domain.models import Account, Contract, ContractLine, Owner, RenewalLine
from crm_renewals.connector.domain.policy import RenewalPolicy

CENT = Decimal("0.01")


def renewal_key(contract: Contract) -> str:
    """One renewal per contract term: the contract id and the term's end date."""
    return f"{contract.id}:{contract.end_date.isoformat()}"


def owner_of(
    policy: RenewalPolicy, owners: dict[str, Owner], contract: Contract, account: Account
) -> tuple[Owner | None, str]:
    """The renewal's owner (contract's or account's, by policy; an inactive one's manager, or
    the configured fallback) and a note on how it was chosen."""
    owner_id = contract.owner_id if policy.owner_source == "contract" else account.owner_id
    return resolve_owner(owners, owner_id or account.owner_id, policy.fallback_owner)


def resolve_owner(
    owners: dict[str, Owner], owner_id: str | None, fallback: str | None
) -> tuple[Owner | None, str]:
    """Owner -> first active manager up the chain -> configured fallback owner."""
    seen: list[str] = []
    current = owners.get(owner_id) if owner_id else None
    while current is not None and current.id not in seen:
        if current.active:
            if not seen:
                return current, ""
            return current, f"owner {seen[0]} is inactive; assigned to manager {current.id}"
        seen.append(current.id)
        current = owners.get(current.manager_id) if current.manager_id else None
    gone = f"owner {owner_id} is inactive" if seen else f"owner {owner_id} is unknown"
    if fallback:
        fb = owners.get(fallback)
        if fb is None or fb.active:
            return fb or Owner(
                id=fallback, name=fallback, active=True, email=None, manager_id=None
            ), f"{gone} with no active manager; assigned to fallback owner {fallback}"
    return None, (
        f"{gone} with no active manager and no usable renewals.fallback_owner in app.yaml"
    )


def uplift_of(policy: RenewalPolicy, contract: Contract) -> Decimal:
    return contract.uplift_percent if contract.uplift_percent is not None else policy.uplift_percent


def amount_of(lines: Iterable[RenewalLine]) -> Decimal:
    """The renewal amount: the renewal lines summed, to the cent."""
    total = sum((rl.quantity * rl.unit_price for rl in lines), Decimal(0))
    return total.quantize(CENT, ROUND_HALF_UP)


def renewal_lines(
    renewal_key_: str, lines: Iterable[ContractLine], uplift: Decimal
) -> tuple[RenewalLine, ...]:
    """Contract lines renewed at the uplifted price."""
    factor = 1 + uplift / 100
    suffix = f" (+{uplift}% uplift)" if uplift else ""
    return tuple(
        RenewalLine(
            key=f"{renewal_key_}:{line.id}",
            renewal_key=renewal_key_,
            product_code=line.product_code,
            quantity=line.quantity,
            unit_price=(line.unit_price * factor).quantize(CENT, ROUND_HALF_UP),
            kind="renewal",
            description=f"Renewal of {line.product_name or line.product_code}{suffix}",
        )
        for line in lines
    )
