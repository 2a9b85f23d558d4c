"""Load a mapping YAML file and check it against the canonical models, with file:line problems."""

from __future__ import annotations

from pathlib import Path

from connector.domain.mapping import Mapping, check_mapping
from connector.errors import ConfigError
from connector.yamlsource import load_yaml, validate_all


def load_mapping(path: str | Path, expect_crm: str | None = None) -> Mapping:
    src = load_yaml(path)
    mapping, problems = validate_all(Mapping, src.data, src)
    if mapping is not None:
        problems += [src.problem(p, m) for p, m in check_mapping(mapping)]
    if expect_crm and mapping is not None and mapping.crm != expect_crm:
        problems.append(
            src.problem(
                ("crm",), f"mapping is for {mapping.crm!r} but app.yaml selects crm: {expect_crm}"
            )
        )
    if problems:
        raise ConfigError(problems)
    return mapping
