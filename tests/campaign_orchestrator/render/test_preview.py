"""`campaigns preview`: the repository's campaigns rendered for customers in a real warehouse."""

from __future__ import annotations

import datetime as dt
import html.parser
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from campaign_orchestrator.cli import main
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
