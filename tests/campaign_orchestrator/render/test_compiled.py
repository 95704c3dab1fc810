from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from pydantic import ValidationError

from campaign_orchestrator.definitions.deep_links import DeepLinkRegistry, Route
from campaign_orchestrator.definitions.templates import Template
from campaign_orchestrator.render.compiled import CompiledTemplate, RenderError, RenderPolicy

VARS = {"first_name", "tier", "lifetime_value", "last_purchase_at", "country"}
REGISTRY = DeepLinkRegistry(
    routes=(
        Route(route="shop://orders"),
        Route(route="shop://product/{sku}"),
        Route(route="shop://checkout/legacy", active=False, retired_on=dt.date(2026, 10, 1)),
    ),
    path="marketing/deep_links.yaml",
)


def template(channel: str = "push", **spec: Any) -> Template:
    content = (
        spec.pop("content", None)
        or {
            "push": {"title": "Hi {{ first_name }}", "body": "b"},
            "in_app": {"header": "Hi {{ first_name }}", "body": "b"},
            "email": {"subject": "Hi {{ first_name }}", "text": "t"},
        }[channel]
    )
    return Template(id="t", channel=channel, content=content, **spec)


LOCALISED = template(
    defaults={"first_name": "there"},
    content={"title": "Hello {{ first_name }}", "body": "Shoes are back", "deep_link": "shop://orders"},
    locales={
        "de": {"defaults": {"first_name": "du"}, "title": "Hallo {{ first_name }}", "body": "Schuhe sind zurück"},
        "fr-ca": {"title": "Bonjour {{ first_name }}", "body": "Les souliers sont de retour"},
        "fr": {"title": "Bonjour {{ first_name }}", "body": "Les chaussures sont de retour"},
    },
)


@pytest.mark.parametrize(
    ("customer_locale", "title", "body", "locale"),
    [
        ("de-DE", "Hallo Ana", "Schuhe sind zurück", "de"),  # language of the locale
        ("de_AT", "Hallo Ana", "Schuhe sind zurück", "de"),  # underscore form
        ("fr-CA", "Bonjour Ana", "Les souliers sont de retour", "fr-ca"),  # exact locale first
        ("fr-FR", "Bonjour Ana", "Les chaussures sont de retour", "fr"),
        ("FR", "Bonjour Ana", "Les chaussures sont de retour", "fr"),
        ("ja-JP", "Hello Ana", "Shoes are back", "en"),  # no Japanese: the default content
        (None, "Hello Ana", "Shoes are back", "en"),
        ("", "Hello Ana", "Shoes are back", "en"),
    ],
)
def test_locale_fallback_chain(customer_locale, title, body, locale):
    out = CompiledTemplate(LOCALISED, VARS).render({"first_name": "Ana", "locale": customer_locale})
    assert (out["title"], out["body"], out["locale"]) == (title, body, locale)
    assert out["deep_link"] == "shop://orders"  # not translated: inherited from the default


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_variables_take_the_declared_default_of_the_chosen_locale(missing):
    t = CompiledTemplate(LOCALISED, VARS)
    assert t.render({"first_name": missing})["title"] == "Hello there"
    assert t.render({"first_name": missing, "locale": "de"})["title"] == "Hallo du"
    assert t.render({"first_name": missing, "locale": "fr"})["title"] == "Bonjour there"  # inherits defaults


def test_a_required_variable_that_is_missing_is_a_render_error():
    t = CompiledTemplate(
        template(
            "email",
            content={"subject": "You spent {{ lifetime_value|money }}", "text": "t"},
            required=["lifetime_value"],
        ),
        VARS,
    )
    with pytest.raises(RenderError, match="lifetime_value: no value, and the template requires one"):
        t.render({"lifetime_value": None})


def test_default_locale_of_the_content_comes_from_the_template_or_the_policy():
    t = CompiledTemplate(template(default_locale="de"), VARS)
    assert t.render({"first_name": "Ana"})["locale"] == "de"
    t = CompiledTemplate(template(), VARS, RenderPolicy(default_locale="es"))
    assert t.render({"first_name": "Ana", "locale": "es-MX"})["locale"] == "es"


def test_email_html_is_escaped_and_text_is_not():
    t = CompiledTemplate(
        template(
            "email",
            content={"subject": "{{ first_name }}", "text": "{{ first_name }}", "html": "<p>{{ first_name }}</p>"},
        ),
        VARS,
    )
    out = t.render({"first_name": "<script>alert(1)</script>"})
    assert out["html"] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert out["text"] == "<script>alert(1)</script>"


def test_in_app_payload_has_pinpoints_shape():
    t = CompiledTemplate(
        template(
            "in_app",
            content={
                "layout": "MIDDLE_BANNER",
                "header": "Hi {{ first_name }}",
                "body": "New checkout",
                "image_url": "https://cdn.example.com/x.png",
                "buttons": [
                    {"text": "Try", "action": "DEEP_LINK", "link": "shop://product/{{ tier }}"},
                    {"text": "Later", "action": "CLOSE"},
                ],
                "data": {"campaign": "{{ campaign_id }}"},
            },
            locales={
                "de": {
                    "header": "Hallo {{ first_name }}",
                    "body": "Neu",
                    "buttons": [{"text": "Los"}, {"text": "Später"}],
                }
            },
        ),
        VARS,
        RenderPolicy(deep_links=REGISTRY),
    )
    out = t.render({"first_name": "Ana", "tier": "gold", "campaign_id": "c1", "locale": "de"})
    assert out == {
        "layout": "MIDDLE_BANNER",
        "header": "Hallo Ana",
        "body": "Neu",
        "image_url": "https://cdn.example.com/x.png",
        "buttons": [
            {"action": "DEEP_LINK", "text": "Los", "link": "shop://product/gold"},
            {"action": "CLOSE", "text": "Später"},
        ],
        "data": {"campaign": "c1"},
        "locale": "de",
    }


def test_in_app_takes_at_most_two_buttons_and_links_match_actions():
    button = {"text": "x", "action": "CLOSE"}
    with pytest.raises(ValidationError, match="at most 2"):
        template("in_app", content={"header": "h", "body": "b", "buttons": [button] * 3})
    with pytest.raises(ValidationError, match="needs a link"):
        template("in_app", content={"header": "h", "body": "b", "buttons": [{"text": "x", "action": "LINK"}]})
    with pytest.raises(ValidationError, match="takes no link"):
        template(
            "in_app",
            content={"header": "h", "body": "b", "buttons": [{"text": "x", "action": "CLOSE", "link": "https://a"}]},
        )


def test_unknown_fields_and_missing_fields_per_channel():
    with pytest.raises(ValidationError, match="subject"):
        template("push", content={"title": "t", "body": "b", "subject": "s"})
    with pytest.raises(ValidationError, match="body"):
        template("push", content={"title": "t"})
    with pytest.raises(ValidationError, match=r"locales\.de"):
        template("push", locales={"de": {"subject": "x"}})


@pytest.mark.parametrize(
    ("path", "value", "limit_text"),
    [
        ("title", "x" * 66, "66 characters, over the push limit of 65"),
        ("body", "x" * 179, "179 characters, over the push limit of 178"),
    ],
)
def test_push_fields_over_the_channel_limit_are_render_errors(path, value, limit_text):
    t = CompiledTemplate(template(content={"title": "{{ first_name }}", "body": "{{ tier }}"}), VARS)
    values = {"first_name": "Ana", "tier": "gold", {"title": "first_name", "body": "tier"}[path]: value}
    with pytest.raises(RenderError, match=f"{path}: {limit_text}") as caught:
        t.render(values)
    assert caught.value.field == path
    assert value not in str(caught.value)


def test_limits_are_configurable_and_button_text_has_its_own():
    policy = RenderPolicy(limits={"push": {"title": 10}, "in_app": {"button_text": 5}})
    t = CompiledTemplate(template(content={"title": "{{ first_name }}", "body": "b"}), VARS, policy)
    assert t.render({"first_name": "Ana"})["title"] == "Ana"
    with pytest.raises(RenderError, match="over the push limit of 10"):
        t.render({"first_name": "Bartholomew"})
    t = CompiledTemplate(
        template(
            "in_app", content={"header": "h", "body": "b", "buttons": [{"text": "{{ first_name }}", "action": "CLOSE"}]}
        ),
        VARS,
        policy,
    )
    with pytest.raises(RenderError, match=r"buttons\.0\.text: 6 characters, over the in_app limit of 5"):
        t.render({"first_name": "Andrea"})


def test_constant_deep_links_are_checked_when_compiled():
    policy = RenderPolicy(deep_links=REGISTRY)
    CompiledTemplate(template(content={"title": "t", "body": "b", "deep_link": "shop://orders?src=push"}), VARS, policy)
    with pytest.raises(RenderError, match=r"deep_link: deep link not a route in marketing/deep_links.yaml"):
        CompiledTemplate(template(content={"title": "t", "body": "b", "deep_link": "shop://ordres"}), VARS, policy)
    with pytest.raises(RenderError, match=r"route 'shop://checkout/legacy' was retired on 2026-10-01"):
        CompiledTemplate(
            template(content={"title": "t", "body": "b", "deep_link": "shop://checkout/legacy"}), VARS, policy
        )


def test_rendered_deep_links_are_checked_per_message():
    policy = RenderPolicy(deep_links=REGISTRY)
    t = CompiledTemplate(template(content={"title": "t", "body": "b", "deep_link": "shop://{{ tier }}"}), VARS, policy)
    assert t.render({"tier": "orders"})["deep_link"] == "shop://orders"
    with pytest.raises(RenderError, match="deep_link: deep link not a route"):
        t.render({"tier": "product/a/b"})


def test_image_and_link_buttons_must_be_https():
    with pytest.raises(RenderError, match="image_url: must be an https:// URL"):
        CompiledTemplate(template(content={"title": "t", "body": "b", "image_url": "http://x/y.png"}), VARS)
    t = CompiledTemplate(
        template(
            "in_app",
            content={
                "header": "h",
                "body": "b",
                "buttons": [{"text": "go", "action": "LINK", "link": "{{ country }}"}],
            },
        ),
        VARS,
    )
    assert t.render({"country": "https://shop.example.com/de"})["buttons"][0]["link"] == "https://shop.example.com/de"
    with pytest.raises(RenderError, match=r"buttons\.0\.link: must be an https:// URL"):
        t.render({"country": "javascript:alert(1)"})


def test_vetted_filters_format_in_the_customers_zone_locale_and_currency():
    t = CompiledTemplate(
        template(
            "email",
            content={
                "subject": "{{ lifetime_value|money }} / {{ lifetime_value|number(1) }}",
                "text": "{{ last_purchase_at|local_date('long') }} {{ last_purchase_at|local_datetime('HH:mm') }}",
            },
            locales={
                "de": {"subject": "{{ lifetime_value|money }}", "text": "{{ last_purchase_at|local_date('long') }}"}
            },
        ),
        VARS,
    )
    late_evening_utc = dt.datetime(2026, 11, 1, 23, 30)
    us = t.render(
        {
            "lifetime_value": 1234.5,
            "currency": "USD",
            "locale": "en-US",
            "timezone": "America/New_York",
            "last_purchase_at": late_evening_utc,
        }
    )
    assert us["subject"] == "$1,234.50 / 1,234.5"
    assert us["text"] == "November 1, 2026 18:30"  # 23:30 UTC is 18:30 in New York
    de = t.render(
        {
            "lifetime_value": 1234.5,
            "currency": "EUR",
            "locale": "de-DE",
            "timezone": "Europe/Berlin",
            "last_purchase_at": late_evening_utc,
        }
    )
    assert de["subject"] == "1.234,50\xa0€"
    assert de["text"] == "2. November 2026"  # already the next day in Berlin
    # English text to a French customer: formats follow the text's language, not a mix.
    fr = t.render(
        {
            "lifetime_value": 1234.5,
            "currency": "EUR",
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
            "last_purchase_at": "2026-11-01T23:30:00",
        }
    )
    assert fr["subject"] == "€1,234.50 / 1,234.5" and fr["text"].startswith("November 2, 2026")


def test_compile_errors_list_every_problem_with_its_place():
    bad = template(
        content={"title": "Hi {{ email }}", "body": "{{ first_name "},
        locales={"de": {"title": "{{ first_name|nope }}", "body": "ok"}},
        defaults={"unknown_thing": "x"},
    )
    with pytest.raises(RenderError) as caught:
        CompiledTemplate(bad, VARS)
    text = str(caught.value)
    assert "content.title: unknown variables ['email']" in text
    assert "content.body: line 1" in text
    assert "locales.de.title: line 1: No filter named 'nope'" in text
    assert "unknown_thing: under defaults or required, not a template variable" in text


def test_constant_fields_are_not_rendered_per_message():
    t = CompiledTemplate(template(content={"title": "Sale", "body": "{{ first_name }}"}), VARS)
    fields = {f.path: f for f in t.default.fields}
    assert fields["title"].compiled is None and fields["title"].constant == "Sale"
    assert fields["body"].compiled is not None


def test_the_time_budget_stops_a_render_where_it_is_rather_than_judging_it_afterwards(monkeypatch):
    """Each operation checks the budget: a render that would take long is stopped part way, so the
    message costs about its budget, not its whole run."""
    from campaign_orchestrator.render import sandbox

    tag = "{{ (first_name|replace('a', 'b')|upper|lower|trim) ~ (1 + 2 - 3) }}"
    template = Template(
        id="slow", channel="email", defaults={"first_name": "x"}, content={"subject": "s", "text": tag * 250}
    )
    checks: list[int] = []
    real = sandbox.checkpoint
    monkeypatch.setattr(sandbox, "checkpoint", lambda: (checks.append(1), real())[1])
    whole = CompiledTemplate(template, {"first_name"}, RenderPolicy(limits={}))
    started = time.thread_time()
    whole.render({"first_name": "a" * 10})
    full_s, full_checks = time.thread_time() - started, len(checks)
    checks.clear()
    budget_ms = full_s * 1000 / 20  # a twentieth of what the whole render takes
    limited = CompiledTemplate(template, {"first_name"}, RenderPolicy(limits={}, max_message_ms=budget_ms))
    with pytest.raises(RenderError, match="stopped after"):
        limited.render({"first_name": "a" * 10})
    assert 0 < len(checks) < full_checks / 2, (len(checks), full_checks)  # both tries stopped part way
