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

import graphlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaign_orchestrator.definitions.base import ID_RE
from campaign_orchestrator.definitions.rule_values import (
    COUNT_OPS,
    OPERATORS,
    RuleError,
    parse_moment,
    parse_operand,
    parse_value,
)

PLATFORMS = ("ios", "android", "web")


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


MAX_DEPTH = 20  # all/any/not levels in one rule


def _check(node: Any, path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    """Check one node: the shape every node shares here, its kind's own rules in CHECKERS."""
    if depth > MAX_DEPTH:
        out.append(f"{path}: nested more than {MAX_DEPTH} levels deep")
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
    if kind not in ("attribute", "event"):  # a single-key node: nothing beside its keyword
        _single(node, kind, path, out)
    try:
        CHECKERS[kind](node, path, vocab, out, depth)
    except RuleError as exc:
        out.append(f"{path}: {exc}")


Checker = Callable[[dict[str, Any], str, "Vocabulary", list[str], int], None]


def _check_group(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    kind = "all" if "all" in node else "any"
    children = node[kind]
    if not isinstance(children, list) or not children:
        out.append(f"{path}.{kind}: must be a non-empty list of rules")
        return
    for i, child in enumerate(children):
        _check(child, f"{path}.{kind}[{i}]", vocab, out, depth + 1)


def _check_not(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    _check(node["not"], f"{path}.not", vocab, out, depth + 1)


def _check_segment(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    if node["segment"] not in vocab.segments:
        out.append(f"{path}.segment: unknown segment {_shown(node['segment'])}")


def _check_in_list(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    if not isinstance(node["in_list"], str) or not ID_RE.match(node["in_list"]):
        out.append(f"{path}.in_list: a list id is lower-case letters, digits and _")
    elif vocab.lists is not None and node["in_list"] not in vocab.lists:
        out.append(f"{path}.in_list: unknown list {_shown(node['in_list'])} (declare it in sources.yaml)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _check_attribute(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int = 0) -> None:
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


def _check_event(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int = 0) -> None:
    extra = set(node) - EVENT_KEYS
    if extra:
        out.append(f"{path}: an event condition does not take {sorted(str(e)[:40] for e in extra)}")
    name = node["event"]
    if not isinstance(name, str) or not ID_RE.match(name):
        out.append(f"{path}.event: an event name is lower-case letters, digits and _ (got {_shown(name)})")
    _check_event_window(node, path, out)
    _check_event_measure(node, path, vocab, out)
    where = node.get("where", [])
    for i, cond in enumerate(where if isinstance(where, list) else [where]):
        _check_event_property(cond, f"{path}.where[{i}]", vocab, out)


def _check_event_window(node: dict[str, Any], path: str, out: list[str]) -> None:
    windows = [k for k in ("within_last", "more_than_ago", "between") if k in node]
    if len(windows) > 1:
        out.append(f"{path}: use one window of within_last, more_than_ago, between")
    for key in windows:
        try:
            parse_operand(key, node[key], "datetime")
        except RuleError as exc:
            out.append(f"{path}.{key}: {exc}")


def _check_event_measure(node: dict[str, Any], path: str, vocab: Vocabulary, out: list[str]) -> None:
    """count, sum or last: what about the customer's matching events the condition is on."""
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
            return
        try:
            parse_moment(next(iter(spec.values())), "datetime", None)
        except RuleError as exc:
            out.append(f"{path}.last: {exc}")


def _check_event_property(cond: Any, path: str, vocab: Vocabulary, out: list[str]) -> None:
    if not isinstance(cond, dict) or "property" not in cond:
        out.append(f"{path}: expected {{property: NAME, OP: VALUE}}")
        return
    prop = cond["property"]
    ops = [k for k in cond if k != "property"]
    if prop not in vocab.event_properties:
        out.append(f"{path}.property: unknown event property {_shown(prop)}; allowed: {sorted(vocab.event_properties)}")
        return
    if len(ops) != 1 or ops[0] not in OPERATORS:
        out.append(f"{path}: exactly one operator of {list(OPERATORS)}")
        return
    try:
        parse_operand(ops[0], cond[ops[0]], vocab.event_properties[prop])
    except RuleError as exc:
        out.append(f"{path}.{ops[0]}: {exc}")


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


# One checker per kind of rule, keyed by its keyword; the order is the order problems name them.
CHECKERS: dict[str, Checker] = {
    "all": _check_group,
    "any": _check_group,
    "not": _check_not,
    "segment": _check_segment,
    "attribute": _check_attribute,
    "event": _check_event,
    "in_list": _check_in_list,
    "app": lambda node, path, vocab, out, depth: _check_app(node["app"], f"{path}.app", out),
    "bucket": lambda node, path, vocab, out, depth: _check_bucket(node["bucket"], f"{path}.bucket", out),
    "stage": lambda node, path, vocab, out, depth: _check_stage(node["stage"], f"{path}.stage", vocab, out),
}
NODE_KEYS = tuple(CHECKERS)  # the rule language's keywords, declared once, here


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
