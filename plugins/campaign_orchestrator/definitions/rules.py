"""The segment rule language: what marketers write in YAML, checked at load and compiled to SQL.

A rule is one of

- `all: [rules]`, `any: [rules]`, `not: rule`
- `segment: ID` (membership of another segment, same run date)
- `{attribute: NAME, OP: VALUE}` on a profile column the data contract allows, OP one of
  eq ne gt gte lt lte in not_in between exists is_null contains starts_with, and for dates
  before after on within_last more_than_ago (a date, or a duration such as 30d, 12h, 2w
  counted back from the start of the run date)
- `{event: NAME, count: {gte: 2}, within_last: 90d, where: [{property: amount, gt: 50}]}`:
  performed an event at least/at most/exactly N times (count ops eq gte lte gt lt between;
  default gte 1) in a window (within_last, more_than_ago, between), optionally with property
  conditions and `sum: {property: amount, gt: 500}`; or `last: {before: 30d}` / `last: {after: ...}`
  on when it was last performed
- `in_list: ID` (a static list), `app: {platform: [ios], push_token: true, app_id: ID}`
- `bucket: {salt: TEXT, buckets: 100, lt: 10}` (a stable hash of customer and salt)
- `stage: {lifecycle: ID, in: [stages]}` (the customer's lifecycle stage that run date)

Names are checked against allow-lists; every value becomes a bound parameter, never SQL text.
Every condition compiles to a predicate that is TRUE or FALSE (never NULL), so `not` means what
a marketer expects: a customer without a tier is "not gold".
"""

from __future__ import annotations

import datetime as dt
import graphlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaign_orchestrator.definitions.base import ID_RE
from campaign_orchestrator.errors import CampaignError, InvalidInput

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte")
RELATIVE = ("within_last", "more_than_ago")
DATE_OPS = ("before", "after", "on", *RELATIVE)
OPERATORS = (*COMPARISONS, "in", "not_in", "between", "exists", "is_null", "contains", "starts_with", *DATE_OPS)
COUNT_OPS = ("eq", "gte", "lte", "gt", "lt", "between")
TEXT_OPERATORS = {"contains", "starts_with"}
ORDERED_TYPES = {"int", "float", "date", "datetime", "string"}
PLATFORMS = ("ios", "android", "web")
NODE_KEYS = ("all", "any", "not", "segment", "attribute", "event", "in_list", "app", "bucket", "stage")
MAX_TEXT = 1000  # longer values are refused: no marketer means a 1 MB string
_DURATION = re.compile(r"^(\d{1,5})([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class RuleError(CampaignError, InvalidInput, ValueError):
    """A segment rule that cannot be compiled; the message names the path inside the rule."""


@dataclass(frozen=True)
class Vocabulary:
    """What rules may name: profile attributes and event properties (from the data contracts),
    segments, lifecycles and their stages, static lists (from sources.yaml; None = not checked)."""

    attributes: Mapping[str, str]
    event_properties: Mapping[str, str] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()
    lifecycles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lists: frozenset[str] | None = None


# ---------------------------------------------------------------- values


def parse_duration(value: Any) -> dt.timedelta:
    """'30d', '12h', '2w' (any whole number) as a timedelta."""
    match = _DURATION.match(str(value).strip().lower())
    if not match:
        raise RuleError(f"expected a duration such as 30d, 12h or 2w, got {value!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def anchor(run_date: dt.date) -> dt.datetime:
    """Relative dates count back from the start of the run date (UTC): re-runs give the same members."""
    return dt.datetime.combine(run_date, dt.time())


def parse_value(value: Any, kind: str) -> Any:
    if value is None:
        raise RuleError("a value is required (use is_null to test for missing values)")
    if kind == "bool":
        if not isinstance(value, bool):
            raise RuleError(f"expected true or false, got {value!r}")
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RuleError(f"expected a number, got {value!r}")
        return value
    if kind in ("date", "datetime"):
        return parse_moment(value, kind, None)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RuleError(f"expected text, got {value!r}")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise RuleError(f"text longer than {MAX_TEXT} characters")
    if _CONTROL.search(text):
        # NUL ends strings in some engines (SQLite's LIKE), others refuse it: no engine agrees.
        raise RuleError("text with control characters (NUL, line breaks, ...) is not accepted")
    return text


def parse_moment(value: Any, kind: str, run_date: dt.date | None) -> Any:
    """An absolute date/time, or a duration counted back from the run date (needs run_date)."""
    if isinstance(value, str) and _DURATION.match(value.strip().lower()):
        if run_date is None:
            return parse_duration(value)  # checked now, resolved at compile time
        moment = anchor(run_date) - parse_duration(value)
        return moment.date() if kind == "date" else moment
    if isinstance(value, dt.datetime):
        return value.date() if kind == "date" else value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return value if kind == "date" else dt.datetime.combine(value, dt.time())
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise RuleError(f"expected a date (YYYY-MM-DD), a date-time or a duration like 30d, got {value!r}") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed.date() if kind == "date" else parsed


def parse_operand(op: str, operand: Any, kind: str) -> Any:
    if op in ("exists", "is_null"):
        if operand is not True:
            raise RuleError(f"write '{op}: true'")
        return True
    if op in ("in", "not_in"):
        if not isinstance(operand, list) or not operand:
            raise RuleError("expected a non-empty list")
        if len(operand) > 10_000:
            raise RuleError("more than 10,000 values: use a static list instead")
        return [parse_value(v, kind) for v in operand]
    if op == "between":
        if not isinstance(operand, list) or len(operand) != 2:
            raise RuleError("expected [low, high]")
        low, high = (parse_value(v, kind) for v in operand)
        if type(low) is type(high) and not isinstance(low, dt.timedelta) and low > high:
            raise RuleError("low is greater than high")
        return [low, high]
    if op in DATE_OPS:
        if kind not in ("date", "datetime"):
            raise RuleError(f"{op} works on date attributes, this one is {kind}")
        return parse_duration(operand) if op in RELATIVE else parse_moment(operand, kind, None)
    if op in TEXT_OPERATORS:
        if kind != "string":
            raise RuleError(f"{op} works on text attributes, this one is {kind}")
        if not isinstance(operand, str) or not operand:
            raise RuleError("expected non-empty text")
        return parse_value(operand, kind)
    if op in ("gt", "gte", "lt", "lte") and kind not in ORDERED_TYPES:
        raise RuleError(f"{op} does not apply to {kind} attributes")
    return parse_value(operand, kind)


# ---------------------------------------------------------------- checking


def check_rule(rule: Any, vocab: Vocabulary) -> list[str]:
    """Problems in a rule as ('.path: reason') strings; empty when the rule compiles."""
    problems: list[str] = []
    _check(rule, "", vocab, problems, depth=0)
    return problems


def _single(node: dict[str, Any], key: str, path: str, out: list[str], allowed: set[str] | None = None) -> None:
    extra = set(node) - {key} - (allowed or set())
    if extra:
        out.append(f"{path}: '{key}' does not take {sorted(extra)}")


def _check(node: Any, path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    if depth > 20:
        out.append(f"{path}: nested more than 20 levels deep")
        return
    if not isinstance(node, dict) or not node:
        out.append(f"{path}: a rule is a mapping with one of {list(NODE_KEYS)}")
        return
    kinds = [k for k in NODE_KEYS if k in node]
    if len(kinds) != 1:
        found = kinds or sorted(str(k)[:40] for k in node)
        out.append(f"{path}: expected exactly one of {list(NODE_KEYS)}, found {found}")
        return
    kind = kinds[0]
    try:
        if kind in ("all", "any"):
            _single(node, kind, path, out)
            children = node[kind]
            if not isinstance(children, list) or not children:
                out.append(f"{path}.{kind}: must be a non-empty list of rules")
                return
            for i, child in enumerate(children):
                _check(child, f"{path}.{kind}[{i}]", vocab, out, depth + 1)
        elif kind == "not":
            _single(node, kind, path, out)
            _check(node["not"], f"{path}.not", vocab, out, depth + 1)
        elif kind == "segment":
            _single(node, kind, path, out)
            if node["segment"] not in vocab.segments:
                out.append(f"{path}.segment: unknown segment {_shown(node['segment'])}")
        elif kind == "attribute":
            _check_attribute(node, path, vocab, out)
        elif kind == "event":
            _check_event(node, path, vocab, out)
        elif kind == "in_list":
            _single(node, kind, path, out)
            if not isinstance(node["in_list"], str) or not ID_RE.match(node["in_list"]):
                out.append(f"{path}.in_list: a list id is lower-case letters, digits and _")
            elif vocab.lists is not None and node["in_list"] not in vocab.lists:
                out.append(f"{path}.in_list: unknown list {_shown(node['in_list'])} (declare it in sources.yaml)")
        elif kind == "app":
            _single(node, kind, path, out)
            _check_app(node["app"], f"{path}.app", out)
        elif kind == "bucket":
            _single(node, kind, path, out)
            _check_bucket(node["bucket"], f"{path}.bucket", out)
        elif kind == "stage":
            _single(node, kind, path, out)
            _check_stage(node["stage"], f"{path}.stage", vocab, out)
    except RuleError as exc:
        out.append(f"{path}: {exc}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _check_attribute(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str]) -> None:
    name = node["attribute"]
    ops = [k for k in node if k != "attribute"]
    if len(ops) != 1 or ops[0] not in OPERATORS:
        shown = [str(o)[:40] for o in ops]
        out.append(f"{path}: an attribute condition takes exactly one operator of {list(OPERATORS)}; found {shown}")
        return
    if not isinstance(name, str) or name not in vocab.attributes:
        out.append(f"{path}.attribute: unknown attribute {_shown(name)}; allowed: {sorted(vocab.attributes)}")
        return
    try:
        parse_operand(ops[0], node[ops[0]], vocab.attributes[name])
    except RuleError as exc:
        out.append(f"{path}.{ops[0]}: {exc}")


EVENT_KEYS = {"event", "count", "within_last", "more_than_ago", "between", "where", "sum", "last"}


def _check_event(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str]) -> None:
    extra = set(node) - EVENT_KEYS
    if extra:
        out.append(f"{path}: an event condition does not take {sorted(str(e)[:40] for e in extra)}")
    name = node["event"]
    if not isinstance(name, str) or not ID_RE.match(name):
        out.append(f"{path}.event: an event name is lower-case letters, digits and _ (got {_shown(name)})")
    windows = [k for k in ("within_last", "more_than_ago", "between") if k in node]
    if len(windows) > 1:
        out.append(f"{path}: use one window of within_last, more_than_ago, between")
    for key in windows:
        try:
            parse_operand(key, node[key], "datetime")
        except RuleError as exc:
            out.append(f"{path}.{key}: {exc}")
    if "last" in node and ("count" in node or "sum" in node):
        out.append(f"{path}: 'last' cannot be combined with count or sum")
    if "count" in node:
        _check_aggregate(node["count"], f"{path}.count", out, numeric_only=True)
    if "sum" in node:
        spec = node["sum"]
        if not isinstance(spec, dict) or "property" not in spec:
            out.append(f"{path}.sum: expected {{property: NAME, OP: NUMBER}}")
        else:
            if spec["property"] not in vocab.event_properties:
                out.append(f"{path}.sum.property: unknown event property {_shown(spec['property'])}")
            _check_aggregate({k: v for k, v in spec.items() if k != "property"}, f"{path}.sum", out, numeric_only=True)
    if "last" in node:
        spec = node["last"]
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("before", "after"):
            out.append(f"{path}.last: expected {{before: WHEN}} or {{after: WHEN}}")
        else:
            try:
                parse_moment(next(iter(spec.values())), "datetime", None)
            except RuleError as exc:
                out.append(f"{path}.last: {exc}")
    where = node.get("where", [])
    if not isinstance(where, list):
        where = [where]
    for i, cond in enumerate(where):
        if not isinstance(cond, dict) or "property" not in cond:
            out.append(f"{path}.where[{i}]: expected {{property: NAME, OP: VALUE}}")
            continue
        prop = cond["property"]
        ops = [k for k in cond if k != "property"]
        if prop not in vocab.event_properties:
            out.append(
                f"{path}.where[{i}].property: unknown event property {_shown(prop)}; "
                f"allowed: {sorted(vocab.event_properties)}"
            )
            continue
        if len(ops) != 1 or ops[0] not in OPERATORS:
            out.append(f"{path}.where[{i}]: exactly one operator of {list(OPERATORS)}")
            continue
        try:
            parse_operand(ops[0], cond[ops[0]], vocab.event_properties[prop])
        except RuleError as exc:
            out.append(f"{path}.where[{i}].{ops[0]}: {exc}")


def _check_aggregate(spec: Any, path: str, out: list[str], numeric_only: bool) -> None:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in COUNT_OPS:
        out.append(f"{path}: expected one of {list(COUNT_OPS)}, e.g. {{gte: 2}}")
        return
    op, value = next(iter(spec.items()))
    values = value if op == "between" else [value]
    if op == "between" and (not isinstance(value, list) or len(value) != 2):
        out.append(f"{path}.between: expected [low, high]")
        return
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            out.append(f"{path}.{op}: expected a number of at least 0, got {_shown(v)}")


def _check_app(spec: Any, path: str, out: list[str]) -> None:
    if not isinstance(spec, dict) or not spec or set(spec) - {"platform", "push_token", "app_id"}:
        out.append(f"{path}: expected any of platform, push_token, app_id")
        return
    platforms = spec.get("platform", [])
    for p in platforms if isinstance(platforms, list) else [platforms]:
        if p not in PLATFORMS:
            out.append(f"{path}.platform: unknown platform {_shown(p)}; one of {list(PLATFORMS)}")
    if "push_token" in spec and not isinstance(spec["push_token"], bool):
        out.append(f"{path}.push_token: expected true or false")
    if "app_id" in spec:
        try:
            if len(parse_value(spec["app_id"], "string")) > 128:
                raise RuleError("longer than 128 characters")
        except RuleError as exc:
            out.append(f"{path}.app_id: expected an app id ({exc})")


def _check_bucket(spec: Any, path: str, out: list[str]) -> None:
    if not isinstance(spec, dict) or not isinstance(spec.get("salt"), str) or not spec["salt"]:
        out.append(f"{path}: expected {{salt: TEXT, buckets: N, lt: K}}")
        return
    try:
        parse_value(spec["salt"], "string")
    except RuleError as exc:
        out.append(f"{path}.salt: {exc}")
    buckets = spec.get("buckets", 100)
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= 1_000_000:
        out.append(f"{path}.buckets: a whole number from 2 to 1,000,000")
    ops = [k for k in spec if k not in ("salt", "buckets")]
    if len(ops) != 1 or ops[0] not in ("lt", "gte", "between", "in"):
        out.append(f"{path}: one of lt, gte, between, in")


def _check_stage(spec: Any, path: str, vocab: Vocabulary, out: list[str]) -> None:
    if not isinstance(spec, dict) or "lifecycle" not in spec:
        out.append(f"{path}: expected {{lifecycle: ID, in: [stages]}}")
        return
    stages = vocab.lifecycles.get(spec["lifecycle"])
    if stages is None:
        out.append(f"{path}.lifecycle: unknown lifecycle {_shown(spec['lifecycle'])}")
        return
    ops = [k for k in spec if k != "lifecycle"]
    if len(ops) != 1 or ops[0] not in ("in", "not_in", "eq", "ne"):
        out.append(f"{path}: one of in, not_in, eq, ne")
        return
    wanted = spec[ops[0]] if isinstance(spec[ops[0]], list) else [spec[ops[0]]]
    for stage in wanted:
        if stage not in stages:
            out.append(f"{path}.{ops[0]}: unknown stage {_shown(stage)} of {spec['lifecycle']}; stages: {list(stages)}")


# ---------------------------------------------------------------- dependencies


def dependencies(rule: Any) -> set[str]:
    """What a rule needs computed first: 'segment:ID' and 'lifecycle:ID'."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if "segment" in node:
            found.add(f"segment:{node['segment']}")
        if "stage" in node and isinstance(node["stage"], dict):
            found.add(f"lifecycle:{node['stage'].get('lifecycle')}")
        for key in ("all", "any"):
            for child in node.get(key) or []:
                walk(child)
        if "not" in node:
            walk(node["not"])

    walk(rule)
    return found


@dataclass(frozen=True)
class LifecycleSpec:
    id: str
    stages: tuple[str, ...]  # segment ids, in order: the first that matches wins
    otherwise: str


def evaluation_order(rules: Mapping[str, Any], lifecycles: Sequence[LifecycleSpec] = ()) -> list[str]:
    """'segment:ID' and 'lifecycle:ID' in an order where everything comes after what it uses."""
    graph: dict[str, set[str]] = {f"segment:{sid}": dependencies(rule) for sid, rule in rules.items()}
    for lc in lifecycles:
        graph[f"lifecycle:{lc.id}"] = {f"segment:{s}" for s in lc.stages}
    try:
        return [node for node in graphlib.TopologicalSorter(graph).static_order() if node in graph]
    except graphlib.CycleError as exc:
        raise RuleError(f"segments refer to each other in a cycle: {' -> '.join(exc.args[1])}") from exc
