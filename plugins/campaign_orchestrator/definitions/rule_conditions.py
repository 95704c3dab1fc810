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


class Sum(CountOps):
    """`sum: {property: amount, gt: 500}`: the total of a numeric property over matching events."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})
    name: Name = Field(alias="property")  # `property` would shadow the decorator

    @property
    def comparison(self) -> tuple[str, Any]:
        return self.given("property")[0]


class Last(RuleNode):
    """`last: {before: 30d}`: when the customer last performed the event."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    before: Name = None
    after: Name = None

    @property
    def side(self) -> tuple[str, Any]:
        return self.given()[0]


EVENT_KEYS = {"event", "count", "within_last", "more_than_ago", "between", "where", "sum", "last"}


class EventCondition(RuleNode):
    """Performed an event at least/at most/exactly N times in a window, with property conditions;
    or a sum of a property; or when it was last performed."""

    keyword: ClassVar[str] = "event"
    single_key: ClassVar[bool] = False
    event: Id
    count: Count | None = None
    within_last: Duration = None
    more_than_ago: Duration = None
    between: Annotated[Any, WithJsonSchema({"type": "array", "minItems": 2, "maxItems": 2})] = None
    where: list[PropertyCondition] | PropertyCondition | None = None
    sum: Sum | None = None
    last: Last | None = None

    @property
    def conditions(self) -> list[PropertyCondition]:
        if self.where is None:
            return []
        return self.where if isinstance(self.where, list) else [self.where]

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        extra = set(raw) - EVENT_KEYS
        if extra:
            out.append(f"{path}: an event condition does not take {sorted(str(e)[:40] for e in extra)}")
        name = raw["event"]
        if not isinstance(name, str) or not ID_RE.match(name):
            out.append(f"{path}.event: an event name is lower-case letters, digits and _ (got {shown(name)})")
        _check_window(raw, path, out)
        _check_measure(raw, path, vocab, out)
        where = raw.get("where", [])
        for i, cond in enumerate(where if isinstance(where, list) else [where]):
            _check_property(cond, f"{path}.where[{i}]", vocab, out)


def _check_window(raw: dict[str, Any], path: str, out: list[str]) -> None:
    windows = [k for k in ("within_last", "more_than_ago", "between") if k in raw]
    if len(windows) > 1:
        out.append(f"{path}: use one window of within_last, more_than_ago, between")
    for key in windows:
        try:
            parse_operand(key, raw[key], "datetime")
        except RuleError as exc:
            out.append(f"{path}.{key}: {exc}")


def _check_measure(raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str]) -> None:
    """count, sum or last: what about the customer's matching events the condition is on."""
    if "last" in raw and ("count" in raw or "sum" in raw):
        out.append(f"{path}: 'last' cannot be combined with count or sum")
    if "count" in raw:
        _check_aggregate(raw["count"], f"{path}.count", out)
    if "sum" in raw:
        spec = raw["sum"]
        if not isinstance(spec, dict) or "property" not in spec:
            out.append(f"{path}.sum: expected {{property: NAME, OP: NUMBER}}")
        else:
            if spec["property"] not in vocab.event_properties:
                out.append(f"{path}.sum.property: unknown event property {shown(spec['property'])}")
            _check_aggregate({k: v for k, v in spec.items() if k != "property"}, f"{path}.sum", out)
    if "last" in raw:
        spec = raw["last"]
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("before", "after"):
            out.append(f"{path}.last: expected {{before: WHEN}} or {{after: WHEN}}")
            return
        try:
            parse_moment(next(iter(spec.values())), "datetime", None)
        except RuleError as exc:
            out.append(f"{path}.last: {exc}")


def _check_property(cond: Any, path: str, vocab: Vocabulary, out: list[str]) -> None:
    if not isinstance(cond, dict) or "property" not in cond:
        out.append(f"{path}: expected {{property: NAME, OP: VALUE}}")
        return
    prop = cond["property"]
    ops = [k for k in cond if k != "property"]
    if not isinstance(prop, str) or prop not in vocab.event_properties:
        out.append(f"{path}.property: unknown event property {shown(prop)}; allowed: {sorted(vocab.event_properties)}")
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
