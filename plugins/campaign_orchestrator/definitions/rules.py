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

Each kind is a typed node declared once (`rule_nodes`, `rule_conditions`); this module is the
language's front: checking a raw rule, the node it parses to, and the order segments and
lifecycles must be computed in. Names are checked against allow-lists; every value becomes a
bound parameter, never SQL text. Every condition compiles to a predicate that is TRUE or FALSE
(never NULL), so `not` means what a marketer expects: a customer without a tier is "not gold".
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from campaign_orchestrator.definitions.rule_nodes import NODE_CLASSES, NODE_KEYS, PLATFORMS, check_node, parse_rule
from campaign_orchestrator.definitions.rule_values import RuleError, RuleNode, Vocabulary

__all__ = [
    "NODE_CLASSES",
    "NODE_KEYS",
    "PLATFORMS",
    "LifecycleSpec",
    "RuleNode",
    "Vocabulary",
    "check_rule",
    "dependencies",
    "evaluation_order",
    "parse_rule",
]


def check_rule(rule: Any, vocab: Vocabulary) -> list[str]:
    """Problems in a rule as ('.path: reason') strings; empty when the rule compiles."""
    problems: list[str] = []
    check_node(rule, "", vocab, problems, depth=0)
    return problems


def dependencies(rule: Any) -> set[str]:
    """What a rule needs computed first: 'segment:ID' and 'lifecycle:ID' (none for a rule that
    does not parse: its problems are reported by `check_rule`)."""
    try:
        stack: list[RuleNode] = [parse_rule(rule)]
    except RuleError:
        return set()
    found: set[str] = set()
    while stack:
        node = stack.pop()
        found |= node.needs()
        stack.extend(node.children())
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
