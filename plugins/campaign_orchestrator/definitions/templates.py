"""What a message template is: content per channel, per-locale translations and variable defaults.

The content shapes follow what the destinations take: push (Braze-style title, body, deep link,
image and key-value data), in-app (Pinpoint's layout, header, body, image, up to two buttons,
custom data) and email (subject, preheader, text and HTML bodies). Every string may hold Jinja
placeholders; `layout` and button actions are plain values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from campaign_orchestrator.definitions.base import ID_PATTERN, StrictModel
from campaign_orchestrator.definitions.campaigns import Channel

LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
InAppLayout = Literal["BOTTOM_BANNER", "TOP_BANNER", "MIDDLE_BANNER", "OVERLAYS", "MOBILE_FEED", "CAROUSEL"]


class Button(StrictModel):
    text: str
    action: Literal["CLOSE", "LINK", "DEEP_LINK"] = "CLOSE"
    link: str | None = Field(default=None, description="https URL for LINK, an app route for DEEP_LINK")

    @model_validator(mode="after")
    def _link_matches_action(self) -> Button:
        if self.action == "CLOSE" and self.link is not None:
            raise ValueError("a CLOSE button takes no link")
        if self.action != "CLOSE" and not self.link:
            raise ValueError(f"a {self.action} button needs a link")
        return self


class PushContent(StrictModel):
    title: str
    body: str
    deep_link: str | None = None
    image_url: str | None = None
    data: dict[str, str] = Field(default_factory=dict, description="custom key-value pairs for the app")


class InAppContent(StrictModel):
    layout: InAppLayout = "BOTTOM_BANNER"
    header: str
    body: str
    image_url: str | None = None
    buttons: list[Button] = Field(default_factory=list, max_length=2, description="at most two")
    data: dict[str, str] = Field(default_factory=dict, description="custom key-value pairs for the app")


class EmailContent(StrictModel):
    subject: str
    preheader: str | None = None
    text: str
    html: str | None = Field(default=None, description="variables are HTML-escaped here")


CONTENT_MODELS: dict[str, type[StrictModel]] = {"push": PushContent, "in_app": InAppContent, "email": EmailContent}
# Fields a translation must carry when the default content has them: a German title over an
# English body is a broken message, not a fallback.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "push": ("title", "body"),
    "in_app": ("header", "body"),
    "email": ("subject", "preheader", "text", "html"),
}
# Characters per rendered field (push payload_bytes: the JSON payload; APNs takes 4 KB in all).
DEFAULT_LIMITS: dict[str, dict[str, int]] = {
    "push": {"title": 65, "body": 178, "payload_bytes": 3800},
    "in_app": {"header": 64, "body": 150, "button_text": 30},
    "email": {"subject": 150, "preheader": 140},
}
HTML_FIELDS = frozenset({"html"})


def normalise_locale(value: str | None) -> str:
    """'de_AT', 'DE-at' -> 'de-at': the form locale keys are compared in."""
    return (value or "").strip().replace("_", "-").lower()


class Template(StrictModel):
    id: str = Field(pattern=ID_PATTERN)
    channel: Channel
    description: str | None = None
    default_locale: str | None = Field(
        default=None, pattern=LOCALE_PATTERN, description="language of `content`; settings.default_locale if unset"
    )
    defaults: dict[str, str] = Field(default_factory=dict, description="value used when a variable is missing")
    required: list[str] = Field(
        default_factory=list, description="variables without which the message is not sent (a render error)"
    )
    content: dict[str, Any]
    locales: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="translations by locale ('de', 'fr-ca'): the content fields, plus optional `defaults`",
    )

    @field_validator("locales")
    @classmethod
    def _locale_keys(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import re

        for key in value:
            if not re.fullmatch(LOCALE_PATTERN, key):
                raise ValueError(f"{key!r} is not a locale such as 'de' or 'fr-CA'")
        return value

    @model_validator(mode="after")
    def _content_for_channel(self) -> Template:
        model = CONTENT_MODELS[self.channel]
        model.model_validate(self.content)
        for locale, block in self.locales.items():
            merged = merge_locale(self.content, {k: v for k, v in block.items() if k != "defaults"})
            try:
                model.model_validate(merged)
            except ValueError as exc:
                raise ValueError(f"locales.{locale}: {exc}") from None
            extra = block.get("defaults", {})
            if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
                raise ValueError(f"locales.{locale}.defaults: must map variable names to text")
        return self

    def typed_content(self, locale: str | None = None) -> Any:
        """The content model for one locale (None: the default), translations merged over the default."""
        block = {} if locale is None else self.locales[locale]
        merged = merge_locale(self.content, {k: v for k, v in block.items() if k != "defaults"})
        return CONTENT_MODELS[self.channel].model_validate(merged)

    def defaults_for(self, locale: str | None) -> dict[str, str]:
        if locale is None:
            return dict(self.defaults)
        return {**self.defaults, **self.locales[locale].get("defaults", {})}


def merge_locale(default: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """Translation fields over the default content; buttons and data merge item by item."""
    merged = dict(default)
    for key, value in block.items():
        if key == "buttons" and isinstance(value, list) and isinstance(default.get("buttons"), list):
            base = default["buttons"]
            merged[key] = [
                {**(base[i] if i < len(base) and isinstance(base[i], dict) else {}), **item}
                if isinstance(item, dict)
                else item
                for i, item in enumerate(value)
            ]
        elif key == "data" and isinstance(value, dict) and isinstance(default.get("data"), dict):
            merged[key] = {**default["data"], **value}
        else:
            merged[key] = value
    return merged


def template_fields(content: BaseModel) -> Iterator[tuple[str, str]]:
    """(path, text) of every string that may hold placeholders, e.g. ('buttons.0.link', 'shop://...')."""
    for name, value in content:
        if name in ("layout",) or value is None:
            continue
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, dict):
            for key, text in value.items():
                yield f"{name}.{key}", text
        elif isinstance(value, list):
            for i, button in enumerate(value):
                yield f"{name}.{i}.text", button.text
                if button.link is not None:
                    yield f"{name}.{i}.link", button.link


def missing_translations(template: Template) -> list[str]:
    """'locales.de: missing body' for text the default content has and a translation lacks."""
    problems = []
    default = template.content
    for locale, block in template.locales.items():
        for name in TEXT_FIELDS[template.channel]:
            if default.get(name) is not None and name not in block:
                problems.append(f"locales.{locale}: missing {name} (the default content has one)")
        default_buttons = default.get("buttons") or []
        block_buttons = block.get("buttons")
        for i, _ in enumerate(default_buttons):
            if not isinstance(block_buttons, list) or i >= len(block_buttons) or "text" not in block_buttons[i]:
                problems.append(f"locales.{locale}: missing buttons.{i}.text (the default content has one)")
    return problems
