"""The two rules that test values: a profile attribute (`{attribute: tier, eq: gold}`) and an event
(`{event: purchase, count: {gte: 2}, within_last: 90d, where: [...]}`), with the operand shapes
they share. Each is declared once as a typed node: its fields are the YAML shape and the JSON
Schema editors use; its `check` gives the problems `campaigns validate` prints.

Invariant: a condition names only attributes and event properties the data contracts declare,
and every value it holds is checked against that column's type before it can become a bound
parameter.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, WithJsonSchema

from campaign_orchestrator.definitions.base import ID_PATTERN, ID_RE
from campaign_orchestrator.definitions.rule_values import (
    COUNT_OPS,
    OPERATORS,
    RuleError,
    RuleNode,
    Vocabulary,
    parse_moment,
    parse_operand,
    shown,
)

SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": "^[0-9]{1,5}[hdw]$",
    "description": "30d, 12h, 2w: back from the run date",
}
NUMBER: dict[str, Any] = {"type": "number", "minimum": 0}

# Leaf values stay as written (the checks parse them against the column's type); the annotation
# gives editors their shape.
Scalar = Annotated[Any, WithJsonSchema(SCALAR)]
Values = Annotated[Any, WithJsonSchema({"type": "array", "items": SCALAR, "minItems": 1})]
Range = Annotated[Any, WithJsonSchema({"type": "array", "items": SCALAR, "minItems": 2, "maxItems": 2})]
Flag = Annotated[Any, WithJsonSchema({"const": True})]
Duration = Annotated[Any, WithJsonSchema(DURATION)]
Number = Annotated[Any, WithJsonSchema(NUMBER)]
NumberRange = Annotated[Any, WithJsonSchema({"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2})]
Name = Annotated[Any, WithJsonSchema({"type": "string"})]
Id = Annotated[Any, WithJsonSchema({"type": "string", "pattern": ID_PATTERN})]


class Operators(RuleNode):
    """One comparison of a value (the field order is the order of `OPERATORS`)."""

    eq: Scalar = None
    ne: Scalar = None
    gt: Scalar = None
    gte: Scalar = None
    lt: Scalar = None
    lte: Scalar = None
    in_: Values = Field(None, alias="in")
    not_in: Values = None
    between: Range = None
    exists: Flag = None
    is_null: Flag = None
    contains: Scalar = None
    starts_with: Scalar = None
    before: Scalar = None
    after: Scalar = None
    on: Scalar = None
    within_last: Duration = None
    more_than_ago: Duration = None


class AttributeCondition(Operators):
    """`{attribute: NAME, OP: VALUE}` on a profile column the customers contract declares."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})
    keyword: ClassVar[str] = "attribute"
    single_key: ClassVar[bool] = False
    attribute: Name

    @property
    def operator(self) -> tuple[str, Any]:
        return self.given("attribute")[0]

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        name = raw["attribute"]
        ops = [k for k in raw if k != "attribute"]
        if len(ops) != 1 or ops[0] not in OPERATORS:
            found = [str(o)[:40] for o in ops]
            out.append(f"{path}: an attribute condition takes exactly one operator of {list(OPERATORS)}; found {found}")
            return
        if not isinstance(name, str) or name not in vocab.attributes:
            out.append(f"{path}.attribute: unknown attribute {shown(name)}; allowed: {sorted(vocab.attributes)}")
            return
        try:
            parse_operand(ops[0], raw[ops[0]], vocab.attributes[name])
        except RuleError as exc:
            out.append(f"{path}.{ops[0]}: {exc}")


class PropertyCondition(Operators):
    """`{property: NAME, OP: VALUE}` inside an event's `where`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})
    name: Name = Field(alias="property")  # `property` would shadow the decorator

    @property
    def operator(self) -> tuple[str, Any]:
        return self.given("property")[0]


class CountOps(RuleNode):
    """One comparison of a number of events or a sum of a property."""

    eq: Number = None
    gte: Number = None
    lte: Number = None
    gt: Number = None
    lt: Number = None
    between: NumberRange = None


class Count(CountOps):
    """`count: {gte: 2}`: how many matching events."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    @property
    def comparison(self) -> tuple[str, Any]:
        return self.given()[0]


class Aggregate(CountOps):
    """`sum|min|max|distinct: {property: amount, gt: 500}`: the total, smallest or largest value of a
    numeric property over the matching events, or how many distinct values it takes."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})
    name: Name = Field(alias="property")  # `property` would shadow the decorator

    @property
    def comparison(self) -> tuple[str, Any]:
        return self.given("property")[0]


class When(RuleNode):
    """`first|last: {before: 30d}`, `{after: 2026-01-01}` or `{between: [A, B]}`: when the customer
    first or last performed the event."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    before: Name = None
    after: Name = None
    between: Annotated[
        Any, WithJsonSchema({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2})
    ] = None

    @property
    def side(self) -> tuple[str, Any]:
        return self.given()[0]


class ValueOn(Operators):
    """`first_value|last_value: {property: amount, gt: 500}`: the property on the customer's first or
    last matching event (several events at that moment: the greatest value)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})
    name: Name = Field(alias="property")

    @property
    def operator(self) -> tuple[str, Any]:
        return self.given("property")[0]


AGGREGATES = ("sum", "min", "max", "distinct")
MOMENTS = ("first", "last")
VALUES_ON = ("first_value", "last_value")
MEASURES = ("count", *AGGREGATES, *MOMENTS, *VALUES_ON)
WINDOWS = ("within_last", "more_than_ago", "between")
EVENT_KEYS = {"event", "where", *WINDOWS, *MEASURES}
NUMERIC = ("int", "float")


class EventCondition(RuleNode):
    """Performed an event at least/at most/exactly N times in a window, with property conditions;
    or an aggregate of a property; or when it was first or last performed, or a property's value
    on that event. One measure per condition (none: performed at least once)."""

    keyword: ClassVar[str] = "event"
    single_key: ClassVar[bool] = False
    event: Id
    count: Count | None = None
    within_last: Duration = None
    more_than_ago: Duration = None
    between: Annotated[Any, WithJsonSchema({"type": "array", "minItems": 2, "maxItems": 2})] = None
    where: list[PropertyCondition] | PropertyCondition | None = None
    sum: Aggregate | None = None
    min: Aggregate | None = None
    max: Aggregate | None = None
    distinct: Aggregate | None = None
    first: When | None = None
    last: When | None = None
    first_value: ValueOn | None = None
    last_value: ValueOn | None = None

    @property
    def conditions(self) -> list[PropertyCondition]:
        if self.where is None:
            return []
        return self.where if isinstance(self.where, list) else [self.where]

    @property
    def measure(self) -> tuple[str, Any]:
        """(which measure, its spec); ('count', None) when the rule names none."""
        given = [(key, value) for key, value in self.given() if key in MEASURES]
        return given[0] if given else ("count", None)

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        extra = set(raw) - EVENT_KEYS
        if extra:
            out.append(f"{path}: an event condition does not take {sorted(str(e)[:40] for e in extra)}")
        name = raw["event"]
        if not isinstance(name, str) or not ID_RE.match(name):
            out.append(f"{path}.event: an event name is lower-case letters, digits and _ (got {shown(name)})")
            name = None
        _check_window(raw, path, out)
        _check_measure(raw, path, vocab, out, name)
        where = raw.get("where", [])
        for i, cond in enumerate(where if isinstance(where, list) else [where]):
            _check_property(cond, f"{path}.where[{i}]", vocab, out, name)


def _check_window(raw: dict[str, Any], path: str, out: list[str]) -> None:
    windows = [k for k in WINDOWS if k in raw]
    if len(windows) > 1:
        out.append(f"{path}: use one window of within_last, more_than_ago, between")
    for key in windows:
        try:
            parse_operand(key, raw[key], "datetime")
        except RuleError as exc:
            out.append(f"{path}.{key}: {exc}")


def _check_measure(raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], event: str | None) -> None:
    """count, an aggregate, first/last or a value on them: what the condition is on."""
    given = [k for k in MEASURES if k in raw]
    if "last" in given and ("count" in given or "sum" in given):
        out.append(f"{path}: 'last' cannot be combined with count or sum")
    elif len(given) > 1:
        out.append(f"{path}: use one of {list(MEASURES)}, found {given}")
    if "count" in raw:
        _check_aggregate(raw["count"], f"{path}.count", out)
    for key in AGGREGATES:
        if key in raw:
            _check_property_aggregate(raw[key], f"{path}.{key}", key, vocab, out, event)
    for key in MOMENTS:
        if key in raw:
            _check_moment(raw[key], f"{path}.{key}", out)
    for key in VALUES_ON:
        if key in raw:
            _check_property(raw[key], f"{path}.{key}", vocab, out, event)


def _check_property_aggregate(
    spec: Any, path: str, key: str, vocab: Vocabulary, out: list[str], event: str | None
) -> None:
    if not isinstance(spec, dict) or "property" not in spec:
        out.append(f"{path}: expected {{property: NAME, OP: NUMBER}}")
        return
    if _known_property(spec["property"], path, vocab, out, event):
        kind = vocab.event_properties[spec["property"]]
        if key != "distinct" and kind not in NUMERIC:
            out.append(f"{path}.property: {key} works on numeric properties, {spec['property']!r} is {kind}")
    _check_aggregate({k: v for k, v in spec.items() if k != "property"}, path, out)


def _check_moment(spec: Any, path: str, out: list[str]) -> None:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("before", "after", "between"):
        out.append(f"{path}: expected {{before: WHEN}}, {{after: WHEN}} or {{between: [FROM, TO]}}")
        return
    ((side, when),) = spec.items()
    try:
        if side == "between":
            parse_operand("between", when, "datetime")
        else:
            parse_moment(when, "datetime", None)
    except RuleError as exc:
        out.append(f"{path}: {exc}")


def _known_property(prop: Any, path: str, vocab: Vocabulary, out: list[str], event: str | None) -> bool:
    """The property is declared, and declared for this event when the contract restricts it."""
    if not isinstance(prop, str) or prop not in vocab.event_properties:
        out.append(f"{path}.property: unknown event property {shown(prop)}; allowed: {sorted(vocab.event_properties)}")
        return False
    carriers = vocab.property_events.get(prop)
    if carriers and event is not None and event not in carriers:
        out.append(f"{path}.property: {prop!r} is declared for events {sorted(carriers)}, not {event!r}")
        return False
    return True


def _check_property(cond: Any, path: str, vocab: Vocabulary, out: list[str], event: str | None = None) -> None:
    if not isinstance(cond, dict) or "property" not in cond:
        out.append(f"{path}: expected {{property: NAME, OP: VALUE}}")
        return
    prop = cond["property"]
    ops = [k for k in cond if k != "property"]
    if not _known_property(prop, path, vocab, out, event):
        return
    if len(ops) != 1 or ops[0] not in OPERATORS:
        out.append(f"{path}: exactly one operator of {list(OPERATORS)}")
        return
    try:
        parse_operand(ops[0], cond[ops[0]], vocab.event_properties[prop])
    except RuleError as exc:
        out.append(f"{path}.{ops[0]}: {exc}")


def _check_aggregate(spec: Any, path: str, out: list[str]) -> None:
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
            out.append(f"{path}.{op}: expected a number of at least 0, got {shown(v)}")
