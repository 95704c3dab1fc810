"""JSON Schemas for the files in `marketing/`, so editors can complete and check them as you type.

Campaigns, templates, settings and lifecycles come from their pydantic models; the segment rule
language is recursive and written out here. `make schema` writes them to `marketing/schema/`;
a test keeps the files in sync and validates every definition in the repository against them.
Load-time checks (`campaigns validate`) go further: known attributes, references, durations.
"""

from __future__ import annotations

from typing import Any

from campaign_orchestrator.definitions.base import ID_PATTERN
from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.deep_links import RegistryFile
from campaign_orchestrator.definitions.loader import Lifecycle
from campaign_orchestrator.definitions.rule_values import COUNT_OPS, OPERATORS
from campaign_orchestrator.definitions.rules import PLATFORMS
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.definitions.templates import EmailContent, InAppContent, PushContent, Template

ID = {"type": "string", "pattern": ID_PATTERN}
SCALAR = {"type": ["string", "number", "boolean"]}
DURATION = {"type": "string", "pattern": "^[0-9]{1,5}[hdw]$", "description": "30d, 12h, 2w: back from the run date"}


def _one_of_keys(keys: list[str], value: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "object", "required": [k], "properties": {k: value}, "additionalProperties": False} for k in keys]


def _count() -> dict[str, Any]:
    number = {"type": "number", "minimum": 0}
    options = _one_of_keys([op for op in COUNT_OPS if op != "between"], number)
    options += _one_of_keys(["between"], {"type": "array", "items": number, "minItems": 2, "maxItems": 2})
    return {"oneOf": options}


def rule_schema() -> dict[str, Any]:
    rule = {"$ref": "#/$defs/rule"}
    attribute_ops: dict[str, dict[str, Any]] = {op: {} for op in OPERATORS}
    attribute_ops.update(
        {
            "in": {"type": "array", "items": SCALAR, "minItems": 1},
            "not_in": {"type": "array", "items": SCALAR, "minItems": 1},
            "between": {"type": "array", "items": SCALAR, "minItems": 2, "maxItems": 2},
            "exists": {"const": True},
            "is_null": {"const": True},
            "within_last": DURATION,
            "more_than_ago": DURATION,
        }
    )
    attribute = {
        "type": "object",
        "required": ["attribute"],
        "properties": {
            "attribute": {"type": "string"},
            **{op: attribute_ops.get(op, SCALAR) or SCALAR for op in OPERATORS},
        },
        "additionalProperties": False,
        "minProperties": 2,
        "maxProperties": 2,
    }
    property_condition = {
        "type": "object",
        "required": ["property"],
        "properties": {"property": {"type": "string"}, **{op: {} for op in OPERATORS}},
        "additionalProperties": False,
    }
    event = {
        "type": "object",
        "required": ["event"],
        "properties": {
            "event": ID,
            "count": _count(),
            "within_last": DURATION,
            "more_than_ago": DURATION,
            "between": {"type": "array", "minItems": 2, "maxItems": 2},
            "where": {"type": "array", "items": property_condition},
            "sum": {"type": "object", "required": ["property"]},
            "last": {"oneOf": _one_of_keys(["before", "after"], {"type": "string"})},
        },
        "additionalProperties": False,
    }
    single = {
        "all": {"type": "array", "items": rule, "minItems": 1},
        "any": {"type": "array", "items": rule, "minItems": 1},
        "not": rule,
        "segment": ID,
        "in_list": ID,
        "app": {
            "type": "object",
            "properties": {
                "platform": {
                    "oneOf": [{"enum": list(PLATFORMS)}, {"type": "array", "items": {"enum": list(PLATFORMS)}}]
                },
                "push_token": {"type": "boolean"},
                "app_id": {"type": "string"},
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
        "bucket": {
            "type": "object",
            "required": ["salt"],
            "properties": {
                "salt": {"type": "string", "minLength": 1},
                "buckets": {"type": "integer", "minimum": 2},
                "lt": {"type": "integer"},
                "gte": {"type": "integer"},
                "in": {"type": "array", "items": {"type": "integer"}},
                "between": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            },
            "additionalProperties": False,
        },
        "stage": {
            "type": "object",
            "required": ["lifecycle"],
            "properties": {
                "lifecycle": ID,
                "in": {"type": "array", "items": ID},
                "not_in": {"type": "array", "items": ID},
                "eq": ID,
                "ne": ID,
            },
            "additionalProperties": False,
        },
    }
    options = [
        {"type": "object", "required": [k], "properties": {k: v}, "additionalProperties": False}
        for k, v in single.items()
    ]
    return {"oneOf": [*options, attribute, event]}


def _file_schema(title: str, key: str, item: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A definitions file holds one definition, or a list of them under `key`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "$defs": {**defs, "item": item},
        "oneOf": [
            {"$ref": "#/$defs/item"},
            {
                "type": "object",
                "required": [key],
                "properties": {key: {"type": "array", "items": {"$ref": "#/$defs/item"}}},
                "additionalProperties": False,
            },
        ],
    }


def _model_schema(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    return schema, defs


def json_schemas() -> dict[str, dict[str, Any]]:
    segment_item = {
        "type": "object",
        "required": ["id", "rule"],
        "properties": {"id": ID, "description": {"type": "string"}, "rule": {"$ref": "#/$defs/rule"}},
        "additionalProperties": False,
    }
    out = {"segments": _file_schema("Segments", "segments", segment_item, {"rule": rule_schema()})}
    for name, key, model in (
        ("campaigns", "campaigns", Campaign),
        ("templates", "templates", Template),
        ("lifecycles", "lifecycles", Lifecycle),
    ):
        item, defs = _model_schema(model)
        out[name] = _file_schema(name.title(), key, item, defs)
    # `content` is typed per channel in code; editors get the three shapes to choose from.
    template_item = out["templates"]["$defs"]["item"]
    template_defs = out["templates"]["$defs"]
    shapes = []
    for content_model in (PushContent, InAppContent, EmailContent):
        shape, more = _model_schema(content_model)
        template_defs.update(more)
        template_defs[content_model.__name__] = shape
        shapes.append({"$ref": f"#/$defs/{content_model.__name__}"})
    template_item["properties"]["content"] = {"anyOf": shapes, "description": "fields of the template's channel"}
    registry, defs = _model_schema(RegistryFile)
    out["deep_links"] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, **registry}
    settings, defs = _model_schema(Settings)
    out["settings"] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, **settings}
    return out
