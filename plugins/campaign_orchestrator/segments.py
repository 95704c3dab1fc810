"""Segment rules: a small tree language marketers write in YAML, compiled to parameter-bound SQL.

A rule is `all: [...]`, `any: [...]`, `not: {...}`, `segment: other_id`, or a condition on one
profile attribute: `{attribute: tier, in: [gold, platinum]}`. Attributes are checked against
the allow-list derived from the data contracts; values are always bound parameters, never SQL
text. Every condition compiles to a predicate that is TRUE or FALSE (never NULL), so `not`
means what a marketer expects: a customer without a tier is "not gold".
"""

from __future__ import annotations

import datetime as dt
import graphlib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from campaign_orchestrator.tables import customers, segment_membership

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte")
RELATIVE = ("within_last", "more_than_ago")
OPERATORS = (*COMPARISONS, "in", "not_in", "between", "exists", "is_null", "contains", "starts_with", *RELATIVE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
ORDERED_TYPES = {"int", "float", "date", "datetime", "string"}
TEXT_OPERATORS = {"contains", "starts_with"}


class RuleError(ValueError):
    pass


# ---------------------------------------------------------------- checking


def check_rule(rule: Any, attributes: Mapping[str, str] | None, segment_ids: set[str]) -> list[str]:
    """Problems in a rule as ('.path: reason') strings; empty when the rule compiles."""
    problems: list[str] = []
    _check(rule, "", attributes, segment_ids, problems)
    return problems


def _check(node: Any, path: str, attributes: Mapping[str, str] | None, segments: set[str], out: list[str]) -> None:
    if not isinstance(node, dict) or not node:
        out.append(f"{path}: a rule is a mapping such as all/any/not/segment or an attribute condition")
        return
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        if len(node) != 1:
            out.append(f"{path}: '{key}' stands alone; found also {sorted(set(node) - {key})}")
        children = node[key]
        if not isinstance(children, list) or not children:
            out.append(f"{path}.{key}: must be a non-empty list of rules")
            return
        for i, child in enumerate(children):
            _check(child, f"{path}.{key}[{i}]", attributes, segments, out)
        return
    if "not" in node:
        if len(node) != 1:
            out.append(f"{path}: 'not' stands alone; found also {sorted(set(node) - {'not'})}")
        _check(node["not"], f"{path}.not", attributes, segments, out)
        return
    if "segment" in node:
        if len(node) != 1:
            out.append(f"{path}: 'segment' stands alone")
        if node["segment"] not in segments:
            out.append(f"{path}.segment: unknown segment {node['segment']!r}")
        return
    if "attribute" not in node:
        out.append(f"{path}: unknown rule keys {sorted(node)}; expected all, any, not, segment or attribute")
        return
    name = node["attribute"]
    ops = [k for k in node if k != "attribute"]
    if len(ops) != 1 or ops[0] not in OPERATORS:
        out.append(f"{path}: an attribute condition takes exactly one operator of {list(OPERATORS)}; found {ops}")
        return
    op = ops[0]
    if attributes is not None and name not in attributes:
        out.append(f"{path}.attribute: unknown attribute {name!r}; allowed: {sorted(attributes)}")
        return
    kind = (attributes or {}).get(str(name), "string")
    try:
        _coerce_operand(op, node[op], kind)
    except RuleError as exc:
        out.append(f"{path}.{op}: {exc}")


def _coerce_value(value: Any, kind: str) -> Any:
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
    if kind == "date":
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise RuleError(f"expected a date YYYY-MM-DD, got {value!r}") from exc
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None)
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time())
        try:
            return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)
        except ValueError as exc:
            raise RuleError(f"expected a date-time, got {value!r}") from exc
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise RuleError(f"expected text, got {value!r}")
    return str(value)


def _coerce_operand(op: str, operand: Any, kind: str) -> Any:
    if op in ("exists", "is_null"):
        if operand is not True:
            raise RuleError(f"write '{op}: true'")
        return True
    if op in ("in", "not_in"):
        if not isinstance(operand, list) or not operand:
            raise RuleError("expected a non-empty list")
        return [_coerce_value(v, kind) for v in operand]
    if op == "between":
        if not isinstance(operand, list) or len(operand) != 2:
            raise RuleError("expected [low, high]")
        low, high = (_coerce_value(v, kind) for v in operand)
        if low > high:
            raise RuleError("low is greater than high")
        return [low, high]
    if op in RELATIVE:
        if kind not in ("date", "datetime"):
            raise RuleError(f"{op} works on date attributes, this one is {kind}")
        return parse_duration(operand)
    if op in TEXT_OPERATORS:
        if kind != "string":
            raise RuleError(f"{op} works on text attributes, this one is {kind}")
        if not isinstance(operand, str) or not operand:
            raise RuleError("expected non-empty text")
        return operand
    if op in ("gt", "gte", "lt", "lte") and kind not in ORDERED_TYPES:
        raise RuleError(f"{op} does not apply to {kind} attributes")
    return _coerce_value(operand, kind)


def parse_duration(value: Any) -> dt.timedelta:
    """'30d', '12h', '2w' (any whole number) as a timedelta."""
    text = str(value).strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise RuleError(f"expected a duration such as 30d, 12h or 2w, got {value!r}")
    return dt.timedelta(**{_UNITS[text[-1]]: int(text[:-1])})


# ---------------------------------------------------------------- compiling


def referenced_segments(rule: Any) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if "segment" in node:
            found.add(node["segment"])
        for key in ("all", "any"):
            for child in node.get(key) or []:
                walk(child)
        if "not" in node:
            walk(node["not"])

    walk(rule)
    return found


def evaluation_order(rules: Mapping[str, Any]) -> list[str]:
    """Segments ordered so that every referenced segment is computed first; refuses cycles."""
    sorter = graphlib.TopologicalSorter({sid: referenced_segments(rule) for sid, rule in rules.items()})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise RuleError(f"segments refer to each other in a cycle: {cycle}") from exc


def compile_rule(rule: Any, attributes: Mapping[str, str], run_date: dt.date) -> ColumnElement[bool]:
    """The rule as a two-valued predicate over `customers`; values become bound parameters."""
    if "all" in rule:
        return sa.and_(*(compile_rule(c, attributes, run_date) for c in rule["all"]))
    if "any" in rule:
        return sa.or_(*(compile_rule(c, attributes, run_date) for c in rule["any"]))
    if "not" in rule:
        return sa.not_(compile_rule(rule["not"], attributes, run_date))
    if "segment" in rule:
        members = sa.select(segment_membership.c.customer_id).where(
            segment_membership.c.run_date == run_date,
            segment_membership.c.segment_id == rule["segment"],
        )
        return customers.c.customer_id.in_(members)
    name = rule["attribute"]
    if name not in attributes or name not in customers.c:
        raise RuleError(f"unknown attribute {name!r}")
    op = next(k for k in rule if k != "attribute")
    value = _coerce_operand(op, rule[op], attributes[name])
    if op in RELATIVE:
        # Relative to the start of the run date (UTC), so a re-run of a date gives the same members.
        anchor = dt.datetime.combine(run_date, dt.time()) - value
        bound: Any = anchor.date() if attributes[name] == "date" else anchor
        return _condition(customers.c[name], "gte" if op == "within_last" else "lt", bound)
    return _condition(customers.c[name], op, value)


def _condition(col: sa.ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    present = col.is_not(None)
    match op:
        case "eq":
            return sa.and_(present, col == value)
        case "ne":
            return sa.or_(col.is_(None), col != value)
        case "gt":
            return sa.and_(present, col > value)
        case "gte":
            return sa.and_(present, col >= value)
        case "lt":
            return sa.and_(present, col < value)
        case "lte":
            return sa.and_(present, col <= value)
        case "in":
            return sa.and_(present, col.in_(value))
        case "not_in":
            return sa.or_(col.is_(None), col.not_in(value))
        case "between":
            return sa.and_(present, col.between(value[0], value[1]))
        case "exists":
            return present
        case "is_null":
            return col.is_(None)
        case "contains":
            return sa.and_(present, sa.func.lower(col).contains(value.lower(), autoescape=True))
        case "starts_with":
            return sa.and_(present, sa.func.lower(col).startswith(value.lower(), autoescape=True))
    raise RuleError(f"unknown operator {op!r}")


# ---------------------------------------------------------------- materialising


def compute_memberships(
    conn: Connection, rules: Mapping[str, Any], attributes: Mapping[str, str], run_date: dt.date
) -> dict[str, int]:
    """Replace the run date's memberships with fresh ones, set-based, in dependency order."""
    sizes: dict[str, int] = {}
    for segment_id in evaluation_order(rules):
        conn.execute(
            segment_membership.delete().where(
                segment_membership.c.run_date == run_date, segment_membership.c.segment_id == segment_id
            )
        )
        select = sa.select(sa.literal(run_date, sa.Date()), sa.literal(segment_id), customers.c.customer_id).where(
            compile_rule(rules[segment_id], attributes, run_date)
        )
        conn.execute(segment_membership.insert().from_select(["run_date", "segment_id", "customer_id"], select))
        sizes[segment_id] = segment_size(conn, segment_id, run_date)
    return sizes


def segment_size(conn: Connection, segment_id: str, run_date: dt.date) -> int:
    return int(
        conn.scalar(
            sa.select(sa.func.count()).where(
                segment_membership.c.run_date == run_date, segment_membership.c.segment_id == segment_id
            )
        )
        or 0
    )
