"""Amazon Pinpoint in-app campaigns, as exported from its API, converted into campaign and template
definitions (Pinpoint reached end of support on 2026-10-30).

Invariant: one Pinpoint in-app campaign becomes one `in_app` campaign and one template per
treatment, and every Pinpoint setting is either mapped to its counterpart or named in a warning;
nothing is dropped silently, and anything that cannot be converted faithfully (an unknown
placeholder, a missing template, treatment sizes over 100%) is an error naming the campaign.

Mapping: Priority -> in_app.priority; Limits Session / Daily / Total -> in_app session_cap /
daily_cap / total_cap (0 = none); HoldoutPercent -> holdout_percent; IsPaused -> enabled: false;
TreatmentName / AdditionalTreatments -> variants weighted by SizePercent (the default treatment
gets what the others and the holdout leave); Schedule StartTime / EndTime -> start_date / end_date;
Frequency ONCE / DAILY / WEEKLY / MONTHLY -> once / daily / weekly / cron, HOURLY -> daily, EVENT
and IN_APP_EVENT (the usual in-app trigger) -> daily, delivered to the inbox each night and shown
when the app asks; QuietTime -> quiet_hours. Expiry: a ONCE campaign's messages live until its
EndTime (up to 30 days), a recurring campaign's until EndTime when that is sooner than the
default 72 hours. The segment and the destination are the caller's choice: Pinpoint segments
cannot be translated.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign_orchestrator.definitions.campaigns import CLOCK, WEEKDAYS, InAppOptions
from campaign_orchestrator.definitions.pinpoint_content import ContentReader, Notes, Placeholders
from campaign_orchestrator.errors import CampaignError, InvalidInput

DEFAULT_EXPIRY_HOURS = InAppOptions().expires_after_hours
MAX_EXPIRY_HOURS = 24 * 30
CAMPAIGN_ID_CHARS = 40  # room for 'pinpoint_<campaign>_<variant>' within an id's 64 characters
VARIANT_ID_CHARS = 14
IGNORED_LIMITS = ("MaximumDuration", "MessagesPerSecond")
EVENT_FREQUENCIES = frozenset({"EVENT", "IN_APP_EVENT"})


class PinpointImportError(CampaignError, InvalidInput, ValueError):
    """The exports cannot be imported as they are; `problems` holds one line per problem."""

    def __init__(self, problems: list[str], heading: str = "importing from Pinpoint") -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) {heading}:\n" + "\n".join(problems))


@dataclass
class Exports:
    """What the given files hold: campaigns (file, body) and in-app templates by name."""

    campaigns: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Converted:
    """One Pinpoint campaign as definitions: the campaign and its templates (as YAML-ready dicts)."""

    pinpoint_id: str
    pinpoint_name: str
    campaign: dict[str, Any]
    templates: list[dict[str, Any]]
    links: list[tuple[str, str]]  # (where, deep link) the registry must hold
    notes: Notes


def read_exports(paths: list[Path]) -> Exports:
    """Campaigns and in-app templates from `aws pinpoint get-campaign(s)` / `get-in-app-template` output."""
    exports = Exports()
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            exports.problems.append(f"{path}: cannot read ({exc.strerror})")
            continue
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            exports.problems.append(f"{path}: not a JSON export ({exc})")
            continue
        for kind, body in _documents(data):
            if kind == "campaign":
                exports.campaigns.append((str(path), body))
            elif kind == "template":
                _add_template(exports, path, body)
            else:
                exports.problems.append(
                    f"{path}: {body.get('_what')}: not a Pinpoint campaign or in-app template export "
                    "(expected the output of `aws pinpoint get-campaign` or `get-in-app-template`)"
                )
    return exports


def _documents(data: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(data, list):
        for i, item in enumerate(data):
            yield from _documents(item, f"{where}[{i}]")
        return
    if not isinstance(data, dict):
        yield "unknown", {"_what": where}
    elif isinstance(data.get("CampaignResponse"), dict):
        yield "campaign", data["CampaignResponse"]
    elif isinstance(data.get("CampaignsResponse"), dict):
        yield from _documents(data["CampaignsResponse"].get("Item") or [], f"{where}.CampaignsResponse.Item")
    elif isinstance(data.get("InAppTemplateResponse"), dict):
        yield "template", data["InAppTemplateResponse"]
    elif "TemplateName" in data and ("Content" in data or "Layout" in data or "TemplateType" in data):
        yield "template", data
    elif "Id" in data and ({"MessageConfiguration", "SegmentId", "Schedule", "TemplateConfiguration"} & data.keys()):
        yield "campaign", data
    else:
        yield "unknown", {"_what": where}


def _add_template(exports: Exports, path: Path, body: dict[str, Any]) -> None:
    name = str(body.get("TemplateName") or "")
    kind = str(body.get("TemplateType") or "INAPP")
    if kind != "INAPP":
        exports.problems.append(f"{path}: template {name!r} is an {kind} template; only in-app templates import")
    elif not name:
        exports.problems.append(f"{path}: an in-app template without TemplateName")
    else:
        exports.templates[name] = {**body, "_file": str(path)}


def slug(text: str, limit: int = CAMPAIGN_ID_CHARS, prefix: str = "campaign") -> str:
    """'Spring Sale — 20%!' -> 'spring_sale_20': an id of ID_PATTERN, at most `limit` characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if not out or not out[0].isalpha():
        out = f"{prefix}_{out}".strip("_")
    return out[:limit].rstrip("_")


def label(raw: Mapping[str, Any]) -> str:
    name, pid = raw.get("Name"), raw.get("Id")
    return f"campaign {name!r} ({pid})" if name else f"campaign {pid!r}"


def _moment(value: Any, where: str, notes: Notes) -> dt.datetime | None:
    if value in (None, "", "IMMEDIATE"):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        notes.error(f"{where}: {value!r} is not an ISO 8601 time")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass
class CampaignConverter:
    """Converts one Pinpoint campaign; `today` and `now` (aware UTC) stand in for IMMEDIATE."""

    templates: Mapping[str, dict[str, Any]]
    variables: frozenset[str]
    today: dt.date
    now: dt.datetime

    def convert(self, raw: Mapping[str, Any], campaign_id: str, segment: str, destination: str) -> Converted:
        notes = Notes(label(raw))
        placeholders = Placeholders(self.variables)
        reader = ContentReader(placeholders, notes)
        campaign: dict[str, Any] = {"id": campaign_id}
        if raw.get("Name"):
            campaign["name"] = str(raw["Name"])
        if raw.get("IsPaused"):
            notes.warn("IsPaused: imported with enabled: false")
        if raw.get("IsPaused") or self._finished(raw, notes):
            campaign["enabled"] = False
        campaign.update(segment=segment, channel="in_app", destination=destination)
        templates = self._treatments(raw, campaign_id, reader, campaign, notes)
        holdout = float(raw.get("HoldoutPercent") or 0)
        if holdout:
            campaign["holdout_percent"] = int(holdout) if holdout.is_integer() else holdout
        schedule, expiry = self._schedule(raw.get("Schedule") or {}, notes)
        campaign.update(schedule)
        campaign["in_app"] = self._in_app(raw, expiry, notes)
        reader.style_warning()
        self._unused(raw, notes)
        return Converted(str(raw.get("Id") or ""), str(raw.get("Name") or ""), campaign, templates, reader.links, notes)

    @staticmethod
    def _finished(raw: Mapping[str, Any], notes: Notes) -> bool:
        status = (raw.get("State") or {}).get("CampaignStatus")
        if status in ("COMPLETED", "DELETED", "INVALID"):
            notes.warn(f"State.CampaignStatus is {status} in Pinpoint: imported with enabled: false")
            return True
        return False

    def _treatments(
        self, raw: Mapping[str, Any], campaign_id: str, reader: ContentReader, campaign: dict[str, Any], notes: Notes
    ) -> list[dict[str, Any]]:
        extra = [t for t in raw.get("AdditionalTreatments") or [] if isinstance(t, Mapping)]
        main = {**raw, "SizePercent": None}
        if not extra:
            template = self._template(main, f"pinpoint_{campaign_id}", "MessageConfiguration", reader, notes)
            campaign["template"] = template["id"] if template else f"pinpoint_{campaign_id}"
            return [template] if template else []
        sizes = [float(t.get("SizePercent") or 0) for t in extra]
        left = 100.0 - float(raw.get("HoldoutPercent") or 0) - sum(sizes)
        if left <= 0:
            notes.error(f"AdditionalTreatments: SizePercent and HoldoutPercent add up to {100 - left:g}% (over 100)")
        templates, variants, seen = [], [], set()
        for i, (treatment, weight) in enumerate(zip([main, *extra], [left, *sizes], strict=True)):
            variant = slug(str(treatment.get("TreatmentName") or ""), VARIANT_ID_CHARS, "treatment")
            if variant in seen or variant == "treatment":
                variant = f"treatment_{chr(ord('a') + i)}" if i < 26 else f"treatment_{i}"
            seen.add(variant)
            where = "MessageConfiguration" if i == 0 else f"AdditionalTreatments[{i - 1}]"
            template = self._template(treatment, f"pinpoint_{campaign_id}_{variant}", where, reader, notes)
            if i and isinstance(treatment.get("Schedule"), Mapping) and treatment["Schedule"] != raw.get("Schedule"):
                notes.warn(f"{where}.Schedule: a treatment's own schedule is not kept (the campaign's applies)")
            if template:
                templates.append(template)
            variants.append({"id": variant, "weight": int(weight) if weight.is_integer() else weight})
            variants[-1]["template"] = template["id"] if template else ""
        campaign["variants"] = variants
        return templates

    def _template(
        self, treatment: Mapping[str, Any], template_id: str, where: str, reader: ContentReader, notes: Notes
    ) -> dict[str, Any] | None:
        reader.placeholders.used = set()
        message = (treatment.get("MessageConfiguration") or {}).get("InAppMessage")
        reference = (treatment.get("TemplateConfiguration") or {}).get("InAppTemplate")
        description = f"Imported from the Amazon Pinpoint {notes.label}"
        if treatment.get("TreatmentName"):
            description += f", treatment {treatment['TreatmentName']!r}"
        if isinstance(reference, Mapping) and reference.get("Name"):
            name = str(reference["Name"])
            source = self.templates.get(name)
            if source is None:
                notes.error(
                    f"{where}: uses the in-app template {name!r}, which no given file holds: export it with "
                    f"`aws pinpoint get-in-app-template --template-name {name}` and pass that file too"
                )
                return None
            if reference.get("Version") and source.get("Version") and reference["Version"] != source["Version"]:
                notes.warn(
                    f"{where}: uses version {reference['Version']} of {name!r}; the export is {source['Version']}"
                )
            if isinstance(message, Mapping):
                notes.warn(f"{where}.InAppMessage: not used; the campaign's in-app template {name!r} is")
            message, where = source, f"template {name!r}"
            description += f", in-app template {name!r}"
            if source.get("TemplateDescription"):
                description += f": {source['TemplateDescription']}"
        elif not isinstance(message, Mapping):
            others = sorted(k for k, v in (treatment.get("MessageConfiguration") or {}).items() if v)
            kind = f" (it has {', '.join(others)})" if others else ""
            notes.error(f"{where}: no InAppMessage and no in-app template{kind}; only in-app campaigns import")
            return None
        content = reader.content(message, where)
        if content is None:
            return None
        template: dict[str, Any] = {"id": template_id, "channel": "in_app", "description": description}
        variables = sorted(reader.placeholders.used - {"customer_id"})
        if variables:
            template["defaults"] = dict.fromkeys(variables, "")
        template["content"] = content
        return template

    def _schedule(self, schedule: Mapping[str, Any], notes: Notes) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        start = _moment(schedule.get("StartTime"), "Schedule.StartTime", notes)
        end = _moment(schedule.get("EndTime"), "Schedule.EndTime", notes)
        frequency = str(schedule.get("Frequency") or "ONCE")
        first_day = start.date() if start else self.today
        if start is not None:
            out["start_date"] = first_day
        if end is not None:
            out["end_date"] = end.date()
        recurrence = self._recurrence(frequency, first_day, schedule, notes)
        if recurrence:
            out["schedule"] = recurrence
        if start is None and frequency in ("ONCE", "WEEKLY", "MONTHLY"):
            notes.warn(f"Schedule.StartTime IMMEDIATE: {frequency} is anchored on the import date, {self.today}")
        out["send_time"] = self._send_time(schedule, start, frequency)
        if out["send_time"] != "now" and not schedule.get("IsLocalTime"):
            out["send_timezone"] = "UTC"
        quiet = schedule.get("QuietTime") or {}
        for key in ("Start", "End"):
            if quiet.get(key) and not CLOCK.match(str(quiet[key])):
                notes.error(f"Schedule.QuietTime.{key}: {quiet[key]!r} is not a clock time HH:MM")
        if quiet.get("Start") and quiet.get("End"):
            out["quiet_hours"] = {"start": str(quiet["Start"]), "end": str(quiet["End"]), "fallback": "move"}
        else:
            notes.warn(
                "no Schedule.QuietTime: the quiet_hours of settings.yaml apply "
                "(quiet_hours: none shows the messages at any hour, as Pinpoint did)"
            )
        return out, self._expiry(start, end, frequency, notes)

    @staticmethod
    def _recurrence(
        frequency: str, first_day: dt.date, schedule: Mapping[str, Any], notes: Notes
    ) -> dict[str, Any] | None:
        """Our schedule for a Pinpoint frequency; None for daily (the default)."""
        if frequency == "ONCE":
            return {"type": "once", "date": first_day}
        if frequency == "WEEKLY":
            return {"type": "weekly", "days": [WEEKDAYS[first_day.weekday()]]}
        if frequency == "MONTHLY":
            return {"type": "cron", "cron": f"0 0 {first_day.day} * *"}
        if frequency in EVENT_FREQUENCIES:
            dimensions = (schedule.get("EventFilter") or {}).get("Dimensions") or {}
            events = [str(v) for v in (dimensions.get("EventType") or {}).get("Values") or []]
            shown = f" on {', '.join(events)}" if events else ""
            notes.warn(
                f"Schedule.Frequency {frequency}: Pinpoint showed it{shown}; here it is delivered to the inbox each "
                "night (schedule: daily) and the app shows it at session start"
            )
        elif frequency == "HOURLY":
            notes.warn("Schedule.Frequency HOURLY: runs once a night here (schedule: daily)")
        elif frequency != "DAILY":
            notes.error(f"Schedule.Frequency: {frequency!r} is not a Pinpoint frequency")
        return None

    @staticmethod
    def _send_time(schedule: Mapping[str, Any], start: dt.datetime | None, frequency: str) -> str:
        if start is None or frequency in EVENT_FREQUENCIES:
            return "now"
        clock = start if schedule.get("IsLocalTime") else start.astimezone(dt.UTC)
        return f"{clock:%H:%M}"

    def _expiry(self, start: dt.datetime | None, end: dt.datetime | None, frequency: str, notes: Notes) -> int:
        if end is None:
            if frequency == "ONCE":
                notes.warn(f"no Schedule.EndTime: messages expire {DEFAULT_EXPIRY_HOURS} h after delivery")
            return DEFAULT_EXPIRY_HOURS
        hours = math.ceil((end - (start or self.now)).total_seconds() / 3600)
        limit = MAX_EXPIRY_HOURS if frequency == "ONCE" else DEFAULT_EXPIRY_HOURS
        if 1 <= hours <= limit:
            return hours
        if frequency == "ONCE" and hours > limit:
            notes.warn(f"Schedule.EndTime is {hours} h after the start: messages expire after {limit} h")
            return limit
        return DEFAULT_EXPIRY_HOURS

    def _in_app(self, raw: Mapping[str, Any], expiry: int, notes: Notes) -> dict[str, Any]:
        options: dict[str, Any] = {}
        priority = raw.get("Priority", 3)
        if isinstance(priority, int) and 1 <= priority <= 5:
            options["priority"] = priority
        else:
            notes.error(f"Priority: {priority!r} is not 1..5")
        limits = raw.get("Limits") or {}
        for name, key in (("Session", "session_cap"), ("Daily", "daily_cap"), ("Total", "total_cap")):
            value = limits.get(name) or 0
            if not isinstance(value, int) or value < 0:
                notes.error(f"Limits.{name}: {value!r} is not a count")
            elif value:
                options[key] = value
        ignored = [f"{k} ({limits[k]})" for k in IGNORED_LIMITS if limits.get(k)]
        if ignored:
            notes.warn(f"Limits {', '.join(ignored)}: not kept (they pace sending; in-app messages go to the inbox)")
        options["expires_after_hours"] = expiry
        return options

    @staticmethod
    def _unused(raw: Mapping[str, Any], notes: Notes) -> None:
        for key in ("Hook", "CampaignHook", "CustomDeliveryConfiguration"):
            if raw.get(key):
                notes.warn(f"{key}: not kept (no counterpart here)")
