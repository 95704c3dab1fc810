"""The kinds of rule, each declared once as a typed node keyed by its keyword: `all`, `any`, `not`,
`segment`, `attribute`, `event`, `in_list`, `app`, `bucket`, `stage`. The `Rule` union picks the
node by the one keyword a mapping holds; checking, dependency order, compilation and the
published JSON Schema all start from these classes.

Invariant: `parse_rule` builds nodes only from a mapping `check_node` found no problem in, so
every node the compiler receives is a rule it can compile.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, WithJsonSchema

from campaign_orchestrator.definitions.base import ID_PATTERN, ID_RE
from campaign_orchestrator.definitions.rule_conditions import AttributeCondition, EventCondition, Id
from campaign_orchestrator.definitions.rule_values import RuleError, RuleNode, Vocabulary, parse_value, shown

PLATFORMS = ("ios", "android", "web")
Platform = Literal["ios", "android", "web"]
MAX_DEPTH = 20  # all/any/not levels in one rule


class AllOf(RuleNode):
    """`all: [rules]`: every one holds."""

    keyword: ClassVar[str] = "all"
    all: list[Rule] = Field(min_length=1)

    def children(self) -> tuple[RuleNode, ...]:
        return tuple(self.all)

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        _check_children(raw, cls.keyword, path, vocab, out, depth)


class AnyOf(RuleNode):
    """`any: [rules]`: at least one holds."""

    keyword: ClassVar[str] = "any"
    any: list[Rule] = Field(min_length=1)

    def children(self) -> tuple[RuleNode, ...]:
        return tuple(self.any)

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        _check_children(raw, cls.keyword, path, vocab, out, depth)


def _check_children(raw: dict[str, Any], key: str, path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    children = raw[key]
    if not isinstance(children, list) or not children:
        out.append(f"{path}.{key}: must be a non-empty list of rules")
        return
    for i, child in enumerate(children):
        check_node(child, f"{path}.{key}[{i}]", vocab, out, depth + 1)


class Not(RuleNode):
    """`not: rule`: the rule does not hold (a customer without a value is 'not gold')."""

    keyword: ClassVar[str] = "not"
    not_: Rule = Field(alias="not")

    def children(self) -> tuple[RuleNode, ...]:
        return (self.not_,)

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        check_node(raw["not"], f"{path}.not", vocab, out, depth + 1)


class InSegment(RuleNode):
    """`segment: ID`: a member of another segment on the same run date."""

    keyword: ClassVar[str] = "segment"
    segment: Id

    def needs(self) -> set[str]:
        return {f"segment:{self.segment}"}

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        if not isinstance(raw["segment"], str) or raw["segment"] not in vocab.segments:
            out.append(f"{path}.segment: unknown segment {shown(raw['segment'])}")


class InList(RuleNode):
    """`in_list: ID`: on a static list declared in sources.yaml."""

    keyword: ClassVar[str] = "in_list"
    in_list: Id

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        if not isinstance(raw["in_list"], str) or not ID_RE.match(raw["in_list"]):
            out.append(f"{path}.in_list: a list id is lower-case letters, digits and _")
        elif vocab.lists is not None and raw["in_list"] not in vocab.lists:
            out.append(f"{path}.in_list: unknown list {shown(raw['in_list'])} (declare it in sources.yaml)")


class AppSpec(RuleNode):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    platform: Platform | list[Platform] | None = None
    push_token: bool | None = None
    app_id: Annotated[Any, WithJsonSchema({"type": "string"})] = None

    @property
    def platforms(self) -> list[str] | None:
        if self.platform is None:
            return None
        return list(self.platform) if isinstance(self.platform, list) else [self.platform]


class HasApp(RuleNode):
    """`app: {platform: [ios], push_token: true, app_id: ID}`: has an install like this."""

    keyword: ClassVar[str] = "app"
    app: AppSpec

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        spec, path = raw["app"], f"{path}.app"
        if not isinstance(spec, dict) or not spec or set(spec) - {"platform", "push_token", "app_id"}:
            out.append(f"{path}: expected any of platform, push_token, app_id")
            return
        platforms = spec.get("platform", [])
        for p in platforms if isinstance(platforms, list) else [platforms]:
            if p not in PLATFORMS:
                out.append(f"{path}.platform: unknown platform {shown(p)}; one of {list(PLATFORMS)}")
        if "push_token" in spec and not isinstance(spec["push_token"], bool):
            out.append(f"{path}.push_token: expected true or false")
        if "app_id" in spec:
            try:
                if len(parse_value(spec["app_id"], "string")) > 128:
                    raise RuleError("longer than 128 characters")
            except RuleError as exc:
                out.append(f"{path}.app_id: expected an app id ({exc})")


Bucket = Annotated[Any, WithJsonSchema({"type": "integer"})]


class BucketSpec(RuleNode):
    salt: Annotated[str, WithJsonSchema({"type": "string", "minLength": 1})]
    buckets: Annotated[int, WithJsonSchema({"type": "integer", "minimum": 2})] = 100
    lt: Bucket = None
    gte: Bucket = None
    in_: Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "integer"}})] = Field(None, alias="in")
    between: Annotated[
        Any, WithJsonSchema({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2})
    ] = None

    @property
    def comparison(self) -> tuple[str, Any]:
        return self.given("salt", "buckets")[0]


class InBucket(RuleNode):
    """`bucket: {salt: TEXT, buckets: 100, lt: 10}`: a stable hash of customer and salt."""

    keyword: ClassVar[str] = "bucket"
    bucket: BucketSpec

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        spec, path = raw["bucket"], f"{path}.bucket"
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
            return
        value = spec[ops[0]]
        if ops[0] in ("lt", "gte"):
            value = [value]
        elif not isinstance(value, list) or not value or (ops[0] == "between" and len(value) != 2):
            out.append(f"{path}.{ops[0]}: expected {'[low, high]' if ops[0] == 'between' else 'a list of buckets'}")
            return
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
            out.append(f"{path}.{ops[0]}: buckets are whole numbers from 0, got {shown(spec[ops[0]])}")


Stages = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": ID_PATTERN},
                {"type": "array", "items": {"type": "string", "pattern": ID_PATTERN}},
            ]
        }
    ),
]


class StageSpec(RuleNode):
    lifecycle: Id
    in_: Stages = Field(None, alias="in")
    not_in: Stages = None
    eq: Stages = None
    ne: Stages = None

    @property
    def wanted(self) -> tuple[bool, list[str]]:
        """(negated, the stages named)."""
        op, value = self.given("lifecycle")[0]
        return op in ("not_in", "ne"), value if isinstance(value, list) else [value]


class InStage(RuleNode):
    """`stage: {lifecycle: ID, in: [stages]}`: the customer's lifecycle stage that run date."""

    keyword: ClassVar[str] = "stage"
    stage: StageSpec

    def needs(self) -> set[str]:
        return {f"lifecycle:{self.stage.lifecycle}"}

    @classmethod
    def check(cls, raw: dict[str, Any], path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
        spec, path = raw["stage"], f"{path}.stage"
        if not isinstance(spec, dict) or "lifecycle" not in spec:
            out.append(f"{path}: expected {{lifecycle: ID, in: [stages]}}")
            return
        stages = vocab.lifecycles.get(spec["lifecycle"]) if isinstance(spec["lifecycle"], str) else None
        if stages is None:
            out.append(f"{path}.lifecycle: unknown lifecycle {shown(spec['lifecycle'])}")
            return
        ops = [k for k in spec if k != "lifecycle"]
        if len(ops) != 1 or ops[0] not in ("in", "not_in", "eq", "ne"):
            out.append(f"{path}: one of in, not_in, eq, ne")
            return
        wanted = spec[ops[0]] if isinstance(spec[ops[0]], list) else [spec[ops[0]]]
        for stage in wanted:
            if not isinstance(stage, str) or stage not in stages:
                out.append(
                    f"{path}.{ops[0]}: unknown stage {shown(stage)} of {spec['lifecycle']}; stages: {list(stages)}"
                )


# The kinds, in the order problems name them; a mapping is the kind whose keyword it holds.
NODE_CLASSES: tuple[type[RuleNode], ...] = (
    AllOf,
    AnyOf,
    Not,
    InSegment,
    AttributeCondition,
    EventCondition,
    InList,
    HasApp,
    InBucket,
    InStage,
)
NODES: dict[str, type[RuleNode]] = {cls.keyword: cls for cls in NODE_CLASSES}
NODE_KEYS = tuple(NODES)


def keyword_of(value: Any) -> str | None:
    """The node kind a mapping (or node) is: its one keyword, or None when it has none or several."""
    if isinstance(value, RuleNode):
        return value.keyword
    if not isinstance(value, dict):
        return None
    kinds = [k for k in NODE_KEYS if k in value]
    return kinds[0] if len(kinds) == 1 else None


Rule = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")]
    | Annotated[InSegment, Tag("segment")]
    | Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[InList, Tag("in_list")]
    | Annotated[HasApp, Tag("app")]
    | Annotated[InBucket, Tag("bucket")]
    | Annotated[InStage, Tag("stage")],
    Discriminator(keyword_of),
]
for _cls in (AllOf, AnyOf, Not):
    _cls.model_rebuild()
RULE = TypeAdapter[RuleNode](Rule)


def check_node(raw: Any, path: str, vocab: Vocabulary, out: list[str], depth: int) -> None:
    """Check one mapping: the shape every rule shares here, its kind's own rules in its `check`."""
    if depth > MAX_DEPTH:
        out.append(f"{path}: nested more than {MAX_DEPTH} levels deep")
        return
    if not isinstance(raw, dict) or not raw:
        out.append(f"{path}: a rule is a mapping with one of {list(NODE_KEYS)}")
        return
    kinds = [k for k in NODE_KEYS if k in raw]
    if len(kinds) != 1:
        found = kinds or sorted(str(k)[:40] for k in raw)
        out.append(f"{path}: expected exactly one of {list(NODE_KEYS)}, found {found}")
        return
    node = NODES[kinds[0]]
    if node.single_key and len(raw) > 1:
        out.append(f"{path}: '{node.keyword}' does not take {sorted(set(raw) - {node.keyword})}")
    try:
        node.check(raw, path, vocab, out, depth)
    except RuleError as exc:
        out.append(f"{path}: {exc}")


def parse_rule(raw: Any) -> RuleNode:
    """The typed node of a mapping `check_node` passed (RuleError if it was never checked)."""
    if isinstance(raw, RuleNode):
        return raw
    try:
        return RULE.validate_python(raw)
    except ValidationError as exc:
        raise RuleError(f"not a rule: {exc.errors()[0]['msg']}") from exc
