"""What the marketing folder defines, read for browsing: items, where each is used, its YAML.

Read straight from the files (not from the validated `Definitions`), so a folder with a problem
is still browsable: the problem shows on the item whose file it names. Kinds are segments,
lifecycles, templates and campaigns (drafts of campaigns included, marked as such).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from campaign_orchestrator.definitions.loader import DRAFTS_FOLDER

KINDS: dict[str, str] = {
    "segments": "segments",
    "lifecycles": "lifecycles",
    "templates": "templates",
    "campaigns": "campaigns",
}
TITLES = {"segments": "Segments", "lifecycles": "Lifecycles", "templates": "Templates", "campaigns": "Campaigns"}


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    file: str  # relative to the marketing folder
    data: dict[str, Any] = field(repr=False)
    draft: bool = False

    @property
    def summary(self) -> str:
        for key in ("name", "description"):
            if isinstance(self.data.get(key), str):
                return str(self.data[key])
        if self.kind == "templates":
            return str(self.data.get("channel", ""))
        if self.kind == "lifecycles":
            return " > ".join(str(s) for s in self.data.get("stages", []))
        return ""

    @property
    def yaml_text(self) -> str:
        """The definition alone, as YAML (a file may hold several)."""
        return yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, default_flow_style=None)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the lint status of the file says why


def _entries(doc: Any, key: str) -> Iterator[dict[str, Any]]:
    entries = doc.get(key) if isinstance(doc, dict) and key in doc else [doc]
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            yield entry


def segments_in_rule(rule: Any) -> set[str]:
    """Every segment a rule names (`segment: x` anywhere in its tree)."""
    found: set[str] = set()
    if isinstance(rule, dict):
        if isinstance(rule.get("segment"), str):
            found.add(rule["segment"])
        for value in rule.values():
            found |= segments_in_rule(value)
    elif isinstance(rule, list):
        for value in rule:
            found |= segments_in_rule(value)
    return found


def _uses(item: Item) -> set[tuple[str, str]]:
    """(kind, id) of what this item refers to."""
    d = item.data
    if item.kind == "segments":
        return {("segments", s) for s in segments_in_rule(d.get("rule"))}
    if item.kind == "lifecycles":
        return {("segments", str(s)) for s in d.get("stages", []) if isinstance(s, str)}
    if item.kind == "campaigns":
        segments = [d.get("segment"), *(d.get("include") or []), *(d.get("exclude") or [])]
        templates = [d.get("template"), *(v.get("template") for v in d.get("variants") or [] if isinstance(v, dict))]
        return {("segments", s) for s in segments if isinstance(s, str)} | {
            ("templates", t) for t in templates if isinstance(t, str)
        }
    return set()


@dataclass(frozen=True)
class Catalog:
    items: list[Item]

    def of_kind(self, kind: str, query: str = "") -> list[Item]:
        q = query.strip().lower()
        return [
            i
            for i in self.items
            if i.kind == kind and (not q or q in i.id.lower() or q in i.summary.lower() or q in i.file.lower())
        ]

    def get(self, kind: str, item_id: str, draft: bool = False) -> Item | None:
        return next((i for i in self.items if (i.kind, i.id, i.draft) == (kind, item_id, draft)), None)

    def used_by(self, kind: str, item_id: str) -> list[Item]:
        """The items that refer to this one (a draft's references count: it may be approved)."""
        return [i for i in self.items if (kind, item_id) in _uses(i)]


def read_catalog(config_dir: Path) -> Catalog:
    items: list[Item] = []
    for kind, key in KINDS.items():
        folders = [(kind, False)] + ([(DRAFTS_FOLDER, True)] if kind == "campaigns" else [])
        for folder, draft in folders:
            for path in sorted((config_dir / folder).glob("*.y*ml")):
                file = path.relative_to(config_dir).as_posix()
                items += [Item(kind, e["id"], file, e, draft) for e in _entries(_read(path), key)]
    return Catalog(items)
