"""`renewals deadletters discard` and `deadletters retry --id`, as an admin runs them (a real
`renewals` process over a sandbox book with two writes the CRM refuses): a discarded write is
not sent again, a chosen letter is retried and the others stay held; `explain` names a
contract's letters."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.state import StateStore
from tests.conftest import Book, write_config

AS_OF = date(2026, 11, 23)


def renewals(config, *args: str) -> subprocess.CompletedProcess:
    """`renewals --config CONFIG ARGS...` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "crm_renewals.connector", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def sync_json(config) -> dict:
    done = renewals(config, "sync", "--as-of", AS_OF.isoformat(), "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def letters(config, *flags: str) -> dict[str, dict]:
    """Dead letters by their contract."""
    done = renewals(config, "deadletters", "list", "--json", *flags)
    return {d["contract_id"]: d for d in json.loads(done.stdout)}


@pytest.fixture
def refused(tmp_path):
    """A book whose two contracts each have a line of quantity 0 (the CRM's validation
    refuses its renewal line), synced once: (config, first contract, second contract)."""
    config = write_config(tmp_path)
    ctx = bootstrap.build(load_config(config))
    book = Book(ctx.crm)
    ids = []
    for name in ("Acme", "Globex"):
        cid = book.contract(book.account(name), AS_OF + timedelta(days=100), number=name[:5])
        book.line(cid, "SUPPORT", 0, 50.0)
        ids.append(cid)
    ctx.close()
    assert sync_json(config)["failed"] == 2
    return config, *ids


def test_a_discarded_refused_write_is_not_sent_again_and_shows_with_its_reason(refused):
    config, acme, globex = refused
    letter = letters(config)[acme]
    done = renewals(
        config, "deadletters", "discard", str(letter["id"]), "--reason", "zero seats on purpose"
    )
    assert done.returncode == 0, done.stderr
    assert f"Discarded 1 dead letter(s): {letter['id']}." in done.stdout

    again = sync_json(config)
    assert again["writes"]["renewal_line.discarded"] == 1  # Acme's: counted, not sent
    assert again["writes"]["renewal_line.held"] == 1  # Globex's: held as before
    assert again["failed"] == 1
    assert list(letters(config)) == [globex]
    gone = letters(config, "--all")[acme]
    assert gone["attempts"] == 1 and gone["resolved_at"] is not None
    assert gone["resolution"]["action"] == "discarded"
    assert gone["resolution"]["reason"] == "zero seats on purpose"
    table = renewals(config, "deadletters", "list", "--all").stdout
    assert "zero seats on purpose" in table and "by cli:" in table
    store = StateStore(load_config(config).state_url)
    (entry,) = [e for e in store.audit.list() if e.action == "deadletters.discard"]
    assert entry.actor.startswith("cli") and entry.target == str(letter["id"])
    assert entry.detail["reason"] == "zero seats on purpose"
    store.close()


def test_a_discard_without_a_reason_or_of_an_unknown_letter_changes_nothing(refused):
    config, acme, _ = refused
    letter = letters(config)[acme]
    for args, words in (
        ((str(letter["id"]), "--reason", "no"), "a reason of 3 to 500 characters"),
        ((str(letter["id"]), "999", "--reason", "not needed"), "no dead letter 999"),
        ((str(letter["id"]),), "Missing option '--reason'"),
    ):
        done = renewals(config, "deadletters", "discard", *args)
        assert done.returncode == 2
        assert words in done.stderr
    assert len(letters(config)) == 2


def test_retry_of_one_letter_sends_its_write_again_and_holds_the_other(refused):
    config, acme, globex = refused
    chosen = letters(config)[acme]
    done = renewals(
        config,
        "deadletters",
        "retry",
        "--id",
        str(chosen["id"]),
        "--as-of",
        AS_OF.isoformat(),
        "--json",
    )
    assert done.returncode == 1, done.stderr  # refused again: it remains
    result = json.loads(done.stdout)
    assert result["remaining"] == 2
    assert result["sync"]["writes"] == {"renewal_line.held": 1}  # Globex's, not sent
    after = letters(config)
    assert after[acme]["attempts"] == 2  # sent again and refused again
    assert after[globex]["attempts"] == 1

    closed = renewals(config, "deadletters", "retry", "--id", "999", "--json")
    assert closed.returncode == 2
    assert json.loads(closed.stdout)["problems"][0]["message"].startswith("no dead letter 999")


def test_explain_names_the_dead_letters_of_its_contract(refused):
    config, acme, _ = refused
    done = renewals(config, "explain", acme, "--as-of", AS_OF.isoformat())
    assert done.returncode == 0, done.stderr
    assert "dead letter renewal_line" in done.stdout
    assert "Quantity must be greater than zero" in done.stdout
