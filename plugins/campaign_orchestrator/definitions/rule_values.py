"""The values a segment rule may hold, parsed and checked against the column's type: durations
(30d, 12h, 2w), dates and date-times (offsets converted to UTC), lists, ranges and text. Every
value a rule compiles to is one of these, bound as a parameter, never SQL text. Also the base of
the rule language's typed nodes (`RuleNode`), which the node modules share."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from campaign_orchestrator.errors import CampaignError, InvalidInput

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte")


RELATIVE = ("within_last", "more_than_ago")


DATE_OPS = ("before", "after", "on", *RELATIVE)


OPERATORS = (*COMPARISONS, "in", "not_in", "between", "exists", "is_null", "contains", "starts_with", *DATE_OPS)


COUNT_OPS = ("eq", "gte", "lte", "gt", "lt", "between")


TEXT_OPERATORS = {"contains", "starts_with"}


ORDERED_TYPES = {"int", "float", "date", "datetime", "string"}


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
    property_events: Mapping[str, frozenset[str]] = field(default_factory=dict)  # declared for these only
    segments: frozenset[str] = frozenset()
    lifecycles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lists: frozenset[str] | None = None


class RuleNode(BaseModel):
    """One kind of rule, declared once: its fields are the YAML shape (and the published JSON
    Schema), `check` finds problems in a raw mapping with the wording users see, `children` and
    `needs` give the structure dependency order walks; segments.compile has one function per kind.

    Nodes are built only from mappings `check` passed, so a node is always a compilable rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)
    keyword: ClassVar[str]  # the key that says which kind of rule a mapping is
    single_key: ClassVar[bool] = True  # nothing beside the keyword (attribute/event take more)

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        """Append '.path: reason' problems of a mapping of this kind to `out`."""
        raise NotImplementedError

    def children(self) -> tuple[RuleNode, ...]:
        """The rules inside this one."""
        return ()

    def needs(self) -> set[str]:
        """What must be computed before this rule: 'segment:ID', 'lifecycle:ID'."""
        return set()

    def given(self, *exclude: str) -> list[tuple[str, Any]]:
        """The (YAML key, value) pairs the rule set, beside `exclude`, in declaration order."""
        fields = type(self).model_fields
        return [
            (info.alias or name, getattr(self, name))
            for name, info in fields.items()
            if name in self.model_fields_set and (info.alias or name) not in exclude
        ]


def shown(value: Any) -> str:
    """A value as a problem quotes it: repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def is_duration(value: Any) -> bool:
    """Whether a rule value is a duration (30d, 12h, 2w) rather than a moment."""
    return isinstance(value, str) and bool(_DURATION.match(value.strip().lower()))


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
    """An operator's value, checked against the column's type; RuleError says what is wrong."""
    for ops, parse in _OPERANDS:
        if op in ops:
            return parse(op, operand, kind)
    if op in ("gt", "gte", "lt", "lte") and kind not in ORDERED_TYPES:
        raise RuleError(f"{op} does not apply to {kind} attributes")
    return parse_value(operand, kind)


def _flag(op: str, operand: Any, kind: str) -> Any:
    if operand is not True:
        raise RuleError(f"write '{op}: true'")
    return True


def _members(op: str, operand: Any, kind: str) -> Any:
    if not isinstance(operand, list) or not operand:
        raise RuleError("expected a non-empty list")
    if len(operand) > 10_000:
        raise RuleError("more than 10,000 values: use a static list instead")
    return [parse_value(v, kind) for v in operand]


def _range(op: str, operand: Any, kind: str) -> Any:
    if not isinstance(operand, list) or len(operand) != 2:
        raise RuleError("expected [low, high]")
    low, high = (parse_value(v, kind) for v in operand)
    if type(low) is type(high) and not isinstance(low, dt.timedelta) and low > high:
        raise RuleError("low is greater than high")
    return [low, high]


def _when(op: str, operand: Any, kind: str) -> Any:
    if kind not in ("date", "datetime"):
        raise RuleError(f"{op} works on date attributes, this one is {kind}")
    return parse_duration(operand) if op in RELATIVE else parse_moment(operand, kind, None)


def _text(op: str, operand: Any, kind: str) -> Any:
    if kind != "string":
        raise RuleError(f"{op} works on text attributes, this one is {kind}")
    if not isinstance(operand, str) or not operand:
        raise RuleError("expected non-empty text")
    return parse_value(operand, kind)


_OPERANDS: tuple[tuple[Sequence[str], Callable[[str, Any, str], Any]], ...] = (
    (("exists", "is_null"), _flag),
    (("in", "not_in"), _members),
    (("between",), _range),
    (DATE_OPS, _when),
    (tuple(TEXT_OPERATORS), _text),
)
