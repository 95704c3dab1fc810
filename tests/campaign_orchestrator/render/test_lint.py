"""Lint before the run: `campaigns validate` on a copy of the repository's marketing folder with faults added."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign_orchestrator.cli import main
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, template_samples, template_variables, vocabulary
from campaign_orchestrator.render.lint import lint_templates


@pytest.fixture
def marketing(repo: Path, tmp_path: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    return target


def lint(repo: Path, marketing: Path) -> list[str]:
    contracts = load_contracts(repo / "data_contracts")
    defs = load_definitions(marketing, vocabulary(contracts, frozenset({"beta_testers", "vip_list"})))
    return lint_templates(defs, template_variables(contracts), template_samples(contracts))


def add_template(marketing: Path, text: str) -> None:
    (marketing / "templates" / "zz_lint_case.yaml").write_text(text, encoding="utf-8")


def test_the_repository_templates_are_clean(repo: Path, marketing: Path) -> None:
    assert lint(repo, marketing) == []


def test_lint_reports_every_problem_with_file_and_place(repo: Path, marketing: Path) -> None:
    add_template(
        marketing,
        """
templates:
  - id: lint_a
    channel: push
    content:
      title: "{{ first_name }}, we have news about your {{ tier }} account and a long title"
      body: "Hello"
      deep_link: "shop://checkout/legacy"
  - id: lint_b
    channel: push
    defaults: {first_name: there}
    content:
      title: "Hi {{ first_name }}"
      body: "Your order"
      deep_link: "shop://product/{{ first_name }}/reviews"
    locales:
      de:
        title: "Hallo {{ first_name }}"
  - id: lint_c
    channel: in_app
    defaults: {first_name: there}
    content:
      header: "Hi {{ first_name }}"
      body: "{{ first_name|nofilter }}"
  - id: lint_d
    channel: push
    defaults: {first_name: there}
    content:
      title: "Hi {{ first_name }}"
      body: "Hello {{ first_name.__class__ }}"
""",
    )
    problems = lint(repo, marketing)
    text = "\n".join(problems)
    where = "zz_lint_case.yaml:templates"
    # a retired route, named with its retirement date
    assert f"{where}[0]: content.deep_link: deep link route 'shop://checkout/legacy' was retired on 2026-10-01" in text
    # lint_b: translation without body, a link no route matches when rendered, all in one pass
    assert f"{where}[1]: locales.de: missing body (the default content has one)" in text
    assert f"{where}[1]: content.deep_link: deep link not a route in marketing/deep_links.yaml" in text
    # unknown filter and attribute access: compile errors with the field and line
    assert f"{where}[2]: content.body: line 1: No filter named 'nofilter'" in text
    assert f"{where}[3]: content.body: line 1: attribute access (a.b) is not allowed" in text


def test_variables_need_a_default_or_must_be_required(repo: Path, marketing: Path) -> None:
    add_template(
        marketing,
        """
id: lint_defaults
channel: push
defaults: {first_name: there}
content:
  title: "Hi {{ first_name }}"
  body: "Your {{ tier }} points"
""",
    )
    problems = lint(repo, marketing)
    assert problems == [
        f"{marketing}/templates/zz_lint_case.yaml: content: no default for ['tier']; a customer without a value would "
        "get empty text (add them under defaults, or under required to not send without them)"
    ]


def test_a_translation_inheriting_a_default_in_another_language_is_reported(repo: Path, marketing: Path) -> None:
    add_template(
        marketing,
        """
id: lint_inherited
channel: push
default_locale: en
defaults: {first_name: there, tier: ""}
content:
  title: "Hi {{ first_name }}"
  body: "Your points{{ tier }}"
locales:
  en-GB:
    title: "Hiya {{ first_name }}"
    body: "Your points{{ tier }}"
  de:
    title: "Hallo {{ first_name }}"
    body: "Deine Punkte{{ tier }}"
  fr:
    defaults: {first_name: vous}
    title: "Bonjour {{ first_name }}"
    body: "Vos points{{ tier }}"
""",
    )
    problems = lint(repo, marketing)
    # only German shows an English word; en-GB is English, French has its own, "" is no language
    assert problems == [
        f"{marketing}/templates/zz_lint_case.yaml: template 'lint_inherited', locales.de: variable 'first_name' "
        "falls back to the default 'there', written in 'en'; give locales.de.defaults a first_name in 'de'"
    ]


def test_fields_over_the_channel_limits_with_the_declared_defaults(repo: Path, marketing: Path) -> None:
    add_template(
        marketing,
        """
id: lint_limits
channel: push
defaults: {first_name: "our most valued and very dear customer"}
content:
  title: "A very warm thank-you to you, {{ first_name }}"
  body: "ok"
""",
    )
    assert lint(repo, marketing) == [
        f"{marketing}/templates/zz_lint_case.yaml: content.title: 68 characters, over the push limit of 65 "
        "(rendered with the declared defaults)"
    ]


def test_settings_limits_apply_to_lint(repo: Path, marketing: Path) -> None:
    settings = marketing / "settings.yaml"
    settings.write_text(settings.read_text() + "\nlimits:\n  push: {title: 20}\n")
    problems = lint(repo, marketing)
    assert problems and all("over the push limit of 20" in p for p in problems)


def test_a_campaign_requiring_a_locale_its_template_lacks(repo: Path, marketing: Path) -> None:
    path = marketing / "campaigns" / "europe_newsletter.yaml"
    path.write_text(path.read_text().replace("locales: [en, de, fr, es]", "locales: [en, de, fr, es, it]"))
    assert lint(repo, marketing) == [f"{path}: locales: template 'europe_newsletter' has no content for ['it']"]


def test_validate_cli_fails_with_the_list(repo: Path, marketing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_template(
        marketing,
        """
id: lint_cli
channel: push
content: {title: "Hi {{ email }}", body: "b", deep_link: "shop://nowhere"}
""",
    )
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["validate", "--config", str(marketing)])
    assert result.exit_code == 1
    assert "problem(s) in the templates" in result.output
    assert "content.title: unknown variables ['email']" in result.output
    assert "content.deep_link: deep link not a route" in result.output
