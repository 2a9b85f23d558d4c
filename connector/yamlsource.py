"""Load YAML while remembering the line of every key, so problems point at file:line."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from crm_renewals.connector.errors import ConfigError, Problem


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
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read file: {exc.strerror}", str(path))]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): save it as UTF-8 YAML"
        raise ConfigError([Problem("", message, str(path), line)]) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, file: str) -> YamlSource:
    try:
        _check_bounds(text, file)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_size(node, file)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, text, file)]) from None
    src = YamlSource(file, data if data is not None else {})
    if node is not None:
        _index(node, (), src.lines)
    return src


#: Nesting deeper than this is refused while parsing (PyYAML slows down quadratically and
#: finally overflows the stack on deep nesting); no configuration or mapping needs 20.
MAX_DEPTH = 64
#: Values a document may hold once its aliases (*name) are expanded: bounds "billion laughs".
MAX_VALUES = 100_000
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_bounds(text: str, file: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH as soon as the parser reaches it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    [
                        Problem(
                            "",
                            f"nested more than {MAX_DEPTH} deep: not a configuration or "
                            "mapping file",
                            file,
                            event.start_mark.line + 1,
                        )
                    ]
                )
        elif isinstance(event, _CLOSE):
            depth -= 1


def _check_size(root: yaml.Node, file: str) -> None:
    """Refuse aliases that refer to themselves or expand past MAX_VALUES values."""
    sizes: dict[int, int] = {}
    opened: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in opened:
            raise _alias_problem(node, file, "an alias (*name) refers to itself")
        opened.add(key)
        children: list = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise _alias_problem(
                    node,
                    file,
                    f"expands to more than {MAX_VALUES} values through aliases (*name): "
                    "write the values out instead of repeating anchors",
                )
        sizes[key] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise _alias_problem(root, file, "aliases (*name) nest too deep") from None


def _alias_problem(node: yaml.Node, file: str, message: str) -> ConfigError:
    return ConfigError([Problem("", message, file, node.start_mark.line + 1)])


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str) -> Problem:
    """One line: the parser's reason and the line it points at."""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character, say
        line = text[: exc.position].count("\n") + 1
        message = f"invalid YAML: character U+{exc.character:04X} is not allowed"
        return Problem("", message, file, line)
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return Problem("", f"invalid YAML: {reason}", file, mark.line + 1 if mark else None)


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
