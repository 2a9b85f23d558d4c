"""Load a mapping YAML file (or its text) and check it against the canonical models, with
file:line problems."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from crm_renewals.connector.domain.mapping import Mapping, check_mapping
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.value_maps import value_map_problems
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.yamlsource import YamlSource, load_yaml, parse_yaml, validate_all


def load_mapping(
    path: str | Path, expect_crm: str | None = None, policy: RenewalPolicy | None = None
) -> Mapping:
    """The mapping file at `path` (see `mapping_from_text`). A file read again with the same
    content (and arguments) is not parsed again: a worker builds a context per task, and the
    parse is most of that (Mapping is frozen, so callers may share one)."""
    try:
        content = hashlib.sha256(Path(path).read_bytes()).digest()
    except OSError:
        return _checked(load_yaml(path), expect_crm, policy)  # its ConfigError says why
    key = (str(path), content, expect_crm, policy.model_dump_json() if policy else None)
    with _PARSED_LOCK:
        found = _PARSED.get(key)
    if found is None:
        found = _checked(load_yaml(path), expect_crm, policy)
        with _PARSED_LOCK:
            if len(_PARSED) >= PARSED_KEPT:
                _PARSED.clear()
            _PARSED[key] = found
    return found


#: mappings parsed in this process, by (path, content hash, expected CRM, policy)
_PARSED: dict[tuple, Mapping] = {}
_PARSED_LOCK = threading.Lock()
PARSED_KEPT = 64


def mapping_from_text(
    text: str, file: str, expect_crm: str | None = None, policy: RenewalPolicy | None = None
) -> Mapping:
    """The mapping this YAML text holds (a candidate not written yet; problems name `file`),
    checked against the canonical models, the CRM app.yaml selects (`expect_crm`) and the
    values app.yaml names (`policy`: a stage map without the closed-lost stage), every problem
    at once as a ConfigError."""
    return _checked(parse_yaml(text, file), expect_crm, policy)


def _checked(src: YamlSource, expect_crm: str | None, policy: RenewalPolicy | None) -> Mapping:
    if not isinstance(src.data, dict):
        found = type(src.data).__name__
        message = f"not a mapping file: expected the keys version, crm and models, found {found}"
        raise ConfigError([src.problem((), message)])
    mapping, problems = validate_all(Mapping, src.data, src)
    if mapping is not None:
        problems += [src.problem(p, m) for p, m in check_mapping(mapping)]
    if expect_crm and mapping is not None and mapping.crm != expect_crm:
        problems.append(
            src.problem(
                ("crm",), f"mapping is for {mapping.crm!r} but app.yaml selects crm: {expect_crm}"
            )
        )
    if policy is not None and mapping is not None:
        problems += [src.problem(p, m) for p, m in value_map_problems(mapping, policy)]
    if problems:
        raise ConfigError(problems)
    return mapping
