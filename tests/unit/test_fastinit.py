"""fast_init: the same constructor as the dataclass's own, faster, and the class still frozen."""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from crm_renewals.connector.domain.fastinit import fast_init
from crm_renewals.connector.domain.models import Contract, Task, validate
from crm_renewals.connector.domain.planning.values import ContractPlan, Skip
from crm_renewals.connector.domain.writes import Write


def _shapes():
    @dataclass(frozen=True, slots=True)
    class Shape:
        a: int
        b: str = "b"
        c: list = field(default_factory=list)
        d: int = field(default=4, init=False)
        e: tuple = field(default=(), kw_only=True)
        f: int = field(kw_only=True, default=6)

    return Shape, fast_init(dataclass(frozen=True, slots=True)(_plain(Shape)))


def _plain(cls):
    """The same class body, undecorated, for a second dataclass made from it."""

    class Shape:
        __annotations__ = {"a": int, "b": str, "c": list, "d": int, "e": tuple, "f": int}
        b = "b"
        c = field(default_factory=list)
        d = field(default=4, init=False)
        e = field(default=(), kw_only=True)
        f = field(kw_only=True, default=6)

    return Shape


def test_fast_init_takes_the_same_arguments_as_the_dataclass_init():
    slow, fast = _shapes()
    for args, kwargs in [((1,), {}), ((1, "x", [2]), {"e": (3,), "f": 7}), ((), {"a": 2})]:
        want, got = slow(*args, **kwargs), fast(*args, **kwargs)
        assert [getattr(got, n) for n in "abcdef"] == [getattr(want, n) for n in "abcdef"]
    assert fast(1).c is not fast(1).c  # a fresh default from the factory each time
    names = lambda c: [(p.name, p.kind) for p in inspect.signature(c).parameters.values()]  # noqa: E731
    assert names(fast) == names(slow)
    with pytest.raises(TypeError):
        fast(1, "x", [], 5)  # e is keyword-only, as in the dataclass
    with pytest.raises(TypeError):
        fast()


def test_a_fast_init_class_stays_frozen_and_hashable():
    _, fast = _shapes()
    one = fast(1, c=None)
    with pytest.raises(FrozenInstanceError):
        one.a = 2  # type: ignore[misc]
    assert one == fast(1, c=None) and hash(one) == hash(fast(1, c=None))


def test_records_and_plans_build_as_before():
    task = Task(dedupe_key="k", owner_id="o", subject="s", due_date="2026-01-02")  # type: ignore[arg-type]
    assert (task.description, task.priority, task.status, task.completed_at) == (
        "",
        "normal",
        "open",
        None,
    )
    with pytest.raises(TypeError):
        Task("k", "o", "s")  # type: ignore[misc]  # keyword-only, as before
    contract = validate(
        Contract, {"id": "c1", "account_id": "a1", "status": "active", "end_date": "2027-01-31"}
    )
    assert contract.end_date.isoformat() == "2027-01-31" and contract.cpq is None
    plan = ContractPlan("c1", Skip("not_due", "later"))
    assert plan.tasks.writes == () and plan.writes == ()
    w = Write("task", "create", "k", "c1", task, ("subject",))
    assert (w.parent_key, w.parent_id, w.fields) == (None, None, {"subject": "s"})
