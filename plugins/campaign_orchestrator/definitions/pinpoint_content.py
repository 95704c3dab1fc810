"""Amazon Pinpoint in-app message content as this product's in-app template content.

Invariant: every Pinpoint field of a message either lands in the template (`layout`, `header`,
`body`, `image_url`, two `buttons`, `data` from CustomConfig) or is named in a warning (carousel
items after the first, colours and alignment, per-platform button overrides); nothing is dropped
silently. Pinpoint's `{{Attributes.X}}` / `{{User.UserAttributes.X}}` placeholders become Jinja
variables of the customers profile (`FirstName` -> `{{ first_name }}`); a placeholder naming no
template variable is an error that names the campaign, the field and the placeholder, never a
guessed default, because a wrong variable would render the wrong text for every customer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from campaign_orchestrator.definitions.templates import InAppLayout

LAYOUTS: frozenset[str] = frozenset(get_args(InAppLayout))
ACTIONS = frozenset({"LINK", "DEEP_LINK", "CLOSE"})
# Pinpoint's endpoint and user fields that have a profile column of their own.
NAMED_FIELDS = {
    "User.UserId": "customer_id",
    "Demographic.Locale": "locale",
    "Demographic.Timezone": "timezone",
    "Location.Country": "country",
}
ATTRIBUTE_PREFIXES = ("User.UserAttributes.", "Attributes.")
CONTEXT_VARIABLES = frozenset({"customer_id"})  # always known to a template, no default needed
# Pinpoint's Handlebars string helpers that have a Jinja filter of the same meaning.
HELPERS = {"upper": "upper", "lower": "lower", "capitalize": "title"}
STYLE_KEYS = ("BackgroundColor", "TextColor", "Alignment", "BorderRadius")
MUSTACHE = re.compile(r"\{\{\{?(.*?)\}?\}\}", re.DOTALL)


@dataclass
class Notes:
    """Warnings and problems of one Pinpoint campaign, each prefixed with the campaign it is about."""

    label: str
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.label}: {message}")

    def error(self, message: str) -> None:
        self.problems.append(f"{self.label}: {message}")


def snake_case(name: str) -> str:
    """'FirstName' -> 'first_name', 'loyalty-tier' -> 'loyalty_tier'."""
    spaced = re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])", r"_\1\2", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


@dataclass
class Placeholders:
    """Converts Pinpoint placeholders to Jinja, remembering which variables a template uses."""

    variables: frozenset[str]
    used: set[str] = field(default_factory=set)

    def convert(self, text: str, where: str, notes: Notes) -> str:
        outside = MUSTACHE.sub("", text)
        if "{%" in outside or "{#" in outside:
            notes.error(f"{where}: the text holds '{{%' or '{{#', which templates here read as syntax; rephrase it")
            return text
        return MUSTACHE.sub(lambda m: self._one(m.group(0), m.group(1).strip(), where, notes), text)

    def _one(self, raw: str, expression: str, where: str, notes: Notes) -> str:
        helper, _, argument = expression.partition(" ")
        filters = ""
        if argument and helper in HELPERS:
            expression, filters = argument.strip(), f" | {HELPERS[helper]}"
        elif not re.fullmatch(r"[A-Za-z_][\w.-]*", expression):
            notes.error(
                f"{where}: placeholder {raw} is a Handlebars block or helper this import does not convert; "
                "rewrite it as plain text or {{User.UserAttributes.Name}}"
            )
            return raw
        variable = self.variable_for(expression)
        if variable is None or variable not in self.variables | CONTEXT_VARIABLES:
            known = ", ".join(sorted(self.variables | CONTEXT_VARIABLES))
            named = f"'{variable}'" if variable else "no profile column"
            notes.error(
                f"{where}: placeholder {raw} maps to {named}, which is not a template variable here "
                f"(known: {known}); mark the column `template: true` in the customers contract, or edit the text"
            )
            return raw
        self.used.add(variable)
        return f"{{{{ {variable}{filters} }}}}"

    @staticmethod
    def variable_for(expression: str) -> str | None:
        if expression in NAMED_FIELDS:
            return NAMED_FIELDS[expression]
        for prefix in ATTRIBUTE_PREFIXES:
            if expression.startswith(prefix) and len(expression) > len(prefix):
                return snake_case(expression[len(prefix) :]) or None
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass
class ContentReader:
    """One message's content (a campaign's InAppMessage, or an in-app template) as our content."""

    placeholders: Placeholders
    notes: Notes
    links: list[tuple[str, str]] = field(default_factory=list)  # (where, deep link) to check
    styles: set[str] = field(default_factory=set)

    def content(self, message: Mapping[str, Any], where: str) -> dict[str, Any] | None:
        layout = str(message.get("Layout") or "BOTTOM_BANNER")
        if layout not in LAYOUTS:
            self.notes.error(f"{where}.Layout: {layout!r} is not an in-app layout ({', '.join(sorted(LAYOUTS))})")
            return None
        items = [i for i in message.get("Content") or [] if isinstance(i, Mapping)]
        body_only = _text(message.get("Body"))
        if not items and body_only is None:
            self.notes.error(f"{where}: the message has no Content and no Body")
            return None
        first: Mapping[str, Any] = items[0] if items else {"BodyConfig": {"Body": body_only}}
        if len(items) > 1:
            dropped = [f"{i + 2}: {self._headline(item)!r}" for i, item in enumerate(items[1:])]
            self.notes.warn(
                f"{where}: {layout} has {len(items)} content items; one is kept (the first), "
                f"dropped: {'; '.join(dropped)}"
            )
        if items and body_only and body_only != (first.get("BodyConfig") or {}).get("Body"):
            self.notes.warn(f"{where}.Body: not used; the Content item's BodyConfig.Body is the text")
        content = self._item(first, f"{where}.Content[0]", layout)
        custom = message.get("CustomConfig") or {}
        if isinstance(custom, Mapping) and custom:
            content["data"] = {
                str(k): self.placeholders.convert(str(v), f"{where}.CustomConfig.{k}", self.notes)
                for k, v in custom.items()
            }
        return content

    @staticmethod
    def _headline(item: Mapping[str, Any]) -> str:
        header = (item.get("HeaderConfig") or {}).get("Header")
        return str(header or (item.get("BodyConfig") or {}).get("Body") or "(no text)")[:40]

    def _item(self, item: Mapping[str, Any], where: str, layout: str) -> dict[str, Any]:
        header_config = item.get("HeaderConfig") or {}
        body_config = item.get("BodyConfig") or {}
        self._style(item, ("BackgroundColor",), "")
        self._style(header_config, ("TextColor", "Alignment"), "HeaderConfig.")
        self._style(body_config, ("TextColor", "Alignment"), "BodyConfig.")
        content: dict[str, Any] = {
            "layout": layout,
            "header": self.placeholders.convert(str(header_config.get("Header") or ""), f"{where}.Header", self.notes),
            "body": self.placeholders.convert(str(body_config.get("Body") or ""), f"{where}.Body", self.notes),
        }
        if item.get("ImageUrl"):
            content["image_url"] = self.placeholders.convert(str(item["ImageUrl"]), f"{where}.ImageUrl", self.notes)
        buttons = [self._button(item.get(k), where, k) for k in ("PrimaryBtn", "SecondaryBtn") if item.get(k)]
        if any(buttons):
            content["buttons"] = [b for b in buttons if b]
        return content

    def _style(self, config: Mapping[str, Any], keys: tuple[str, ...], prefix: str) -> None:
        self.styles.update(f"{prefix}{k}" for k in keys if config.get(k) not in (None, ""))

    def _button(self, button: Any, item_where: str, name: str) -> dict[str, Any] | None:
        where = f"{item_where}.{name}"
        default = button.get("DefaultConfig") if isinstance(button, Mapping) else None
        if not isinstance(default, Mapping) or not default.get("Text"):
            self.notes.warn(f"{where}: dropped, it has no DefaultConfig.Text")
            return None
        self._style(default, ("BackgroundColor", "TextColor", "BorderRadius"), f"{name}.")
        action = str(default.get("ButtonAction") or "CLOSE")
        if action not in ACTIONS:
            self.notes.error(f"{where}.DefaultConfig.ButtonAction: {action!r} is not LINK, DEEP_LINK or CLOSE")
            return None
        out: dict[str, Any] = {
            "text": self.placeholders.convert(str(default["Text"]), f"{where}.Text", self.notes),
            "action": action,
        }
        link = _text(default.get("Link"))
        if action == "CLOSE":
            if link:
                self.notes.warn(f"{where}: a CLOSE button's Link {link!r} is not kept")
        elif not link:
            self.notes.error(f"{where}.DefaultConfig.Link: a {action} button needs a link")
            return None
        else:
            out["link"] = self.placeholders.convert(link, f"{where}.Link", self.notes)
            if action == "DEEP_LINK":
                self.links.append((f"{where}.Link", out["link"]))
        self._overrides(button, default, where)
        return out

    def _overrides(self, button: Mapping[str, Any], default: Mapping[str, Any], where: str) -> None:
        differing = []
        for platform in ("IOS", "Android", "Web"):
            override = button.get(platform)
            if not isinstance(override, Mapping):
                continue
            action, link = override.get("ButtonAction"), override.get("Link")
            if (action or default.get("ButtonAction"), link or default.get("Link")) != (
                default.get("ButtonAction"),
                default.get("Link"),
            ):
                differing.append(f"{platform} {action or ''} {link or ''}".strip())
        if differing:
            self.notes.warn(
                f"{where}: per-platform actions not kept (one action for every platform): {'; '.join(differing)}"
            )

    def style_warning(self) -> None:
        """One warning for all the styling a campaign's messages lose."""
        if self.styles:
            self.notes.warn(
                "styling is not kept (the app styles its inbox messages): " + ", ".join(sorted(self.styles))
            )
