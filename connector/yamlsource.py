"""Load YAML while remembering the line of every key, so problems point at file:line."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from connector.errors import ConfigError, Problem


@dataclass
class YamlSource:
    """Parsed YAML data plus a (key path -> line) index."""

    file: str
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, path: Iterable) -> int | None:
        """Line of the deepest known prefix of `path` (1-based)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def problem(self, path: Iterable, message: str) -> Problem:
        path = tuple(path)
        return Problem(dotted(path), message, self.file, self.line_of(path))

    def problems_from(self, exc: ValidationError, prefix: tuple = ()) -> list[Problem]:
        out = []
        for err in exc.errors():
            loc = prefix + tuple(p for p in err["loc"] if not _is_union_tag(p))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (not allowed here; check the spelling)"
            out.append(self.problem(loc, msg))
        return out


def validate_all(
    model: type[BaseModel], data: Any, src: YamlSource, extra: dict[str, Any] | None = None
) -> tuple[Any, list[Problem]]:
    """Validate, and on errors drop each offending key and validate again, so the checks that
    need a whole model still run: every problem is reported in one go.
    Returns (model or None if even the pruned data fails, problems)."""
    problems: list[Problem] = []
    data = copy.deepcopy(data)
    for _ in range(5):
        try:
            return model.model_validate({**data, **(extra or {})}), problems
        except ValidationError as exc:
            problems += src.problems_from(exc)
            if not all(_prune(data, err["loc"]) for err in exc.errors()):
                return None, problems
    return None, problems


def _prune(data: Any, loc: tuple) -> bool:
    """Delete the key at `loc` (the nearest one that exists); False if nothing could go."""
    parts = [p for p in loc if not _is_union_tag(p)]
    while parts:
        node = data
        for part in parts[:-1]:
            node = node[part] if _has(node, part) else None
        if _has(node, parts[-1]):
            del node[parts[-1]]
            return True
        parts.pop()
    return False


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen union member / function name into loc; not a YAML key
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: str | Path) -> YamlSource:
    """Parse a YAML file; a syntax error becomes a ConfigError with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read file: {exc.strerror}", str(path))]) from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, file: str) -> YamlSource:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem("", f"invalid YAML: {reason}", file, line)]) from exc
    src = YamlSource(file, data if data is not None else {})
    if node is not None:
        _index(node, (), src.lines)
    return src


def _index(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (path + (key_node.value,)) if isinstance(key_node, yaml.ScalarNode) else path
            _index(value_node, key, lines)
            lines[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines)
