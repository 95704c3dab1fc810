"""Importing Pinpoint exports into a definitions folder: plan, validate the result, then write.

Invariant: the folder changes only if the whole folder, with the imported files in it, loads with
the definitions loader (and passes the caller's extra check, e.g. template lint); otherwise it is
left exactly as it was. Existing files are never replaced without `force`, and a deep link a
button opens must be a registered route (or is registered, with `register_links`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.definitions.deep_links import REGISTRY_FILE, DeepLinkRegistry
from campaign_orchestrator.definitions.loader import DefinitionError, Definitions, load_definitions
from campaign_orchestrator.definitions.pinpoint import (
    CAMPAIGN_ID_CHARS,
    CampaignConverter,
    Converted,
    PinpointImportError,
    label,
    read_exports,
    slug,
)
from campaign_orchestrator.warehouse.tables import customers

DEFAULT_DESTINATION = "app_inbox"
# Without a contract to say which columns templates may use: the profile columns.
PROFILE_VARIABLES = frozenset(c.name for c in customers.c if c.name != "customer_id")
Check = Callable[[Definitions, set[str]], list[str]]  # (definitions, imported template ids) -> problems


@dataclass(frozen=True)
class ImportOptions:
    destination: str = DEFAULT_DESTINATION
    segment: str | None = None  # one segment for every imported campaign
    segment_map: Mapping[str, str] = field(default_factory=dict)  # Pinpoint SegmentId -> our segment
    register_links: bool = False
    force: bool = False
    defaults: Mapping[str, str] = field(default_factory=dict)  # variable -> default text
    variables: frozenset[str] = PROFILE_VARIABLES  # the template variables placeholders may name
    now: dt.datetime | None = None  # naive UTC; stands in for IMMEDIATE


@dataclass
class ImportPlan:
    """What an import writes (relative path -> text), and what it says about it."""

    config_dir: Path
    files: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    routes_added: list[str] = field(default_factory=list)
    appended: dict[str, str] = field(default_factory=dict)  # relative path -> the lines added to it
    warnings: list[str] = field(default_factory=list)


def plan_import(
    paths: list[Path], config_dir: Path, options: ImportOptions, vocabulary: Any = None, check: Check | None = None
) -> ImportPlan:
    """The files the import would write, validated in a copy of the folder; raises PinpointImportError."""
    current = _load_current(config_dir, vocabulary)
    exports = read_exports(paths)
    problems = list(exports.problems) + _option_problems(current, options)
    if not exports.campaigns and not problems:
        problems.append("no Pinpoint campaign in the given files (templates import with the campaigns that use them)")
    if problems:
        raise PinpointImportError(problems)
    now = options.now or utcnow()
    converter = CampaignConverter(exports.templates, options.variables, now.date(), now.replace(tzinfo=dt.UTC))
    converted: list[tuple[str, Converted]] = []
    taken: set[str] = set()
    for source, raw in exports.campaigns:
        wanted = slug(str(raw.get("Name") or raw.get("Id") or ""))
        campaign_id = _unique(wanted, taken)
        segment = _segment(raw, current, options, problems)
        one = converter.convert(raw, campaign_id, segment or "", options.destination)
        if campaign_id != wanted:
            one.notes.warn(f"id {wanted!r} is another campaign's of this import: imported as {campaign_id!r}")
        problems.extend(one.notes.problems)
        converted.append((source, one))
    plan = ImportPlan(config_dir)
    used = {str(r.get("Name")) for _, c in exports.campaigns for r in _treatment_templates(c)}
    unused = sorted(set(exports.templates) - used)
    plan.warnings += [f"in-app template {name!r}: no given campaign uses it; not imported" for name in unused]
    routes = _deep_links([one for _, one in converted], current.deep_links, options.register_links, problems)
    if problems:
        raise PinpointImportError(problems)
    for source, one in converted:
        _defaults(one, options.defaults)
        _render(plan, one, source, now.date())
    if routes:
        _register(plan, config_dir, routes)
    plan.replaced = [p for p in plan.files if (config_dir / p).exists() and p != REGISTRY_FILE]
    if plan.replaced and not options.force:
        listed = ", ".join(str(config_dir / p) for p in plan.replaced)
        raise PinpointImportError([f"{listed}: already there; pass --force to replace (nothing was written)"])
    _validate(plan, vocabulary, check, {t["id"] for _, one in converted for t in one.templates})
    return plan


def _treatment_templates(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The in-app template references of a campaign's treatments."""
    treatments = [raw, *(t for t in raw.get("AdditionalTreatments") or [] if isinstance(t, Mapping))]
    found = [(t.get("TemplateConfiguration") or {}).get("InAppTemplate") for t in treatments]
    return [f for f in found if isinstance(f, Mapping)]


def write_plan(plan: ImportPlan) -> list[Path]:
    """Write the planned files, each atomically; templates first, campaigns last."""
    order = sorted(plan.files, key=lambda p: (p.startswith("campaigns/"), p))
    written = []
    for relative in order:
        target = plan.config_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(plan.files[relative])
        # mkstemp makes the file private; keep the mode an edited file had, else what files get.
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
        os.chmod(temporary, mode)
        os.replace(temporary, target)
        written.append(target)
    return written


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _load_current(config_dir: Path, vocabulary: Any) -> Definitions:
    try:
        return load_definitions(config_dir, vocabulary)
    except DefinitionError as exc:
        raise PinpointImportError(exc.problems, f"in {config_dir} before the import (fix them first)") from None


def _option_problems(current: Definitions, options: ImportOptions) -> list[str]:
    problems = []
    stores = sorted(k for k, d in current.settings.destinations.items() if d.kind == "message_store")
    destination = current.settings.destinations.get(options.destination)
    if destination is None or destination.kind != "message_store":
        problems.append(
            f"--destination {options.destination}: not a message_store destination in settings.yaml "
            f"(message stores: {', '.join(stores) or 'none'})"
        )
    known = ", ".join(sorted(current.segments))
    for given in ([options.segment] if options.segment else []) + list(options.segment_map.values()):
        if given not in current.segments:
            problems.append(f"segment {given!r}: not a segment of this folder (segments: {known})")
    return problems


def _unique(candidate: str, taken: set[str]) -> str:
    """The campaign id; a second Pinpoint campaign of this import with the same slug gets a suffix."""
    campaign_id, n = candidate, 1
    while campaign_id in taken:
        n += 1
        campaign_id = f"{candidate[: CAMPAIGN_ID_CHARS - len(str(n)) - 1]}_{n}"
    taken.add(campaign_id)
    return campaign_id


def _segment(raw: dict[str, Any], current: Definitions, options: ImportOptions, problems: list[str]) -> str | None:
    pinpoint_segment = str(raw.get("SegmentId") or "")
    if pinpoint_segment in options.segment_map:
        return options.segment_map[pinpoint_segment]
    if options.segment:
        return options.segment
    if pinpoint_segment and slug(pinpoint_segment) in current.segments:
        return slug(pinpoint_segment)
    known = ", ".join(sorted(current.segments))
    problems.append(
        f"{label(raw)}: Pinpoint segment {pinpoint_segment or '(none)'!r} has no segment here, and Pinpoint segments "
        "cannot be converted: pass --segment SEGMENT (for every imported campaign) or "
        f"--segment-map {pinpoint_segment or 'PINPOINT_SEGMENT_ID'}=SEGMENT; segments: {known}"
    )
    return None


ROUTE_VARIABLE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)[^}]*\}\}")


def _deep_links(
    converted: list[Converted], registry: DeepLinkRegistry | None, register: bool, problems: list[str]
) -> list[tuple[str, str]]:
    """Routes to add (route, campaign id); problems for links the registry refuses."""
    if registry is None:
        return []  # a folder without deep_links.yaml checks no links (as the loader does)
    routes: dict[str, str] = {}
    for one in converted:
        for where, link in one.links:
            sample = ROUTE_VARIABLE.sub("sample", link)
            why = registry.check(sample)
            if why is None:
                continue
            route = re.split(r"[?#]", ROUTE_VARIABLE.sub(r"{\1}", link), maxsplit=1)[0]
            if register and why.startswith("not a route"):
                routes.setdefault(route, one.campaign["id"])
            elif why.startswith("not a route"):
                problems.append(
                    f"{one.notes.label}: {where}: deep link {link!r} is {why}; ask the app team to register "
                    f"{route!r} there, or pass --register-links to add it"
                )
            else:
                problems.append(f"{one.notes.label}: {where}: deep link {link!r}: {why}")
    return sorted(routes.items())


def _defaults(one: Converted, given: Mapping[str, str]) -> None:
    empty = set()
    for template in one.templates:
        for name in template.get("defaults", {}):
            if name in given:
                template["defaults"][name] = given[name]
            else:
                empty.add(name)
    if empty:
        one.notes.warn(
            f"no default for {', '.join(sorted(empty))}: empty text for a customer without one, as in Pinpoint "
            "(pass --default NAME=TEXT, or edit the template's defaults)"
        )


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people: a value used twice (a date) is written twice, not as an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)


def _comments(lines: list[str]) -> str:
    """Comment lines, wrapped; a line starting '- ' is a list item (continued under its text)."""
    out: list[str] = []
    for line in lines:
        bullet = line.startswith("- ")
        wrapped = textwrap.wrap(" ".join(line.split()), 110, subsequent_indent="  " if bullet else "")
        out.extend(f"# {part}\n" for part in wrapped)
    return "".join(out)


def _render(plan: ImportPlan, one: Converted, source: str, today: dt.date) -> None:
    campaign_id = one.campaign["id"]
    origin = f"Imported from the Amazon Pinpoint {one.notes.label} by `campaigns import-pinpoint` on {today}."
    review = [f"- {w.removeprefix(one.notes.label + ': ')}" for w in one.notes.warnings]
    header = [origin, *(["Review:", *review] if review else [])]
    campaign_file = f"campaigns/{campaign_id}.yaml"
    plan.files[campaign_file] = (
        "# yaml-language-server: $schema=../schema/campaigns.schema.json\n" + _comments(header) + _dump(one.campaign)
    )
    template_file = f"templates/pinpoint_{campaign_id}.yaml"
    body = one.templates[0] if len(one.templates) == 1 else {"templates": one.templates}
    plan.files[template_file] = (
        "# yaml-language-server: $schema=../schema/templates.schema.json\n" + _comments([origin]) + _dump(body)
    )
    ids = ", ".join(t["id"] for t in one.templates)
    plan.summary.append(f"{campaign_file}: campaign {campaign_id}, from the Pinpoint {one.notes.label} in {source}")
    plan.summary.append(f"{template_file}: template(s) {ids}")
    plan.warnings.extend(one.notes.warnings)


def _register(plan: ImportPlan, config_dir: Path, routes: list[tuple[str, str]]) -> None:
    path = config_dir / REGISTRY_FILE
    text = path.read_text(encoding="utf-8")
    indents = re.findall(r"^([ \t]*)- route:", text, flags=re.MULTILINE)
    indent = indents[-1] if indents else "  "
    added = "".join(
        f"{indent}- route: {json.dumps(route)}\n{indent}  description: "
        f"{json.dumps(f'added by campaigns import-pinpoint for {campaign_id}')}\n"
        for route, campaign_id in routes
    )
    plan.files[REGISTRY_FILE] = text + ("" if text.endswith("\n") else "\n") + added
    plan.appended[REGISTRY_FILE] = added
    plan.routes_added = [route for route, _ in routes]
    plan.summary.append(f"{REGISTRY_FILE}: route(s) added: {', '.join(plan.routes_added)}")


def _validate(plan: ImportPlan, vocabulary: Any, check: Check | None, template_ids: set[str]) -> None:
    """Load a copy of the folder with the planned files in it; the real folder is not touched."""
    with tempfile.TemporaryDirectory(prefix="pinpoint-import-") as scratch:
        copy = Path(scratch) / plan.config_dir.name
        shutil.copytree(plan.config_dir, copy)
        for relative, text in plan.files.items():
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            (copy / relative).write_text(text, encoding="utf-8")
        try:
            defs = load_definitions(copy, vocabulary)
            problems = check(defs, template_ids) if check else []
        except DefinitionError as exc:
            problems = exc.problems
        if problems:
            problems = [p.replace(str(copy), str(plan.config_dir)) for p in problems]
            raise PinpointImportError(problems, "in the imported definitions (nothing was written)")
