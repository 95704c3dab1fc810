"""The segment builder's work: a rule edited as a form or as YAML, checked and sized before it is saved.

Invariants:
- An edited rule is judged by putting it into its file (round-trip YAML: the other segments and
  every comment stay) and running `campaigns validate`'s check on a copy of the folder
  (`DefinitionStore.check_changes`), so the builder shows the very messages `campaigns validate`
  prints, and a rule that would fail it is never sized nor saved.
- Sizes go through `segments.sizes.rule_sizes`, which compiles with `compile_rule`: what a
  marketer typed reaches the warehouse as bound parameters only, never as SQL text. Other
  segments and lifecycle stages a rule names are compiled in place (as `campaigns estimate`),
  with this segment's unsaved rule in place of its saved one.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from campaign_orchestrator.clock import today
from campaign_orchestrator.console.checks import FolderCheck
from campaign_orchestrator.console.service import Console
from campaign_orchestrator.console.store import Change, Stored
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.definitions.rules import PLATFORMS
from campaign_orchestrator.segments.compile import Inline
from campaign_orchestrator.segments.sizes import Sizes, rule_sizes
from campaign_orchestrator.segments.windows import windows_for
from campaign_orchestrator.warehouse.tables import import_log

BLOCK_RE = re.compile(r"\brule\.(?:(?:all|any)\[(\d+)\]|(not))")
ATTRIBUTE_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "exists", "is_null"]
ATTRIBUTE_OPS += ["contains", "starts_with", "before", "after", "on", "within_last", "more_than_ago"]
COUNT_OPS = ["gte", "lte", "eq", "gt", "lt", "between"]


class NotInFile(Exception):
    """The segment is not (or no longer) in the file the page named."""


def rule_yaml(rule: Any) -> str:
    return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True, default_flow_style=False)


def parse_rule_yaml(text: str) -> tuple[Any, str | None]:
    """(the rule, None), or (None, why it is not YAML) in the loader's words."""
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as exc:
        return None, f"the rule is not valid YAML: {exc}".replace("\n", " ")


def with_rule(text: str, segment_id: str, rule: Any) -> str:
    """The segments file `text` with the rule of `segment_id` replaced; comments and order kept."""
    rt = YAML()
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    try:
        doc = rt.load(text)
    except YAMLError as exc:
        raise NotInFile(f"the file is not valid YAML: {exc}") from None
    entries = doc.get("segments") if hasattr(doc, "get") and "segments" in doc else [doc]
    for entry in entries or []:
        if hasattr(entry, "get") and entry.get("id") == segment_id:
            entry["rule"] = json.loads(json.dumps(rule))  # plain data: no aliases into the document
            out = io.StringIO()
            rt.dump(doc, out)
            return out.getvalue()
    raise NotInFile(f"segment {segment_id!r} is not in this file any more")


def block_of(problem: str) -> int | None:
    """The top-level block a `campaigns validate` problem is about (None: the rule as a whole)."""
    found = BLOCK_RE.search(problem)
    if found is None:
        return None
    return 0 if found.group(2) else int(found.group(1))


@dataclass
class Checked:
    rule: Any
    text: str | None  # the file with the rule in place (None when the rule is not YAML)
    problems: list[str] = field(default_factory=list)
    check: FolderCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.check is not None and self.check.definitions is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rule": self.rule,
            "yaml": rule_yaml(self.rule) if self.rule is not None else None,
            "problems": [{"message": p, "block": block_of(p)} for p in self.problems],
        }


def check_rule_edit(app: Console, stored: Stored, segment_id: str, rule: Any) -> Checked:
    """The edited rule put into its file and checked like `campaigns validate`; the problems are
    those naming this file (another file's problem does not block this edit's size)."""
    text = with_rule(stored.text or "", segment_id, rule)
    check = app.store.check_changes([Change(stored.file, text, stored.version)])
    mine = check.problems_in(app.config_dir / stored.file)
    return Checked(rule, text, mine, check)


def latest_import_date(app: Console) -> dt.date:
    with app.engine.connect() as conn:
        found = conn.scalar(sa.select(sa.func.max(import_log.c.run_date)))
    return found if isinstance(found, dt.date) else today()


def sizes_of(app: Console, definitions: Definitions, segment_id: str, rule: Any, run_date: dt.date, part: str) -> Sizes:
    rules = {**definitions.rules(), segment_id: rule}
    specs = definitions.lifecycle_specs()
    inline = Inline(rules, {lc.id: lc.stages for lc in specs}, {lc.id: lc.otherwise for lc in specs})
    settings = definitions.settings
    with app.engine.connect() as conn, conn.begin():
        windows = windows_for(conn, run_date, settings.windows, settings.default_timezone)
        return rule_sizes(
            conn, rule, definitions.vocabulary, run_date, inline, windows, cache=app.sizes_cache, part=part
        )


def form_vocabulary(app: Console, definitions: Definitions | None, segment_id: str) -> dict[str, Any]:
    """What the form's pickers offer: the names a rule may use, from the contracts and the folder."""
    vocab = app.checker.vocabulary()
    events = sorted({e for names in vocab.property_events.values() for e in names} | {"purchase", "app_open"})
    segments = sorted(definitions.segments) if definitions is not None else sorted(vocab.segments)
    return {
        "attributes": sorted(vocab.attributes),
        "properties": sorted(vocab.event_properties),
        "events": events,
        "segments": [s for s in segments if s != segment_id],
        "lists": sorted(vocab.lists or []),
        "platforms": sorted(PLATFORMS),
        "attribute_ops": ATTRIBUTE_OPS,
        "count_ops": COUNT_OPS,
    }
