"""`campaigns preview`: the repository's campaigns rendered for customers in a real warehouse."""

from __future__ import annotations

import datetime as dt
import html.parser
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from campaign_orchestrator.cli import main
from campaign_orchestrator.render.preview import PLACEHOLDER, PreviewError, as_html, preview_template
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema
from campaign_orchestrator.warehouse.tables import target_list
from tests.builders import customer, load

DAY = dt.date(2026, 11, 22)


class Cards(html.parser.HTMLParser):
    """The class names of the page's elements, to count message cards and mock-ups."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes += (dict(attrs).get("class") or "").split()


@pytest.fixture
def warehouse_with_customers(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = create_warehouse_engine(url)
    ensure_schema(engine)
    load(
        engine,
        [
            customer("C1", first_name="Ana", locale="de-DE", tier=None),
            customer("C2", first_name="<b>Bo</b>", locale="pt-BR"),
            customer("C3", first_name="N" * 80, locale="en-US"),
            customer("C4", first_name=None, locale="ja-JP"),
        ],
    )
    with engine.begin() as conn:
        conn.execute(
            target_list.insert(),
            [
                {
                    "run_date": DAY,
                    "campaign_id": "winback_push",
                    "customer_id": "C2",
                    "variant": "default",
                    "send_at": dt.datetime(2026, 11, 22, 21, 0),
                }
            ],
        )
    engine.dispose()
    return url


def preview(repo: Path, url: str, *args: str):
    return CliRunner().invoke(
        main,
        [
            "preview",
            *args,
            "--date",
            DAY.isoformat(),
            "--warehouse",
            url,
            "--config",
            str(repo / "marketing"),
            "--contracts",
            str(repo / "data_contracts"),
        ],
    )


def test_preview_by_customer_shows_locale_defaults_and_render_errors(repo, warehouse_with_customers, tmp_path):
    page = tmp_path / "preview.html"
    result = preview(
        repo,
        warehouse_with_customers,
        "winback_push",
        "--customer",
        "C1",
        "--customer",
        "C2",
        "--customer",
        "C3",
        "--customer",
        "C4",
        "--html",
        str(page),
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "C1  variant default (winback_push)  locale de (customer de-DE)  not targeted" in out
    assert "Deine Mitglieds-Vorteile warten" in out  # missing tier: the German default
    assert (
        "C2  variant default (winback_push)  locale pt-br (customer pt-BR)  "
        "on the target list, sends 2026-11-22 21:00 UTC" in out
    )
    assert "RENDER ERROR  title: 93 characters, over the push limit of 65" in out
    assert "We miss you, there" in out  # C4: Japanese falls back to the default content and default name
    assert "4 previewed, 1 would not be sent" in out
    text = page.read_text()
    assert "&lt;b&gt;Bo&lt;/b&gt;" in text and "<b>Bo</b>" not in text  # escaped
    assert "Content-Security-Policy" in text and "<script" not in text
    cards = Cards()
    cards.feed(text)
    assert cards.classes.count("card") == 4 and cards.classes.count("push") == 3 and "error" in cards.classes


def test_preview_samples_the_target_list_and_mocks_each_channel(repo, warehouse_with_customers, tmp_path):
    result = preview(repo, warehouse_with_customers, "winback_push", "--sample", "3")
    assert result.exit_code == 0, result.output
    assert result.output.count("variant default") == 1  # only C2 is on the list for the day
    page = tmp_path / "inapp.html"
    result = preview(repo, warehouse_with_customers, "beta_feature_inapp", "--sample", "2", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert "class='inapp MIDDLE_BANNER'" in page.read_text()
    page = tmp_path / "email.html"
    result = preview(repo, warehouse_with_customers, "europe_newsletter", "--customer", "C1", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert '<iframe sandbox srcdoc="&lt;p&gt;Hallo Ana' in page.read_text()


def test_preview_variants_follow_the_stable_assignment(repo, warehouse_with_customers):
    result = preview(repo, warehouse_with_customers, "repeat_buyer_nudge", "--customer", "C1", "--customer", "C2")
    assert result.exit_code == 0, result.output
    again = preview(repo, warehouse_with_customers, "repeat_buyer_nudge", "--customer", "C1", "--customer", "C2")
    assert result.output == again.output
    # The same stable hash targeting uses, computed by the warehouse for these two customers.
    from campaign_orchestrator.definitions.loader import load_definitions
    from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary
    from campaign_orchestrator.targeting.candidates import variant_of

    contracts = load_contracts(repo / "data_contracts")
    campaign = load_definitions(
        repo / "marketing", vocabulary(contracts, frozenset({"beta_testers", "vip_list"}))
    ).campaigns["repeat_buyer_nudge"]
    engine = create_warehouse_engine(warehouse_with_customers)
    with engine.connect() as conn:
        expected = {
            cid: conn.execute(sa.select(variant_of(campaign, sa.literal(cid)))).scalar() for cid in ("C1", "C2")
        }
    engine.dispose()
    for cid, variant in expected.items():
        assert f"{cid}  variant {variant} " in result.output


def test_preview_errors_are_clear(repo, warehouse_with_customers):
    result = preview(repo, warehouse_with_customers, "nope")
    assert result.exit_code == 1 and "no campaign 'nope'; campaigns: anz_gold_weekly" in result.output
    result = preview(repo, warehouse_with_customers, "winback_push", "--customer", "C9")
    assert result.exit_code == 1 and "not in the customers table: C9" in result.output


# ---- preview_template: one template for customers, as the night renders it, without a campaign


@pytest.fixture(scope="module")
def repo_definitions(repo):
    """The repository's definitions and template variables, loaded as `campaigns preview` does."""
    from campaign_orchestrator.definitions.loader import load_definitions
    from campaign_orchestrator.ingest.contracts import load_contracts, template_variables, vocabulary
    from campaign_orchestrator.ingest.sources import load_sources_config

    contracts = load_contracts(repo / "data_contracts")
    lists = frozenset(load_sources_config(repo / "data_contracts" / "sources.yaml").lists)
    return load_definitions(repo / "marketing", vocabulary(contracts, lists)), template_variables(contracts)


@pytest.fixture
def engine(warehouse_with_customers):
    found = create_warehouse_engine(warehouse_with_customers)
    yield found
    found.dispose()


def test_a_template_preview_renders_each_customer_in_their_own_locale_with_fallback(engine, repo_definitions):
    definitions, variables = repo_definitions
    messages = preview_template(engine, definitions, variables, "feature_push", ["C4", "C1"])
    assert [m.customer_id for m in messages] == ["C4", "C1"]  # in the order asked
    ja, de = messages
    assert (ja.customer_locale, ja.content_locale) == ("ja-JP", "ja")
    assert ja.payload is not None and ja.payload["title"].startswith("新機能")
    assert ja.payload["body"].startswith("お客様さん")  # C4 has no first name: the translation's default
    assert (de.customer_locale, de.content_locale) == ("de-DE", "en")  # no German: the default content
    assert de.payload is not None and de.payload["body"] == "Hi Ana, see where your parcel is, right in the app."
    assert all(not m.of_campaign and m.variant == PLACEHOLDER and not m.on_target_list for m in messages)


def test_a_chosen_locale_shows_that_translation_on_any_customer(engine, repo_definitions):
    definitions, variables = repo_definitions
    (message,) = preview_template(engine, definitions, variables, "europe_newsletter", ["C3"], locale="de")
    assert (message.customer_locale, message.content_locale) == ("en-US", "de")
    assert message.payload is not None and message.payload["subject"] == f"{'N' * 80}, die Auswahl der Woche"
    assert message.payload["preheader"] == "Ausgewählt für GB"  # the customer's own values, in German


def test_campaign_values_are_placeholders_and_render_errors_are_kept_per_customer(engine, repo_definitions):
    definitions, variables = repo_definitions
    ok, long_name = preview_template(engine, definitions, variables, "repeat_buyer_discount", ["C1", "C3"])
    assert ok.payload is not None and ok.payload["data"] == {"offer": "repeat10", "variant": PLACEHOLDER}
    assert ok.content_locale == "de" and ok.payload["title"] == "Ana, 10 % auf deine nächste Bestellung"
    assert long_name.payload is None
    assert long_name.error == "title: 105 characters, over the push limit of 65"


def test_without_ids_a_template_preview_takes_a_stable_sample_of_all_customers(engine, repo_definitions):
    definitions, variables = repo_definitions
    first = preview_template(engine, definitions, variables, "winback_push", sample=2)
    again = preview_template(engine, definitions, variables, "winback_push", sample=2)
    assert len(first) == 2 and [m.customer_id for m in first] == [m.customer_id for m in again]
    everyone = preview_template(engine, definitions, variables, "winback_push", sample=10)
    assert sorted(m.customer_id for m in everyone) == ["C1", "C2", "C3", "C4"]  # no target list needed


def test_unknown_templates_and_customers_are_named(engine, repo_definitions):
    definitions, variables = repo_definitions
    with pytest.raises(PreviewError, match=r"not in the customers table: C8, C9"):
        preview_template(engine, definitions, variables, "winback_push", ["C1", "C9", "C8"])
    with pytest.raises(PreviewError, match=r"no template 'nope'; templates: anz_gold_push, beta_feature"):
        preview_template(engine, definitions, variables, "nope")


def test_a_template_preview_page_can_load_nothing_at_all(engine, repo_definitions):
    definitions, variables = repo_definitions
    messages = preview_template(engine, definitions, variables, "winback_push", ["C2"])
    page = as_html("winback_push", None, messages, remote_images=False)
    assert "<img" not in page and "image: https://cdn.example.com/campaigns/winback.png" in page
    assert "img-src data:;" in page and "<script" not in page
    assert "<h1>Preview of winback_push</h1>" in page and "variant" not in page and "targeted" not in page
    assert "Sentimos sua falta, &lt;b&gt;Bo&lt;/b&gt;" in page  # escaped, in the customer's pt-br
    assert "<img src='https://cdn.example.com" in as_html("winback_push", DAY, messages)  # the CLI's page
