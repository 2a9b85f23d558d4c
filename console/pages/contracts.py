"""Contracts (/admin/contracts): search the synced book; a contract's page is `renewals
explain` (connector.services.explain), with names next to ids."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services import explain
from crm_renewals.connector.services.contracts import search_contracts
from crm_renewals.connector.services.sync import today
from crm_renewals.console import params
from crm_renewals.console.state import current

bp = Blueprint("contracts", __name__)
bp.register_error_handler(params.BadParam, params.bad_param)
#: longer than any CRM id: not one
MAX_ID = 80


@bp.get("/contracts")
def index():
    query = params.text(request.args, "q")
    page = params.page_number(request.args)
    as_of = params.day(request.args)
    state = current()
    found = search_contracts(state.store, state.config, query, page, as_of)
    return render_template("console/contracts.html", found=found, q=query, as_of=as_of or today())


@bp.get("/contracts/<contract_id>")
def show(contract_id: str):
    as_of = params.day(request.args)
    if len(contract_id) > MAX_ID:
        return _unknown(contract_id)
    try:
        with current().context() as ctx:
            explained = explain(ctx, contract_id, as_of)
    except ConnectorError as exc:  # the mapping or the CRM connection cannot be set up
        message = f"The contract cannot be explained now: {type(exc).__name__}: {exc}"
        return render_template("console/error.html", message=message), 503
    if explained.plan is None:
        return _unknown(contract_id)
    return render_template("console/contract.html", e=explained, as_of=as_of or today())


def _unknown(contract_id: str):
    return render_template("console/contract_missing.html", contract_id=contract_id[:MAX_ID]), 404
