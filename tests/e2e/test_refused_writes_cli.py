"""A write the CRM refuses for good, as an admin meets it in `renewals sync`, `deadletters list`
and `deadletters retry`: held (not sent again unchanged) until the cause is fixed."""

from __future__ import annotations

import json
from datetime import date, timedelta

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from tests.conftest import Book, cli_for, write_config

AS_OF = date(2026, 11, 23)


def test_a_refused_line_is_held_then_sent_once_its_cause_is_fixed(tmp_path):
    config = write_config(tmp_path)
    ctx = bootstrap.build(load_config(config))
    book = Book(ctx.crm)
    # a contract line of quantity 0: the CRM's validation refuses the renewal line
    cid = book.contract(book.account(), AS_OF + timedelta(days=100), lines=(("SEAT", 10, 100.0),))
    zero = book.line(cid, "SUPPORT", 0, 50.0)
    cli = cli_for(config)

    first = cli("sync", "--as-of", str(AS_OF), "--json")
    assert first.exit_code == 1
    assert json.loads(first.output)["writes"]["renewal_line.create"] == 1
    (letter,) = json.loads(cli("deadletters", "list", "--json").output)
    assert (letter["error_code"], letter["contract_id"]) == ("FIELD_INTEGRITY_EXCEPTION", cid)

    again = cli("sync", "--as-of", str(AS_OF), "--json")
    assert again.exit_code == 1
    assert json.loads(again.output)["writes"] == {"renewal_line.held": 1}
    # the run before's writes read back, then nothing changed in the CRM: the refused write
    # alone brings its account in
    quiet = cli("sync", "--as-of", str(AS_OF), "--json")
    assert json.loads(quiet.output)["writes"] == {"renewal_line.held": 1}
    scope = json.loads(quiet.output)["scope"]
    assert scope == {"accounts": 1, "changed": 0, "refused": 1, "due": 0, "signals": 0}

    ctx.crm.edit("ContractLine", zero, {"Quantity": 2})  # the cause, fixed in the CRM
    fixed = cli("sync", "--as-of", str(AS_OF), "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.output)["writes"] == {"renewal_line.create": 1}
    assert json.loads(cli("deadletters", "list", "--json").output) == []
    amounts = [o["Amount"] for o in book.opportunities()]
    assert amounts == [1100.0]  # rolled up from both lines
    ctx.close()
