"""A faster __init__ for frozen, slotted dataclasses built on hot paths (records, plans, writes).

A frozen dataclass's generated __init__ sets each field through `object.__setattr__` (its own
__setattr__ refuses), which costs three to four times a plain assignment: planning a large book
builds millions of such values. The __init__ made here takes the same parameters (order, kinds,
defaults, default factories) and sets each field through its slot's descriptor, as fast as a
plain class. The class stays frozen: assigning to a field still raises FrozenInstanceError.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass

_FACTORY = object()  # the default of a parameter whose field has a default factory


def fast_init(cls: type) -> type:
    """Give a frozen, slotted dataclass (no __post_init__, no InitVar) a faster __init__."""
    params = getattr(cls, "__dataclass_params__", None)
    if not is_dataclass(cls) or params is None or not params.frozen or params.init is False:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with an __init__")
    if hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: only slotted dataclasses without __post_init__")
    ns: dict[str, object] = {"_FACTORY": _FACTORY}
    positional, keyword, body = [], [], []
    for i, f in enumerate(fields(cls)):
        ns[f"_set{i}"] = cls.__dict__[f.name].__set__  # the slot's member descriptor
        value = f.name
        if f.default_factory is not MISSING:
            ns[f"_factory{i}"] = f.default_factory
            if f.init:
                body.append(f"    if {f.name} is _FACTORY: {f.name} = _factory{i}()")
            else:
                value = f"_factory{i}()"
        elif f.default is not MISSING:
            ns[f"_default{i}"] = f.default
            if not f.init:
                value = f"_default{i}"
        elif not f.init:
            continue  # no value: left unset, as dataclasses leave it
        body.append(f"    _set{i}(self, {value})")
        if not f.init:
            continue
        if f.default_factory is not MISSING:
            param = f"{f.name}=_FACTORY"
        elif f.default is not MISSING:
            param = f"{f.name}=_default{i}"
        else:
            param = f.name
        (keyword if f.kw_only else positional).append(param)
    signature = ["self", *positional, *(["*", *keyword] if keyword else [])]
    source = f"def __init__({', '.join(signature)}):\n" + "\n".join(body or ["    pass"])
    exec(source, ns)  # noqa: S102 - our own text, as dataclasses make theirs
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init
    return cls
