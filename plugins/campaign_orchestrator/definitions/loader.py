"""The marketers' definitions in `marketing/`: settings, segments, campaigns and templates.

Loading checks everything that can be checked without data: shapes (pydantic), references
between definitions, rule syntax and columns. Every problem is reported at once with the file
and the path inside it, so a marketer fixes a file in one pass.

Drafts (`drafts/campaigns/<id>.yaml`, written by the console) are checked like campaigns but
kept apart in `Definitions.drafts`: nothing schedules them, so an unapproved version never sends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from campaign_orchestrator.definitions.base import ID_PATTERN, StrictModel
from campaign_orchestrator.definitions.campaigns import (  # noqa: F401 - re-exported for callers
    Campaign,
    CampaignCaps,
    Channel,
    InAppOptions,
    QuietHours,
    check_zone,
)
from campaign_orchestrator.definitions.deep_links import DeepLinkRegistry, load_registry
from campaign_orchestrator.definitions.public_messages import load_public_messages
from campaign_orchestrator.definitions.rule_values import RuleError
from campaign_orchestrator.definitions.rules import LifecycleSpec, Vocabulary, check_rule, evaluation_order
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.definitions.templates import Template
from campaign_orchestrator.definitions.yaml_files import (
    PathKey,
    YamlDoc,
    at_line,
    parse_path,
    pydantic_problems,
    read_yaml_doc,
)
from campaign_orchestrator.errors import CampaignError, InvalidInput

DRAFTS_FOLDER = "drafts/campaigns"  # the console's unapproved versions, one <id>.yaml each
DRAFT_STATES = frozenset({"draft", "pending_approval"})


class DefinitionError(CampaignError, InvalidInput, ValueError):
    """One or more definitions are wrong; `problems` holds 'file: path: reason' lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the definitions:\n" + "\n".join(problems))


class Segment(StrictModel):
    id: str = Field(pattern=ID_PATTERN)
    description: str | None = None
    rule: dict[str, Any]


class Lifecycle(StrictModel):
    """Ordered stages: each customer is in the first stage whose segment they belong to, else `otherwise`."""

    id: str = Field(pattern=ID_PATTERN)
    description: str | None = None
    stages: list[str] = Field(min_length=1, description="segment ids, first match wins")
    otherwise: str = Field(default="unassigned", pattern=ID_PATTERN)

    @model_validator(mode="after")
    def _distinct(self) -> Lifecycle:
        if len(set(self.stages)) != len(self.stages) or self.otherwise in self.stages:
            raise ValueError("stages (and otherwise) must be distinct")
        return self


@dataclass(frozen=True)
class Definitions:
    settings: Settings
    segments: dict[str, Segment]
    campaigns: dict[str, Campaign]
    templates: dict[str, Template]
    lifecycles: dict[str, Lifecycle] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # definition id -> file it came from
    vocabulary: Any = None  # rules.Vocabulary the segments were checked against
    deep_links: DeepLinkRegistry | None = None
    public_messages: list[Any] = field(default_factory=list)  # public_messages.PublicMessage
    drafts: dict[str, Campaign] = field(default_factory=dict)  # drafts/campaigns: checked, never scheduled

    def active_campaigns(self, run_date: dt.date) -> list[Campaign]:
        return sorted((c for c in self.campaigns.values() if c.is_active(run_date)), key=lambda c: c.id)

    def rules(self) -> dict[str, Any]:
        return {sid: seg.rule for sid, seg in self.segments.items()}

    def lifecycle_specs(self) -> list[Any]:

        return [LifecycleSpec(lc.id, tuple(lc.stages), lc.otherwise) for lc in self.lifecycles.values()]


def _items(path: Path, doc: Any, key: str, problems: list[str]) -> list[tuple[str, Any]]:
    """A file holds either one definition or a list under `key`; return (path-in-file, item)."""
    if doc is None:
        return []
    if isinstance(doc, dict) and key in doc:
        items = doc[key]
        if not isinstance(items, list):
            problems.append(f"{path}: {key}: must be a list")
            return []
        return [(f"{key}[{i}]", item) for i, item in enumerate(items)]
    return [("", doc)]


def load_definitions(config_dir: str | Path, vocabulary: Any = None) -> Definitions:
    """Load and cross-check every definition in config_dir; raise DefinitionError listing all problems.

    `vocabulary` (a rules.Vocabulary, from the data contracts) says which attributes, event
    properties and lists rules may name; segments and lifecycles are added from the files.
    """
    root = Path(config_dir)
    if not root.is_dir():
        raise DefinitionError([f"{root}: the definitions folder does not exist"])
    return _Loader(root).load(vocabulary)


class _Loader:
    """One pass over a definitions folder: every problem is collected with its file and line."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []
        self.origin: dict[str, str] = {}  # definition -> 'file[:item]'
        self.located: dict[str, tuple[YamlDoc, PathKey]] = {}  # definition -> its file's lines, its path

    def load(self, vocabulary: Any) -> Definitions:

        settings, settings_ok = self.settings()
        segments: dict[str, Segment] = self.kind("segments", "segments", Segment)
        campaigns: dict[str, Campaign] = self.kind("campaigns", "campaigns", Campaign)
        templates: dict[str, Template] = self.kind("templates", "templates", Template)
        lifecycles: dict[str, Lifecycle] = self.kind("lifecycles", "lifecycles", Lifecycle)
        drafts: dict[str, Campaign] = self.kind(DRAFTS_FOLDER, "campaigns", Campaign, namespace="drafts")
        self.check_drafts(drafts)
        vocab = self.check_segments(segments, lifecycles, vocabulary)
        for namespace, camp in [
            *(("campaigns", c) for c in campaigns.values()),
            *(("drafts", c) for c in drafts.values()),
        ]:
            key = f"{namespace}:{camp.id}"
            self.check_campaign(camp, segments, templates, key)
            if settings_ok:  # else its destination is judged once settings.yaml reads right: one error, not twelve
                self.check_destination(camp, settings, key)
                if camp.caps.total is not None and settings.retention.outbox_days is not None:
                    message = (
                        "caps.total: counts this campaign's sends ever, but settings.yaml's retention.outbox_days"
                        f" ({settings.retention.outbox_days}) forgets older ones: remove one of the two"
                    )
                    self.problems.append(self.where_in(key, message, "caps"))
            if camp.conversion is not None:
                for problem in camp.conversion.problems(vocab, "conversion"):
                    self.problems.append(self.where_in(key, problem, "conversion"))
        if settings.measurement.conversion is not None:
            self.problems += [
                f"{self.root / 'settings.yaml'}: {p}"
                for p in settings.measurement.conversion.problems(vocab, "measurement.conversion")
            ]
        deep_links = load_registry(self.root, self.problems)
        public_messages = load_public_messages(self.root, self.problems)
        if self.problems:
            raise DefinitionError(self.problems)
        return Definitions(
            settings=settings,
            segments=segments,
            campaigns=campaigns,
            templates=templates,
            lifecycles=lifecycles,
            sources=self.origin,
            vocabulary=vocab,
            deep_links=deep_links,
            public_messages=public_messages,
            drafts=drafts,
        )

    def where_in(self, definition: str, message: str, *path: str | int) -> str:
        """'file[:item]: message (line N)', N being the line of `path` inside the definition."""
        doc, prefix = self.located.get(definition, (None, ()))
        return at_line(f"{self.origin[definition]}: {message}", doc, (*prefix, *path))

    def settings(self) -> tuple[Settings, bool]:
        """The settings, and whether settings.yaml read without a problem."""
        path = self.root / "settings.yaml"
        if not path.exists():
            return Settings(), True
        before = len(self.problems)
        doc = read_yaml_doc(path, self.problems)
        try:
            settings = Settings.model_validate(doc.data if doc else {})
        except ValidationError as exc:
            self.problems.extend(pydantic_problems(path, "", exc, doc))
            settings = Settings()
        return settings, len(self.problems) == before

    def kind(self, folder: str, key: str, model: type[BaseModel], namespace: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for path in sorted((self.root / folder).glob("*.y*ml")):
            doc = read_yaml_doc(path, self.problems)
            if doc is None:
                continue
            for where, item in _items(path, doc.data, key, self.problems):
                try:
                    obj = model.model_validate(item)
                except ValidationError as exc:
                    self.problems.extend(pydantic_problems(path, where, exc, doc))
                    continue
                name = f"{namespace or key}:{obj.id}"  # type: ignore[attr-defined]
                if name in self.origin:
                    self.problems.append(
                        f"{path}: {where or 'id'}: {key[:-1]} {obj.id!r} is also defined in {self.origin[name]}"  # type: ignore[attr-defined]
                    )
                    continue
                found[obj.id] = obj  # type: ignore[attr-defined]
                self.origin[name] = f"{path}{':' + where if where else ''}"
                self.located[name] = (doc, parse_path(where))
        return found

    def check_segments(self, segments: dict[str, Segment], lifecycles: dict[str, Lifecycle], vocabulary: Any) -> Any:
        """Lifecycle stages name segments, rules check against the vocabulary, no cycles; the vocabulary
        with the folder's segments and lifecycles added."""
        import dataclasses

        for lc in lifecycles.values():
            for i, stage in enumerate(lc.stages):
                if stage not in segments:
                    self.problems.append(
                        self.where_in(f"lifecycles:{lc.id}", f"stages: unknown segment {stage!r}", "stages", i)
                    )
        base = vocabulary if vocabulary is not None else Vocabulary(attributes={})
        vocab = dataclasses.replace(
            base,
            segments=frozenset(segments),
            lifecycles={lc.id: (*lc.stages, lc.otherwise) for lc in lifecycles.values()},
        )
        for seg in segments.values():
            for problem in check_rule(seg.rule, vocab):
                rule_path = problem.split(": ", 1)[0]
                self.problems.append(
                    self.where_in(f"segments:{seg.id}", f"rule{problem}", *parse_path("rule" + rule_path))
                )
        try:
            evaluation_order(
                {seg.id: seg.rule for seg in segments.values()},
                [LifecycleSpec(lc.id, tuple(lc.stages), lc.otherwise) for lc in lifecycles.values()],
            )
        except RuleError as exc:
            self.problems.append(f"{self.root / 'segments'}: {exc}")
        return vocab

    def check_drafts(self, drafts: dict[str, Campaign]) -> None:
        """A draft is one campaign per file, named by its id, and not yet approved."""
        for camp in drafts.values():
            key = f"drafts:{camp.id}"
            alone = not self.located[key][1]  # the file is the campaign, not a list of them
            if not alone or Path(self.origin[key]).stem != camp.id:
                message = f"id: a draft is kept alone in {DRAFTS_FOLDER}/{camp.id}.yaml"
                self.problems.append(self.where_in(key, message, "id"))
            if camp.status not in DRAFT_STATES:
                message = f"status: a draft is draft or pending_approval, not {camp.status or 'approved'}"
                self.problems.append(self.where_in(key, message, "status"))

    def check_campaign(
        self, camp: Campaign, segments: dict[str, Segment], templates: dict[str, Template], key: str
    ) -> None:
        include, exclude = camp.audience
        for segment_id in (*include, *exclude):
            if segment_id not in segments:
                field_name = "segment" if camp.segment else ("include" if segment_id in include else "exclude")
                self.problems.append(self.where_in(key, f"segment: unknown segment {segment_id!r}", field_name))
        for variant, template_id in camp.variant_templates.items():
            template = templates.get(template_id)
            label = "template" if variant == "default" else f"variants.{variant}.template"
            field_path = ("template",) if variant == "default" else ("variants",)
            if template is None:
                self.problems.append(self.where_in(key, f"{label}: unknown template {template_id!r}", *field_path))
            elif template.channel != camp.channel:
                message = f"{label}: {template_id!r} is for {template.channel}, campaign is {camp.channel}"
                self.problems.append(self.where_in(key, message, *field_path))

    def check_destination(self, camp: Campaign, settings: Settings, key: str) -> None:
        dest = settings.destinations.get(camp.destination)
        if dest is None:
            message = f"destination: unknown destination {camp.destination!r} (settings.yaml)"
        elif dest.kind == "provider" and not camp.provider_campaign_id:
            message = f"provider_campaign_id: required for provider destination {camp.destination!r}"
        elif dest.kind == "message_store" and camp.channel != "in_app":
            message = "destination: the message store takes in_app campaigns only"
        else:
            return
        self.problems.append(self.where_in(key, message, "destination"))
