"""Values held once for many records: models.share and services.insight.SignalValues."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from crm_renewals.connector.domain import models
from crm_renewals.connector.domain.models import ContractLine, share, validate
from crm_renewals.connector.domain.signals import Signal
from crm_renewals.connector.services.insight import SignalValues


def test_equal_amounts_and_dates_read_from_the_crm_are_one_object():
    line = lambda i, qty: validate(  # noqa: E731
        ContractLine,
        {"id": f"l{i}", "contract_id": "c", "product_code": "P", "quantity": qty, "unit_price": 9},
    )
    a, b, c = line(1, "5"), line(2, "5"), line(3, "5.0")
    assert a.quantity is b.quantity and a.unit_price is b.unit_price
    assert c.quantity == a.quantity and str(c.quantity) == "5.0"  # 5.0 reads differently
    assert share(date(2027, 1, 31)) is share(date(2027, 1, 31))
    when = datetime(2027, 1, 1, tzinfo=UTC)
    assert share(when) is when  # moments are not shared


def test_sharing_stops_at_its_bound(monkeypatch):
    monkeypatch.setattr(models, "_SHARED", {})
    monkeypatch.setattr(models, "SHARE_UP_TO", 2)
    share(Decimal("1")), share(Decimal("2"))
    three = Decimal("3")
    assert share(three) is three and len(models._SHARED) == 2
    assert share(Decimal("1")) == Decimal("1")


def test_signal_values_read_as_a_dict_of_each_accounts_values():
    at = datetime(2026, 3, 1, tzinfo=UTC)
    signals = {
        "a1": {"nps": Signal("a1", "nps", 40.0, at), "seats": Signal("a1", "seats", 0.5, at)},
        "a2": {"nps": Signal("a2", "nps", -5.0, at)},
    }
    usage = SignalValues(signals)
    assert dict(usage) == {"a1": {"nps": 40.0, "seats": 0.5}, "a2": {"nps": -5.0}}
    assert list(usage["a1"]) == ["nps", "seats"]  # in the signals' order
    assert usage.get("a3", {}) == {} and "a2" in usage and len(usage) == 2
