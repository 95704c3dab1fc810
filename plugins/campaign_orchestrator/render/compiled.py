"""Templates compiled once per (template, locale) and rendered per customer into a payload.

A customer gets the content of their locale ('fr-ca'), else of its language ('fr'), else the
template's default content. Missing or empty variables take the declared default. Each
rendered field is checked against the channel's limits and, for links, against the deep-link
registry; a message that fails any check raises RenderError naming the field, never the
customer's values, and is not sent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.runtime import Context

from campaign_orchestrator.definitions.deep_links import DeepLinkRegistry
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.definitions.templates import (
    DEFAULT_LIMITS,
    HTML_FIELDS,
    Template,
    normalise_locale,
    template_fields,
)
from campaign_orchestrator.errors import CampaignError
from campaign_orchestrator.render.sandbox import (
    CURRENCY_KEY,
    LOCALE_KEY,
    MAX_FIELD_CHARS,
    MAX_SOURCE_CHARS,
    TIMEZONE_KEY,
    VETTED_FILTERS,
    OverBudget,
    TemplateRefused,
    build_environment,
    check_grammar,
    check_shape,
    render_budget,
)

CONTEXT_VARIABLES = frozenset({"campaign_id", "customer_id", "variant", "send_at"})
# Columns read for every message: the fallback chain and the vetted filters need them.
PROFILE_CONTEXT = ("locale", "timezone", "currency")
DEFAULT_MAX_MESSAGE_MS = 50.0


class RenderError(CampaignError, ValueError):
    """A template cannot be compiled, or one message cannot be rendered; `field` says where."""

    def __init__(
        self, message: str, field: str = "", problems: list[str] | None = None, over_budget: bool = False
    ) -> None:
        self.field = field
        self.over_budget = over_budget  # stopped by the time budget (the caller may try once more)
        self.problems = problems or [message]  # compile errors: each on its own
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class RenderPolicy:
    """What a rendered message must satisfy; from settings."""

    limits: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: DEFAULT_LIMITS)
    default_locale: str = "en"
    max_message_ms: float = DEFAULT_MAX_MESSAGE_MS
    deep_links: DeepLinkRegistry | None = None

    def limit(self, channel: str, path: str) -> int | None:
        limits = self.limits.get(channel, {})
        name = "button_text" if path.startswith("buttons.") and path.endswith(".text") else path
        return limits.get(name)


def field_limit_kind(path: str) -> str:
    """'link' for deep links and button links, 'url' for images, '' otherwise."""
    if path == "deep_link" or (path.startswith("buttons.") and path.endswith(".link")):
        return "link"
    if path == "image_url":
        return "url"
    return ""


@dataclass
class _Field:
    path: str
    compiled: jinja2.Template | None
    constant: str | None
    limit: int | None
    kind: str  # 'link', 'url' or ''
    html: bool = False


class CompiledLocale:
    """One locale's fields, compiled; constant fields are not rendered at all."""

    def __init__(self, template: Template, locale: str | None, allowed: set[str], policy: RenderPolicy) -> None:
        self.locale = locale or normalise_locale(template.default_locale or policy.default_locale)
        self.channel = template.channel
        self.defaults = template.defaults_for(locale)
        self.required = frozenset(template.required)
        content = template.typed_content(locale)
        self.static: dict[str, Any] = {}
        if template.channel == "in_app":
            self.static["layout"] = content.layout
        self.button_actions = [b.action for b in getattr(content, "buttons", [])]
        self.fields: list[_Field] = []
        self.variables: set[str] = set()
        self.uses_vetted_filters = False
        problems: list[str] = []
        where = f"locales.{locale}." if locale else "content."
        plain, html = build_environment(autoescape=False), build_environment(autoescape=True)
        self._environments = (plain, html)
        for path, source in template_fields(content):
            try:
                self.fields.append(self._compile_field(path, source, allowed, policy))
            except RenderError as exc:
                problems.append(f"{where}{exc}")
        for name in [*self.defaults, *self.required]:
            if name not in allowed:
                problems.append(f"{where if locale else ''}{name}: under defaults or required, not a template variable")
        if problems:
            raise RenderError(f"template {template.id!r}: " + "; ".join(problems), problems=problems)

    def _compile_field(self, path: str, source: str, allowed: set[str], policy: RenderPolicy) -> _Field:
        """One field compiled and checked; RenderError says what is wrong with it, at `path`."""
        plain, html = self._environments
        env = html if path in HTML_FIELDS else plain
        parsed, used = _parse(env, path, source)
        unknown = used - allowed
        if unknown:
            raise RenderError(f"unknown variables {sorted(unknown)}; allowed {sorted(allowed)}", path)
        try:
            compiled = env.from_string(parsed) if _dynamic(parsed) else None
        except jinja2.TemplateSyntaxError as exc:  # unknown filters and tests are found here
            raise RenderError(f"line {exc.lineno}: {exc.message}", path) from None
        except (RecursionError, SyntaxError, MemoryError, OverflowError) as exc:  # past the shape checks
            raise RenderError(f"cannot be compiled ({type(exc).__name__}): simplify it", path) from None
        if any(f.name in VETTED_FILTERS for f in parsed.find_all(jinja2.nodes.Filter)):
            self.uses_vetted_filters = True
        self.variables |= used
        constant = None if compiled is not None else _constant_text(parsed)
        kind = field_limit_kind(path)
        if kind == "link" and path.startswith("buttons."):
            kind = "url" if self.button_actions[int(path.split(".")[1])] == "LINK" else "link"
        if constant is not None and kind:
            _check_link(path, kind, constant, policy)
        limit = policy.limit(self.channel, path)
        return _Field(path, compiled, constant, limit, kind, path in HTML_FIELDS)


def _parse(env: jinja2.Environment, path: str, source: str) -> tuple[jinja2.nodes.Template, set[str]]:
    """The field's syntax tree within the sandbox's grammar and limits, and every name it reads
    (`self` and Jinja's other built-in names included: only data variables may be named)."""
    if len(source) > MAX_SOURCE_CHARS:
        raise RenderError(f"{len(source)} characters of template, over {MAX_SOURCE_CHARS}", path)
    try:
        check_shape(env, source)
        parsed = env.parse(source)
        check_grammar(parsed)
        used = meta.find_undeclared_variables(parsed) | {
            n.name for n in parsed.find_all(jinja2.nodes.Name) if n.ctx == "load"
        }
    except jinja2.TemplateSyntaxError as exc:  # also unknown filters and tests
        raise RenderError(f"line {exc.lineno}: {exc.message}", path) from None
    except TemplateRefused as exc:
        raise RenderError(str(exc), path) from None
    except (RecursionError, SyntaxError, MemoryError, OverflowError) as exc:  # past the shape checks
        raise RenderError(f"cannot be compiled ({type(exc).__name__}): simplify it", path) from None
    return parsed, used


def _dynamic(parsed: jinja2.nodes.Template) -> bool:
    return not all(isinstance(n, jinja2.nodes.Output) for n in parsed.body) or any(
        not isinstance(child, jinja2.nodes.TemplateData)
        for n in parsed.body
        for child in n.nodes  # type: ignore[attr-defined]
    )


def _constant_text(parsed: jinja2.nodes.Template) -> str:
    return "".join(child.data for n in parsed.body for child in n.nodes)  # type: ignore[attr-defined]


class CompiledTemplate:
    """A template's locales compiled once; `render` fills the right one for one customer."""

    def __init__(self, template: Template, allowed_variables: set[str], policy: RenderPolicy | None = None) -> None:
        self.template = template
        self.policy = policy or RenderPolicy()
        self.allowed = set(allowed_variables) | CONTEXT_VARIABLES
        problems: list[str] = []
        self.locales: dict[str, CompiledLocale] = {}
        default: CompiledLocale | None = None
        for locale in (None, *template.locales):
            try:
                compiled = CompiledLocale(template, locale, self.allowed, self.policy)
            except RenderError as exc:
                problems.extend(exc.problems)
                continue
            if locale is None:
                default = compiled
            else:
                self.locales[normalise_locale(locale)] = compiled
        if problems or default is None:
            raise RenderError(f"template {template.id!r}: " + "; ".join(problems), problems=problems)
        self.default = default
        self.locales.setdefault(default.locale, default)
        self.variables: set[str] = set().union(*(c.variables for c in self.locales.values()))
        self._chosen: dict[str | None, CompiledLocale] = {}
        self._max_s = self.policy.max_message_ms / 1000.0

    def choose(self, customer_locale: str | None) -> CompiledLocale:
        """The customer's locale, else its language, else the default content."""
        chosen = self._chosen.get(customer_locale)
        if chosen is None:
            tag = normalise_locale(customer_locale)
            chosen = self.locales.get(tag) or self.locales.get(tag.split("-")[0]) or self.default
            self._chosen[customer_locale] = chosen
        return chosen

    def speaks(self, locale: str) -> bool:
        """Whether customers of this locale get content written for their language."""
        tag = normalise_locale(locale)
        return tag in self.locales or tag.split("-")[0] in self.locales

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The payload for one customer; RenderError names the field that failed, not the values."""
        return self.render_locale(self.choose(values.get("locale")), values)

    def render_locale(self, compiled: CompiledLocale, values: Mapping[str, Any]) -> dict[str, Any]:
        # CPU time of this thread, not wall time: a busy machine must not turn messages into errors.
        # The budget stops the render where it is; a first overrun gets one more try, since the
        # first message of a locale also loads its CLDR data.
        for last in (False, True):
            started = time.thread_time()
            try:
                with render_budget(self._max_s):
                    return self._fill(compiled, values)
            except RenderError as exc:
                if not exc.over_budget:
                    raise
                if last:
                    spent = (time.thread_time() - started) * 1000
                    raise RenderError(
                        f"stopped after {spent:.0f} ms, over the limit of {self.policy.max_message_ms:g} ms", exc.field
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _fill(self, compiled: CompiledLocale, values: Mapping[str, Any]) -> dict[str, Any]:
        context = _context(compiled, values)
        payload: dict[str, Any] = dict(compiled.static)
        policy = self.policy
        # One Jinja context per message and environment, shared by its fields: the grammar allows
        # no `set`, loops or blocks, so rendering a field never changes the context.
        plain_env, html_env = compiled._environments
        contexts: dict[bool, Context] = {}
        for f in compiled.fields:
            if f.compiled is None:
                text = f.constant or ""
            else:
                ctx = contexts.get(f.html)
                if ctx is None:
                    ctx = contexts[f.html] = Context(html_env if f.html else plain_env, context, None, {})
                try:
                    # The render function itself: Template.render would rewrite tracebacks on error,
                    # compiling code per failure (slow, and noise for the audit in the tests).
                    text = "".join(f.compiled.root_render_func(ctx))
                except Exception as exc:
                    raise _render_failure(f, exc) from None
                if len(text) > MAX_FIELD_CHARS:
                    raise RenderError(f"{len(text)} characters, over the field limit of {MAX_FIELD_CHARS}", f.path)
            if f.limit is not None and len(text) > f.limit:
                raise RenderError(f"{len(text)} characters, over the {compiled.channel} limit of {f.limit}", f.path)
            if f.kind and f.compiled is not None:
                _check_link(f.path, f.kind, text, policy)
            _place(payload, f.path, text, compiled.button_actions)
        payload["locale"] = compiled.locale
        return payload


def _context(compiled: CompiledLocale, values: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a locale reads, a missing or empty one taking its default (or failing when required)."""
    defaults = compiled.defaults
    context: dict[str, Any] = {}
    for name in compiled.variables:
        value = values.get(name)
        if value is None or value == "":
            if name in compiled.required:
                raise RenderError("no value, and the template requires one", name)
            value = defaults.get(name, "")
        context[name] = value
    if compiled.uses_vetted_filters:
        context[TIMEZONE_KEY] = values.get("timezone")
        context[CURRENCY_KEY] = values.get("currency")
        context[LOCALE_KEY] = _format_locale(values.get("locale"), compiled.locale)
    return context


def _render_failure(f: _Field, exc: Exception) -> RenderError:
    """The RenderError for a field whose render raised; it never quotes the customer's values."""
    if isinstance(exc, OverBudget):
        return RenderError("over the time budget", f.path, over_budget=True)
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return RenderError(f"refused by the sandbox ({exc})", f.path)
    if isinstance(exc, jinja2.exceptions.UndefinedError):
        return RenderError(str(exc), f.path)
    # Filters raise their own kinds (babel's UnknownCurrencyError, ...), whose text can quote a
    # customer's value: keep only its kind.
    return RenderError(f"{type(exc).__name__} while rendering", f.path)


def _format_locale(customer_locale: str | None, content_locale: str) -> str:
    """Dates and money follow the customer's locale when the text is in their language
    ('en-gb' for English text), else the text's own ('de' for German text to an 'fr' customer)."""
    tag = normalise_locale(customer_locale)
    return tag if tag and tag.split("-")[0] == content_locale.split("-")[0] else content_locale


def _check_link(path: str, kind: str, text: str, policy: RenderPolicy) -> None:
    if kind == "url":
        if not text.startswith("https://"):
            raise RenderError("must be an https:// URL", path)
        return
    if policy.deep_links is not None:
        reason = policy.deep_links.check(text)
        if reason is not None:
            raise RenderError(f"deep link {reason}", path)


def _place(payload: dict[str, Any], path: str, text: str, actions: list[str]) -> None:
    if "." not in path:
        payload[path] = text
        return
    head, key = path.split(".", 1)
    if head == "data":
        payload.setdefault("data", {})[key] = text
        return
    index, attr = key.split(".")
    buttons: list[dict[str, Any]] = payload.setdefault("buttons", [])
    i = int(index)
    while len(buttons) <= i:
        buttons.append({"action": actions[len(buttons)]})
    buttons[i][attr] = text


def render_policy(definitions: Definitions) -> RenderPolicy:
    """Limits (settings over the built-in ones), default locale, time budget and deep-link registry."""
    settings = definitions.settings
    overrides: dict[str, dict[str, int]] = {str(ch): v for ch, v in settings.limits.items()}
    limits = {ch: {**base, **overrides.get(ch, {})} for ch, base in DEFAULT_LIMITS.items()}
    return RenderPolicy(
        limits=limits,
        default_locale=settings.default_locale,
        max_message_ms=settings.render.max_message_ms,
        deep_links=definitions.deep_links,
    )
