"""The contract and the account a mirrored record belongs to, read from its mapped data: the
mirror keeps them as columns so an incremental run can load just the accounts it plans."""

from __future__ import annotations

from typing import Any


def refs_of(
    kind: str, record_id: str, parent_id: str | None, data: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """(contract id, account id) of a record; a record that failed to map names its contract
    by `parent_id` only. Renewal lines and tasks name their contract through a renewal key,
    "<contract id>:<term end date>"."""
    if data is None:
        return parent_id, None
    key = data.get("renewal_key")
    contract = {
        "contract": record_id,
        "contract_line": data.get("contract_id"),
        "renewal_opportunity": data.get("contract_id"),
    }.get(kind) or (key.rsplit(":", 1)[0] if key else None)
    account = record_id if kind == "account" else data.get("account_id")
    return contract or parent_id, account
