"""Compiling the rule language to SQL: one function per kind of rule, each a two-valued predicate
over `customers` (TRUE or FALSE, never NULL) whose values are bound parameters, never SQL text.
The language itself, and the checks every rule passed before it gets here, are in
`definitions.rules`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from campaign_orchestrator.definitions.rule_conditions import AttributeCondition, EventCondition, PropertyCondition
from campaign_orchestrator.definitions.rule_nodes import (
    AllOf,
    AnyOf,
    HasApp,
    InBucket,
    InList,
    InSegment,
    InStage,
    Not,
    parse_rule,
)
from campaign_orchestrator.definitions.rule_values import (
    RELATIVE,
    RuleError,
    RuleNode,
    Vocabulary,
    parse_moment,
    parse_operand,
)
from campaign_orchestrator.definitions.rules import check_rule
from campaign_orchestrator.segments.windows import Clock, LocalWindows
from campaign_orchestrator.warehouse.event_properties import events_table
from campaign_orchestrator.warehouse.sqlfuncs import bytewise, hash_bucket
from campaign_orchestrator.warehouse.tables import (
    app_installs,
    customers,
    lifecycle_membership,
    list_members,
    segment_membership,
)


@dataclass(frozen=True)
class Inline:
    """For estimates: referenced segments and lifecycles are compiled in place, not read from the
    memberships of a run, so a segment can be sized before any run has happened."""

    segments: Mapping[str, Any]
    lifecycles: Mapping[str, tuple[str, ...]]
    otherwise: Mapping[str, str]


def compile_rule(
    rule: Any,
    vocab: Vocabulary,
    run_date: dt.date,
    inline: Inline | None = None,
    windows: LocalWindows | None = None,
) -> ColumnElement[bool]:
    """The rule as a two-valued predicate over `customers`; values become bound parameters.
    `windows` counts relative dates in each customer's zone (`windows: customer_local`)."""
    problems = check_rule(rule, vocab)
    if problems:
        raise RuleError("; ".join(problems))
    return _compile(parse_rule(rule), vocab, Clock(run_date, windows), inline)


def _compile(node: RuleNode, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    """Dispatch on the node's class to its kind's compile function (as sqlglot does per node)."""
    return COMPILERS[type(node)](node, vocab, clock, inline)


def _inline(segment_id: str, vocab: Vocabulary, clock: Clock, inline: Inline) -> ColumnElement[bool]:
    return _compile(parse_rule(inline.segments[segment_id]), vocab, clock, inline)


Compiler = Callable[[Any, Vocabulary, Clock, "Inline | None"], ColumnElement[bool]]


def _all_sql(node: AllOf, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    return sa.and_(*(_compile(c, vocab, clock, inline) for c in node.all))


def _any_sql(node: AnyOf, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    return sa.or_(*(_compile(c, vocab, clock, inline) for c in node.any))


def _not_sql(node: Not, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    return sa.not_(_compile(node.not_, vocab, clock, inline))


def _segment_sql(node: InSegment, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    if inline is not None:
        return _inline(node.segment, vocab, clock, inline)
    return member_of(
        sa.select(segment_membership.c.customer_id).where(
            segment_membership.c.run_date == clock.run_date, segment_membership.c.segment_id == node.segment
        )
    )


def _attribute_sql(
    node: AttributeCondition, vocab: Vocabulary, clock: Clock, inline: Inline | None
) -> ColumnElement[bool]:
    op, raw = node.operator
    kind = vocab.attributes[node.attribute]
    return _condition(customers.c[node.attribute], op, raw, kind, clock.at(customers.c.timezone))


def _in_list_sql(node: InList, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    return member_of(sa.select(list_members.c.customer_id).where(list_members.c.list_id == node.in_list))


def _app_sql(node: HasApp, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    spec = node.app
    conds: list[ColumnElement[bool]] = []
    if spec.platforms is not None:
        conds.append(app_installs.c.platform.in_(spec.platforms))
    if spec.push_token is not None:
        conds.append(app_installs.c.push_token_present == (sa.true() if spec.push_token else sa.false()))
    if "app_id" in spec.model_fields_set:
        conds.append(app_installs.c.app_id == spec.app_id)
    return member_of(sa.select(app_installs.c.customer_id).where(*conds))


def _bucket_sql(node: InBucket, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    spec = node.bucket
    bucket = hash_bucket(customers.c.customer_id, f"bucket:{spec.salt}", int(spec.buckets))
    op, value = spec.comparison
    if op == "lt":
        return bucket < int(value)
    if op == "gte":
        return bucket >= int(value)
    if op == "between":
        return bucket.between(int(value[0]), int(value[1]))
    return bucket.in_([int(v) for v in value])


def _stage_sql(node: InStage, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    negate, wanted = node.stage.wanted
    lifecycle = node.stage.lifecycle
    result = (
        _inline_stage(lifecycle, wanted, vocab, clock, inline)
        if inline is not None
        else member_of(
            sa.select(lifecycle_membership.c.customer_id).where(
                lifecycle_membership.c.run_date == clock.run_date,
                lifecycle_membership.c.lifecycle_id == lifecycle,
                lifecycle_membership.c.stage.in_(wanted),
            )
        )
    )
    return sa.not_(result) if negate else result


def _inline_stage(
    lifecycle: str, wanted: list[str], vocab: Vocabulary, clock: Clock, inline: Inline
) -> ColumnElement[bool]:
    """A lifecycle stage compiled in place: the first stage whose segment matches, else `otherwise`."""
    stages = inline.lifecycles[lifecycle]
    matched = [
        sa.and_(
            _inline(s, vocab, clock, inline),
            *(sa.not_(_inline(e, vocab, clock, inline)) for e in stages[:i]),
        )
        for i, s in enumerate(stages)
        if s in wanted
    ]
    if inline.otherwise.get(lifecycle) in wanted:
        matched.append(sa.and_(*(sa.not_(_inline(s, vocab, clock, inline)) for s in stages)))
    return sa.or_(*matched) if matched else sa.false()


def member_of(query: sa.Select[Any]) -> ColumnElement[bool]:
    """The customer is among the customer_ids `query` returns, spelled EXISTS over a derived table.

    Spelled as `IN (subquery)`, a negation becomes NOT IN, which PostgreSQL cannot turn into an
    anti-join: past work_mem it re-scans the subquery for every customer (hours at a million).
    EXISTS and NOT EXISTS plan as semi- and anti-joins on every engine.
    """
    found = query.subquery()
    return sa.exists().where(found.c.customer_id == customers.c.customer_id)


def _event_sql(node: EventCondition, vocab: Vocabulary, clock: Clock, inline: Inline | None) -> ColumnElement[bool]:
    ev = events_table(vocab.event_properties)
    source, clock = _events_with_zone(ev, clock)
    conds = _event_filter(ev, node, vocab, clock)
    # a customer has one zone: grouping by it too lets HAVING compare with the customer's bound
    grouping = [ev.c.customer_id] if clock.zone is None else [ev.c.customer_id, clock.zone]
    per_customer = sa.select(ev.c.customer_id).select_from(source).where(*conds).group_by(*grouping)
    kind, spec = node.measure
    if kind in ("first", "last"):
        side, when = spec.side
        moment = (sa.func.min if kind == "first" else sa.func.max)(ev.c.ts)
        if side == "between":
            low, high = (clock.moment(v, "datetime") for v in when)
            return member_of(per_customer.having(moment.between(low, high)))
        bound = clock.moment(when, "datetime")
        return member_of(per_customer.having(moment < bound if side == "before" else moment > bound))
    if kind in ("first_value", "last_value"):
        return _value_on(ev, source, conds, spec, kind == "first_value", vocab, clock)
    if kind in ("sum", "min", "max", "distinct"):
        op, value = spec.comparison
        column = ev.c[spec.name]
        if kind == "sum":
            return _aggregate(per_customer, sa.func.coalesce(sa.func.sum(column), 0), op, value)
        if kind == "distinct":
            return _aggregate(per_customer, sa.func.count(sa.distinct(column)), op, value)
        # min/max of no value is no value: such customers never match
        extreme = (sa.func.min if kind == "min" else sa.func.max)(column)
        return member_of(per_customer.having(sa.and_(extreme.is_not(None), _AGGREGATE_OPS[op](extreme, value))))
    op, value = spec.comparison if spec is not None else ("gte", 1)
    if (op == "gte" and value == 1) or (op == "gt" and value == 0):
        # "performed at least once": a plain semi-join, no grouping needed
        return member_of(sa.select(ev.c.customer_id).select_from(source).where(*conds))
    return _aggregate(per_customer, sa.func.count(), op, value)


def _events_with_zone(ev: sa.Table, clock: Clock) -> tuple[Any, Clock]:
    """With local windows, events joined to their customer's zone; else events alone."""
    if clock.local is None:
        return ev, clock
    zone_of = customers.alias("zone_of")
    return ev.join(zone_of, zone_of.c.customer_id == ev.c.customer_id), clock.at(zone_of.c.timezone)


def _event_filter(ev: sa.Table, node: EventCondition, vocab: Vocabulary, clock: Clock) -> list[ColumnElement[bool]]:
    """The events a condition is about: the name, the window, the `where` conditions."""
    conds: list[ColumnElement[bool]] = [ev.c.name == node.event]
    if node.within_last is not None:
        conds.append(ev.c.ts >= clock.moment(node.within_last, "datetime"))
    elif node.more_than_ago is not None:
        conds.append(ev.c.ts < clock.moment(node.more_than_ago, "datetime"))
    elif node.between is not None:
        low, high = (clock.moment(v, "datetime") for v in node.between)
        conds.append(ev.c.ts.between(low, high))
    for cond in node.conditions:
        op, raw = cond.operator
        conds.append(_condition(ev.c[cond.name], op, raw, vocab.event_properties[cond.name], clock))
    return conds


def property_conditions(
    ev: sa.Table, conditions: Sequence[PropertyCondition], vocab: Vocabulary | None, run_date: dt.date
) -> list[ColumnElement[bool]]:
    """A `where` list on events outside a segment (a campaign's conversion), with UTC windows."""
    known = vocab.event_properties if vocab is not None else {}
    out: list[ColumnElement[bool]] = []
    for cond in conditions:
        op, raw = cond.operator
        out.append(_condition(ev.c[cond.name], op, raw, known.get(cond.name, "string"), Clock(run_date)))
    return out


def _value_on(
    ev: sa.Table, source: Any, conds: list[ColumnElement[bool]], spec: Any, first: bool, vocab: Vocabulary, clock: Clock
) -> ColumnElement[bool]:
    """The property on each customer's first/last matching event (greatest value at a tied moment,
    a value before no value), compared as an attribute is: a customer without such an event never
    matches. One pass: the matching events numbered per customer by moment, then value; row 1 is
    the one. (A join of the events with their per-customer edge read them twice: 5 s at 1M.)"""
    kind = vocab.event_properties[spec.name]
    column: ColumnElement[Any] = ev.c[spec.name]
    moment = ev.c.ts.asc() if first else ev.c.ts.desc()
    rank = sa.func.row_number().over(
        partition_by=bytewise(ev.c.customer_id),
        order_by=[moment, column.is_(None).asc(), column.desc()],  # booleans: true is the greater
    )
    numbered = (
        sa.select(ev.c.customer_id, column.label("value"), rank.label("rank"))
        .select_from(source)
        .where(*conds)
        .subquery("value_on")
    )
    op, raw = spec.operator
    test = _condition(numbered.c.value, op, raw, kind, clock.at(customers.c.timezone))
    return sa.exists().where(numbered.c.customer_id == customers.c.customer_id, numbered.c.rank == 1, test)


_AGGREGATE_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda m, v: m == v,
    "gte": lambda m, v: m >= v,
    "lte": lambda m, v: m <= v,
    "gt": lambda m, v: m > v,
    "lt": lambda m, v: m < v,
    "between": lambda m, v: sa.and_(m >= v[0], m <= v[1]),
}


def _aggregate(per_customer: sa.Select[Any], measure: Any, op: str, value: Any) -> ColumnElement[bool]:
    """Customers whose aggregate satisfies op; those with no matching event count as 0."""
    low, high = value if op == "between" else (value, value)
    predicate = _AGGREGATE_OPS[op](measure, value)
    # Would a customer without any matching event (aggregate 0) pass?
    zero_passes = (
        low <= 0 <= high
        if op == "between"
        else bool({"eq": value == 0, "gte": value <= 0, "lte": value >= 0, "gt": value < 0, "lt": value > 0}[op])
    )
    if zero_passes:  # customers without the event pass too: exclude those who fail instead
        return sa.not_(member_of(per_customer.having(sa.not_(predicate))))
    return member_of(per_customer.having(predicate))


def _condition(col: sa.ColumnElement[Any], op: str, raw: Any, kind: str, clock: Clock) -> ColumnElement[bool]:
    """`col OP raw` as a two-valued predicate: a missing value satisfies only ne, not_in, is_null."""
    if op in RELATIVE:
        return _relative(col, op, raw, kind, clock)
    if op in ("before", "after", "on"):
        return _moment(col, op, raw, kind, clock)
    value = parse_operand(op, raw, kind)
    if kind in ("date", "datetime") and op not in ("exists", "is_null"):
        # durations in comparisons count back from the run date, like within_last
        value = [clock.moment(v, kind) for v in raw] if isinstance(raw, list) else clock.moment(raw, kind)
    present = col.is_not(None)
    if op in _ABSENT_PASSES:
        return sa.or_(col.is_(None), _ABSENT_PASSES[op](col, value))
    if op == "is_null":
        return col.is_(None)
    return sa.and_(present, _PRESENT_ONLY[op](col, value))


def _relative(col: sa.ColumnElement[Any], op: str, raw: Any, kind: str, clock: Clock) -> ColumnElement[bool]:
    bound = clock.moment(raw, kind)
    present = col.is_not(None)
    return sa.and_(present, col >= bound) if op == "within_last" else sa.and_(present, col < bound)


def _moment(col: sa.ColumnElement[Any], op: str, raw: Any, kind: str, clock: Clock) -> ColumnElement[bool]:
    present = col.is_not(None)
    if op == "before":
        return sa.and_(present, col < clock.moment(raw, kind))
    if op == "after":
        return sa.and_(present, col > clock.moment(raw, kind))
    day = parse_moment(raw, "date", clock.run_date)
    if kind == "date":
        return sa.and_(present, col == day)
    return sa.and_(present, col >= clock.moment(day, kind), col < clock.moment(day + dt.timedelta(days=1), kind))


Comparison = Callable[[sa.ColumnElement[Any], Any], ColumnElement[bool]]
# Operators a customer without a value satisfies (not gold, not in the list) ...
_ABSENT_PASSES: dict[str, Comparison] = {
    "ne": lambda col, v: col != v,
    "not_in": lambda col, v: col.not_in(v),
}
# ... and those that need a value.
_PRESENT_ONLY: dict[str, Comparison] = {
    "eq": lambda col, v: col == v,
    "gt": lambda col, v: col > v,
    "gte": lambda col, v: col >= v,
    "lt": lambda col, v: col < v,
    "lte": lambda col, v: col <= v,
    "in": lambda col, v: col.in_(v),
    "between": lambda col, v: col.between(v[0], v[1]),
    "exists": lambda col, v: sa.true(),
    "contains": lambda col, v: sa.func.lower(col).contains(v.lower(), autoescape=True),
    "starts_with": lambda col, v: sa.func.lower(col).startswith(v.lower(), autoescape=True),
}

# One compile function per kind of rule, keyed by its node class (in the order of NODE_CLASSES).
COMPILERS: dict[type[RuleNode], Compiler] = {
    AllOf: _all_sql,
    AnyOf: _any_sql,
    Not: _not_sql,
    InSegment: _segment_sql,
    AttributeCondition: _attribute_sql,
    EventCondition: _event_sql,
    InList: _in_list_sql,
    HasApp: _app_sql,
    InBucket: _bucket_sql,
    InStage: _stage_sql,
}
