"""The JSON Schemas editors use stay in sync with the code, and accept every definition we ship."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from campaign_orchestrator.definitions.json_schemas import json_schemas

SCHEMAS = json_schemas()
FOLDERS = {"segments": "segments", "campaigns": "campaigns", "templates": "templates", "lifecycles": "lifecycles"}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_checked_in_schema_is_current(repo, name):
    on_disk = json.loads((repo / "marketing" / "schema" / f"{name}.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(SCHEMAS[name])), "run `make schema`"


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_every_shipped_definition_validates(repo, name):
    files = sorted((repo / "marketing" / FOLDERS[name]).glob("*.yaml"))
    assert files
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMAS[name])
    jsonschema.validate(yaml.safe_load((repo / "marketing" / "settings.yaml").read_text()), SCHEMAS["settings"])


@pytest.mark.parametrize(
    "rule",
    [
        {"attribute": "tier", "eq": "gold", "ne": "silver"},
        {"sql": "DROP TABLE customers"},
        {"event": "purchase", "count": {"most": 2}},
        {"all": []},
        {"app": {"platform": "blackberry"}},
    ],
)
def test_the_rule_schema_flags_mistakes_as_you_type(rule):
    doc = {"segments": [{"id": "x", "rule": rule}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMAS["segments"])
