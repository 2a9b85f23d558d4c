"""Edit one field of a mapping file's text and leave every other byte as it was: comments,
blank lines, quoting, key order and wrapped value maps stay, so the diff an admin reviews
shows that field's change and nothing else.

A full round trip (load, change, dump) would reflow the file: ruamel.yaml re-wraps long flow
mappings and PyYAML drops comments. So ruamel.yaml's round-trip composer only locates the
field's entry (the start and end of each key and value), and the change is spliced into the
text there; ruamel.yaml's emitter writes the new values, each checked to read back as given with the
parser the connector reads mappings with (PyYAML), else written double-quoted and escaped."""

from __future__ import annotations

import io
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from crm_renewals.connector.errors import ConnectorError

#: The options the field form edits; others (`map`, `join`) are kept as they are.
FORM_KEYS = ("field", "type", "format", "default", "const", "required", "direction", "computed")
Edit = tuple[int, int, str]  # replace text[start:end] with this


class MappingTextError(ConnectorError):
    """The text has no `models.<model>.fields` mapping this editor can change: edit it as
    YAML instead."""


def set_field(text: str, model: str, name: str, spec: dict[str, Any] | None) -> str:
    """`text` with `models.<model>.fields.<name>` set to `spec` (its FORM_KEYS options, in
    full: an option left out is removed; None: the field is unmapped)."""
    fields, entry = _entry(text, model, name)
    if spec is None:
        return _apply(text, _remove(text, fields, entry)) if entry is not None else text
    if entry is None:
        return _apply(text, _insert(text, fields, name, _emit(_short(spec))))
    if not isinstance(entry[1], MappingNode):  # the shorthand `name: CrmField` (or empty)
        start, end = entry[1].start_mark.index, _end(entry[1])
        if _load(text[start:end]) == _short(spec):
            return text
        return _apply(text, (start, end, _emit(_short(spec))))
    # one option at a time, the text composed again after each: additions first, so the
    # entry never goes empty, then changes, then removals
    for step in ("add", "change", "remove"):
        for key in FORM_KEYS:
            _, (_, value) = _entry(text, model, name)
            text = _apply(text, _option_edit(text, value, key, spec, step))
    return text


def _apply(text: str, edit: Edit | None) -> str:
    if edit is None:
        return text
    start, end, new = edit
    return text[:start] + new + text[end:]


def _entry(text: str, model: str, name: str) -> tuple[MappingNode, tuple[Node, Node] | None]:
    fields = _fields_node(text, model)
    entry = next(((k, v) for k, v in fields.value if k.value == name), None)
    if entry is not None and entry[1].start_mark.index < entry[0].end_mark.index:
        raise MappingTextError(f"models.{model}.fields.{name} is an alias: edit it as YAML")
    return fields, entry


def _fields_node(text: str, model: str) -> MappingNode:
    try:
        node = YAML(typ="rt").compose(text)
    except YAMLError as exc:
        raise MappingTextError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    for key in ("models", model, "fields"):
        node = _child(node, key)
        if not isinstance(node, MappingNode):
            raise MappingTextError(f"no models.{model}.fields mapping in the file")
    return node


def _child(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)


def _short(spec: dict[str, Any]) -> Any:
    """`{field: X}` is written as the shorthand `X`."""
    return spec["field"] if list(spec) == ["field"] else spec


def _option_edit(text: str, value: MappingNode, key: str, spec: dict, step: str) -> Edit | None:
    have = {k.value: (k, v) for k, v in value.value if isinstance(k, ScalarNode)}
    if step == "add" and key in spec and key not in have:
        return _insert(text, value, key, _emit(spec[key]))
    if step == "change" and key in spec and key in have:
        node = have[key][1]
        start, end = node.start_mark.index, _end(node)
        if _load(text[start:end]) != spec[key]:
            return start, end, _emit(spec[key])
    if step == "remove" and key in have and key not in spec:
        return _remove(text, value, have[key])
    return None


def _remove(text: str, mapping: MappingNode, pair: tuple[Node, Node]) -> Edit:
    key, value = pair
    start, end = key.start_mark.index, _end(value)
    if mapping.flow_style:
        rest = text[end:]
        after = len(rest) - len(rest.lstrip())
        if rest[after : after + 1] == ",":  # take the comma after it and the space after that
            tail = rest[after + 1 :]
            return start, end + after + 1 + len(tail) - len(tail.lstrip(" ")), ""
        before = text[:start].rstrip()
        if before.endswith(","):  # the last pair: take the comma before it
            return len(before) - 1, end, ""
        return start, end, ""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return line_start, len(text) if line_end < 0 else line_end + 1, ""


def _insert(text: str, mapping: MappingNode, key: str, value: str) -> Edit:
    pair = f"{_emit(key)}: {value}"
    if mapping.flow_style:
        if not mapping.value:
            at = text.index("{", mapping.start_mark.index) + 1
            return at, at, pair
        at = _end(mapping.value[-1][1])
        return at, at, ", " + pair
    indent = " " * mapping.value[0][0].start_mark.column
    line_end = text.find("\n", _end(mapping.value[-1][1]))
    at = len(text) if line_end < 0 else line_end
    return at, at, "\n" + indent + pair


def _end(node: Node) -> int:
    """Where a node's own text ends (a block collection's end mark lies past the comments
    and blank lines after it)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _end(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _end(node.value[-1])
    return node.end_mark.index


def _emit(value: Any) -> str:
    """A value as YAML flow text on one line (quoted where plain text would read otherwise)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_emit(k)}: {_emit(v)}" for k, v in value.items()) + "}"
    yaml = YAML(typ="rt")
    yaml.default_flow_style = True
    yaml.width = 1 << 16
    out = io.StringIO()
    yaml.dump([value], out)
    text = out.getvalue().strip()[1:-1]
    if _load(f"[{text}]") != [value]:  # `yes`, `0?`, a NEL in quotes: PyYAML reads otherwise
        return _escaped(str(value))
    return text


def _escaped(text: str) -> str:
    """Double-quoted YAML, every character that is not printable escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\x85\u2028\u2029":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return '"' + "".join(out) + '"'


def _load(text: str) -> Any:
    """`text` as the connector reads it (PyYAML, YAML 1.1: `yes` is true, `[0?]` is an error),
    which is not always as ruamel.yaml (YAML 1.2) reads it; None when it cannot be read."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None
