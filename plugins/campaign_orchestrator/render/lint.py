"""Checks on templates before any data moves: what `campaigns validate` and the DAG's first task run.

Compiling finds syntax errors, refused constructs, unknown variables and dead constant links.
Lint adds what needs a judgement about content: translations missing text the default has,
variables with no declared default, campaigns whose required locales a template lacks, and a
render of every locale with the declared defaults against the channel's limits and the
deep-link registry. Per-customer overflows still happen at render time and go to render_errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from campaign_orchestrator.definitions.templates import missing_translations, normalise_locale
from campaign_orchestrator.render.compiled import CONTEXT_VARIABLES, CompiledTemplate, RenderError, render_policy

PLACEHOLDER = "sample"
CONTEXT_SAMPLES = {
    "campaign_id": "sample_campaign",
    "customer_id": "C0000001",
    "variant": "default",
    "send_at": dt.datetime(2026, 1, 15, 18, 30),
}


def lint_templates(
    definitions: Any,
    template_variables: set[str],
    samples: Mapping[str, Any] | None = None,
    required_variables: frozenset[str] = frozenset(),
    only: set[str] | None = None,
) -> list[str]:
    """Every problem as 'file: templates[i]: where: what'; an empty list means the templates are fine."""
    policy = render_policy(definitions)
    problems: list[str] = []
    compiled_ok: dict[str, CompiledTemplate] = {}
    known = {**CONTEXT_SAMPLES, **(samples or {})}
    for template in definitions.templates.values():
        if only is not None and template.id not in only:
            continue
        where = definitions.sources.get(f"templates:{template.id}", f"template {template.id}")
        try:
            compiled = CompiledTemplate(template, template_variables, policy)
        except RenderError as exc:
            problems.extend(f"{where}: {p}" for p in exc.problems)
            continue
        problems.extend(f"{where}: {p}" for p in missing_translations(template))
        problems.extend(f"{where}: {p}" for p in _lint_locales(compiled, known, required_variables))
        language = template.default_locale or definitions.settings.default_locale
        problems.extend(f"{where}: {p}" for p in inherited_defaults(template, compiled, language))
        compiled_ok[template.id] = compiled
    for campaign in definitions.campaigns.values():
        if only is None or set(campaign.variant_templates.values()) & only:
            problems.extend(_lint_campaign_locales(definitions, campaign, compiled_ok))
    return problems


def _language(tag: str) -> str:
    return normalise_locale(tag).split("-")[0]


def inherited_defaults(template: Any, compiled: CompiledTemplate, default_locale: str) -> list[str]:
    """A translation that would show a default written in another language: 'Hallo there'."""
    problems = []
    written_in = _language(default_locale)
    for tag, block in sorted(template.locales.items()):
        if _language(tag) == written_in:
            continue
        own = block.get("defaults", {})
        locale = compiled.locales[normalise_locale(tag)]
        for name in sorted(locale.variables):
            value = template.defaults.get(name)
            if name not in own and isinstance(value, str) and value.strip():
                problems.append(
                    f"template {template.id!r}, locales.{tag}: variable {name!r} falls back to the default "
                    f"{value!r}, written in {written_in!r}; give locales.{tag}.defaults a {name} in {_language(tag)!r}"
                )
    return problems


def _lint_locales(
    compiled: CompiledTemplate, known: Mapping[str, Any], required_variables: frozenset[str]
) -> list[str]:
    """Per locale: variables without a default, and a render with the declared defaults."""
    problems = []
    for tag, locale in sorted(compiled.locales.items()):
        label = "content" if locale is compiled.default else f"locales.{tag}"
        undeclared = (
            locale.variables - locale.defaults.keys() - locale.required - required_variables - CONTEXT_VARIABLES
        )
        if undeclared:
            problems.append(
                f"{label}: no default for {sorted(undeclared)}; a customer without a value would "
                "get empty text (add them under defaults, or under required to not send without them)"
            )
        sample = {name: locale.defaults.get(name) or known.get(name, PLACEHOLDER) for name in locale.variables}
        try:
            compiled.render_locale(locale, sample)
        except RenderError as exc:
            problems.append(f"{label}.{exc} (rendered with the declared defaults)")
    return problems


def _lint_campaign_locales(definitions: Any, campaign: Any, compiled_ok: Mapping[str, CompiledTemplate]) -> list[str]:
    """The locales a campaign says its templates must speak, where they do not."""
    problems = []
    for template_id in campaign.variant_templates.values():
        checked = compiled_ok.get(template_id)
        if checked is None:
            continue
        lacking = [loc for loc in campaign.locales if not checked.speaks(loc)]
        if lacking:
            where = definitions.sources.get(f"campaigns:{campaign.id}", f"campaign {campaign.id}")
            problems.append(f"{where}: locales: template {template_id!r} has no content for {lacking}")
    return problems
