"""Reading the marketers' YAML files so that every problem names its file, line or path.

Files are read with limits, because a definition file is input the night must survive: bytes
that are not UTF-8 are refused with their offset, a document nested deeper than MAX_DEPTH or
holding more than MAX_VALUES values once its aliases are expanded (the "billion laughs") is
refused with the line where it grows, an alias that contains itself is refused, and an empty
file is an error (it would silently define nothing). What is read keeps the line of every value,
so later checks can say where in the file a problem is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from campaign_orchestrator.errors import CampaignError, InvalidInput

MAX_VALUES = 100_000  # values in one file, aliases expanded; the shipped files hold a few hundred
MAX_DEPTH = 64  # nesting of mappings and lists; a rule is at most 20 levels of all/any/not

PathKey = tuple[str | int, ...]


class YamlLimit(CampaignError, InvalidInput, ValueError):
    """A file is over one of the reading limits; the message says which and where."""


@dataclass
class YamlDoc:
    """A document and the 1-based line of each value in it, by path (keys and list indexes)."""

    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of the value at `path`, or of the nearest enclosing value the file has."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def read_yaml(path: Path, problems: list[str], allow_empty: bool = False) -> Any:
    """The document, or None with the reason (file, line) appended to `problems`."""
    doc = read_yaml_doc(path, problems, allow_empty)
    return doc.data if doc is not None else None


def read_yaml_doc(path: Path, problems: list[str], allow_empty: bool = False) -> YamlDoc | None:
    """The document with its lines, or None with the reason appended to `problems`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(f"{path}: line {line}, byte {exc.start}: not UTF-8 ({exc.reason}); save the file as UTF-8")
        return None
    try:
        doc = _load(text)
    except YamlLimit as exc:
        problems.append(f"{path}: {exc}")
        return None
    except yaml.YAMLError as exc:
        problems.append(f"{path}: {_where(exc, text)}: not valid YAML ({getattr(exc, 'problem', None) or exc})")
        return None
    except RecursionError:
        problems.append(f"{path}: nested too deeply to read (more than {MAX_DEPTH} levels)")
        return None
    if doc is None and not allow_empty:
        problems.append(f"{path}: the file is empty: it defines nothing (delete it, or write the definition)")
        return None
    return doc if doc is not None else YamlDoc(None)


def _where(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}"
    position = getattr(exc, "position", None)  # the reader's errors (a control character) give an offset
    if isinstance(position, int):
        return f"line {text[:position].count(chr(10)) + 1}"
    return "?"


def _load(text: str) -> YamlDoc | None:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        lines = _measure(node)
        return YamlDoc(loader.construct_document(node), lines)
    finally:
        loader.dispose()


def _measure(root: yaml.Node) -> dict[PathKey, int]:
    """Lines by path; raises YamlLimit when the document expands past MAX_VALUES values, nests
    past MAX_DEPTH, or an alias contains itself. Iterative, so no document can exhaust the stack."""
    lines: dict[PathKey, int] = {}
    count = 0
    stack: list[tuple[yaml.Node, PathKey, frozenset[int]]] = [(root, (), frozenset())]
    while stack:
        node, path, ancestors = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise YamlLimit(
                f"line {node.start_mark.line + 1}: more than {MAX_VALUES:,} values once its aliases (*name) are "
                "expanded; repeat less through aliases"
            )
        if len(path) > MAX_DEPTH:
            raise YamlLimit(f"line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in ancestors:
            raise YamlLimit(f"line {node.start_mark.line + 1}: an alias that contains itself")
        inside = ancestors | {id(node)} if isinstance(node, yaml.CollectionNode) else ancestors
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name: str | int = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
                stack.append((key, (*path, f"<key {name}>"), inside))
                stack.append((value, (*path, name), inside))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, i), inside))
    return lines


_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def parse_path(text: str) -> PathKey:
    """'segments[0].rule.all[1]' -> ('segments', 0, 'rule', 'all', 1)."""
    return tuple(int(index) if index else name for name, index in _PART.findall(text))


def at_line(message: str, doc: YamlDoc | None, path: PathKey) -> str:
    """`message` with ' (line N)' added when the file says where `path` is."""
    line = doc.line_of(path) if doc is not None else None
    return f"{message} (line {line})" if line is not None else message


def pydantic_problems(path: Path | str, prefix: str, exc: ValidationError, doc: YamlDoc | None = None) -> list[str]:
    """'file: path.in.file: message (line N)' for each error of a model validation."""
    out = []
    base = parse_path(prefix) if prefix else ()
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts = (*base, *(p for p in err["loc"] if isinstance(p, str | int)))
        out.append(at_line(f"{path}: {loc}: {err['msg']}", doc, parts))
    return out
