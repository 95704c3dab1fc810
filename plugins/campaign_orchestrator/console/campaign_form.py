"""The campaign editor's form: the fields a marketer fills in, and the YAML they become.

Invariants:
- The form is a view of the YAML, never a second record: `apply_form` writes the fields into
  the campaign's text with round-trip YAML (`approval.with_fields`), so keys the form does not
  show (conversion, locales, app ids, comments) stay as they are, and the result is judged by
  the same loader and lint as `campaigns validate` before anything is saved or planned.
- What a marketer types reaches the schema as typed: a number that does not parse is passed on
  as the text it was, so the message is the schema's ("priority: Input should be a valid
  integer"), shown at the field it names (`field_of`).
- An empty field means the default: its key is removed rather than written as an empty value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import yaml
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from campaign_orchestrator.console.approval import with_fields
from campaign_orchestrator.definitions.campaigns import WEEKDAYS

FormData = Mapping[str, str | list[str]]
VARIANT_ROWS = 4  # variant rows the form offers (a file may hold more: edit those in YAML)
PATH_RE = re.compile(r"\.yaml: ([a-z_]+)(?:\.([a-z_]+))?")
UNION_MEMBER_RE = re.compile(r"\.(?:[A-Z]\w*|literal\[[^\]]*\])(?=[.:])")  # pydantic's 'quiet_hours.QuietHours.end'
# Where a problem about a YAML key shows in the form.
FIELD_OF_KEY = {
    "schedule": "schedule_type",
    "caps": "caps_per_day",
    "quiet_hours": "quiet",
    "in_app": "inapp_priority",
    "variants": "content",
}
FIELD_OF_SUBKEY = {
    ("schedule", "date"): "schedule_date",
    ("schedule", "days"): "schedule_days",
    ("schedule", "cron"): "schedule_cron",
    ("caps", "per_day"): "caps_per_day",
    ("caps", "total"): "caps_total",
    ("quiet_hours", "start"): "quiet_start",
    ("quiet_hours", "end"): "quiet_end",
    ("quiet_hours", "fallback"): "quiet_fallback",
    ("in_app", "priority"): "inapp_priority",
    ("in_app", "session_cap"): "inapp_session_cap",
    ("in_app", "daily_cap"): "inapp_daily_cap",
    ("in_app", "total_cap"): "inapp_total_cap",
    ("in_app", "expires_after_hours"): "inapp_expires_after_hours",
}
IN_APP_KEYS = ("priority", "session_cap", "daily_cap", "total_cap", "expires_after_hours")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def form_values(text: str | None) -> dict[str, Any]:
    """The form's fields filled from a campaign's YAML (unknown shapes leave fields empty)."""
    try:
        loaded = yaml.safe_load(text or "")
    except yaml.YAMLError:
        loaded = None
    data = _mapping(loaded)
    schedule, caps, in_app = _mapping(data.get("schedule")), _mapping(data.get("caps")), _mapping(data.get("in_app"))
    quiet = data.get("quiet_hours")
    quiet_fields = _mapping(quiet)
    found = data.get("variants")
    variants: list[Any] = found if isinstance(found, list) else []
    values: dict[str, Any] = {
        "name": _text(data.get("name")),
        "audience": "include" if data.get("include") is not None else "segment",
        "segment": _text(data.get("segment")),
        "include": [str(s) for s in data.get("include") or []],
        "exclude": [str(s) for s in data.get("exclude") or []],
        "channel": _text(data.get("channel") or "push"),
        "destination": _text(data.get("destination")),
        "provider_campaign_id": _text(data.get("provider_campaign_id")),
        "content": "variants" if variants else "template",
        "template": _text(data.get("template")),
        "variants": [
            {k: _text(v.get(k)) for k in ("id", "weight", "template")} for v in variants if isinstance(v, dict)
        ],
        "schedule_type": _text(schedule.get("type") or "daily"),
        "schedule_date": _text(schedule.get("date")),
        "schedule_days": [str(d) for d in schedule.get("days") or []],
        "schedule_cron": _text(schedule.get("cron")),
        "start_date": _text(data.get("start_date")),
        "end_date": _text(data.get("end_date")),
        "send_time": _text(data.get("send_time") or "now"),
        "send_timezone": _text(data.get("send_timezone")),
        "quiet": "none" if quiet == "none" else ("custom" if isinstance(quiet, dict) else "default"),
        "quiet_start": _text(quiet_fields.get("start")),
        "quiet_end": _text(quiet_fields.get("end")),
        "quiet_fallback": _text(quiet_fields.get("fallback") or "move"),
        "priority": _text(data.get("priority")),
        "caps_per_day": _text(caps.get("per_day")),
        "caps_total": _text(caps.get("total")),
        "holdout_percent": _text(data.get("holdout_percent")),
        **{f"inapp_{k}": _text(in_app.get(k)) for k in IN_APP_KEYS},
    }
    while len(values["variants"]) < VARIANT_ROWS:
        values["variants"].append({"id": "", "weight": "", "template": ""})
    return values


def _one(form: FormData, key: str) -> str:
    value = form.get(key, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return value.strip()


def _many(form: FormData, key: str) -> list[str]:
    value = form.get(key, [])
    items = value if isinstance(value, list) else [value]
    return [v.strip() for v in items if v.strip()]


def _number(raw: str, kind: type[int] | type[float] = int) -> int | float | str | None:
    """An int (or float), None for empty, or the text itself so the schema names what is wrong."""
    if raw == "":
        return None
    try:
        number = float(raw) if kind is float else int(raw)
    except ValueError:
        return raw
    return int(number) if kind is float and number == int(number) else number


def _no_empty(values: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: v for k, v in values.items() if v not in (None, "", [])}
    return kept or None


def _schedule(form: FormData) -> dict[str, Any] | None:
    kind = _one(form, "schedule_type") or "daily"
    if kind == "daily":
        return None
    days = [d for d in WEEKDAYS if d in _many(form, "schedule_days")]
    chosen: dict[str, dict[str, Any]] = {"once": {"date": _one(form, "schedule_date")}, "weekly": {"days": days}}
    chosen["cron"] = {"cron": _one(form, "schedule_cron")}
    return {"type": kind, **(_no_empty(chosen.get(kind, {})) or {})}


def _quiet(form: FormData) -> dict[str, Any] | str | None:
    mode = _one(form, "quiet")
    if mode == "none":
        return "none"
    if mode != "custom":
        return None
    fields = {"start": _one(form, "quiet_start"), "end": _one(form, "quiet_end")}
    return {**fields, "fallback": _one(form, "quiet_fallback") or "move"}


def _variants(form: FormData) -> list[dict[str, Any]] | None:
    rows = []
    for i in range(VARIANT_ROWS):
        row = {k: _one(form, f"variant_{k}_{i}") for k in ("id", "weight", "template")}
        if any(row.values()):
            rows.append({"id": row["id"], "weight": _number(row["weight"], float), "template": row["template"]})
    return rows


def form_fields(form: FormData) -> dict[str, Any]:
    """The top-level keys the form sets; None removes a key (its default applies)."""
    include_mode = _one(form, "audience") == "include"
    variants_mode = _one(form, "content") == "variants"
    channel = _one(form, "channel")
    in_app = {k: _number(_one(form, f"inapp_{k}")) for k in IN_APP_KEYS}
    caps = {"per_day": _number(_one(form, "caps_per_day")), "total": _number(_one(form, "caps_total"))}
    return {
        "name": _one(form, "name") or None,
        "segment": None if include_mode else _one(form, "segment"),
        "include": _many(form, "include") if include_mode else None,
        "exclude": (_many(form, "exclude") or None) if include_mode else None,
        "channel": channel,
        "destination": _one(form, "destination"),
        "provider_campaign_id": _one(form, "provider_campaign_id") or None,
        "template": None if variants_mode else _one(form, "template"),
        "variants": _variants(form) if variants_mode else None,
        "schedule": _schedule(form),
        "start_date": _one(form, "start_date") or None,
        "end_date": _one(form, "end_date") or None,
        "send_time": _one(form, "send_time") or None,
        "send_timezone": _one(form, "send_timezone") or None,
        "quiet_hours": _quiet(form),
        "priority": _number(_one(form, "priority")),
        "caps": _no_empty(caps),
        "holdout_percent": _number(_one(form, "holdout_percent"), float),
        "in_app": _no_empty(in_app) if channel == "in_app" else None,
    }


def apply_form(text: str, form: FormData) -> str:
    """`text` (a campaign's YAML) with the form's fields written in; other keys and comments kept.
    Dates stay strings here: the loader parses them, so a typo gets its message, not a traceback."""
    return with_fields(text, {key: _as_typed(value) for key, value in form_fields(form).items()})


def _as_typed(value: Any) -> Any:
    """Quote a string that YAML 1.1 (the loader's PyYAML) would read as something else: "22:00" is
    a clock, not the sexagesimal 1320; "yes" is text. Dates stay plain: the loader wants them."""
    if isinstance(value, dict):
        return {k: _as_typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_typed(v) for v in value]
    if isinstance(value, str):
        try:
            read = yaml.safe_load(value)
        except yaml.YAMLError:
            return DoubleQuotedScalarString(value)
        if read != value and not isinstance(read, dt.date):
            return DoubleQuotedScalarString(value)
    return value


def field_of(problem: str) -> str | None:
    """The form field a `campaigns validate` problem about a campaign file is about, if any."""
    found = PATH_RE.search(UNION_MEMBER_RE.sub("", problem))
    if found is None:
        return None
    key, sub = found.group(1), found.group(2)
    if sub and (key, sub) in FIELD_OF_SUBKEY:
        return FIELD_OF_SUBKEY[(key, sub)]
    return FIELD_OF_KEY.get(key, key)
