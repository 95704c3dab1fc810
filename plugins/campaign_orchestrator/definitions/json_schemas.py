"""JSON Schemas for the files in `marketing/`, so editors can complete and check them as you type.

Campaigns, templates, settings, lifecycles and the segment rule language (its typed nodes) come
from their pydantic models. `make schema` writes them to `marketing/schema/`;
a test keeps the files in sync and validates every definition in the repository against them.
Load-time checks (`campaigns validate`) go further: known attributes, references, durations.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from campaign_orchestrator.definitions.base import ID_PATTERN
from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.deep_links import RegistryFile
from campaign_orchestrator.definitions.loader import Lifecycle
from campaign_orchestrator.definitions.rule_nodes import RULE
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.definitions.templates import EmailContent, InAppContent, PushContent, Template

ID = {"type": "string", "pattern": ID_PATTERN}


class _RuleSchema(GenerateJsonSchema):
    """A rule's optional keys are absent, never null: no `null` choice, no `default: null`."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", 0) is None:
            del json_schema["default"]
        return json_schema


def rule_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The rule language's schema and its definitions, derived from the typed nodes."""
    schema = RULE.json_schema(ref_template="#/$defs/{model}", schema_generator=_RuleSchema)
    defs = schema.pop("$defs", {})
    return schema, defs


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
    rule, rule_defs = rule_schema()
    out = {"segments": _file_schema("Segments", "segments", segment_item, {**rule_defs, "rule": rule})}
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
