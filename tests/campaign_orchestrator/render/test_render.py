"""Rendering target lists into the outbox: failures go to render_errors and hold a campaign past the limit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections import Counter

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from campaign_orchestrator.definitions.settings import RenderSettings
from campaign_orchestrator.definitions.templates import Template
from campaign_orchestrator.outbox.ids import MESSAGE_NAMESPACE, message_id
from campaign_orchestrator.render.render import render_outbox
from campaign_orchestrator.reporting.markdown import render_markdown
from campaign_orchestrator.reporting.report import build_run_report
from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.warehouse.tables import delivery_batches, outbox, render_errors, target_list
from tests.builders import customer, definitions, load, messages_in_state, state_counts

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)
VARS = {"first_name", "tier"}


def world(engine, long_names: int, total: int = 100, max_error_share: float = 0.05):
    """`total` customers targeted by push campaign `p` and in-app `q`; the first `long_names` have a
    first name too long for a push title."""
    defs = definitions([{"id": "p"}, {"id": "q", "channel": "in_app", "destination": "inbox"}], per_customer_per_day=2)
    templates = dict(defs.templates)
    templates["t_p"] = Template(
        id="t_p",
        channel="push",
        defaults={"first_name": "there"},
        content={"title": "Hi {{ first_name }}", "body": "b"},
        locales={"de": {"title": "Hallo {{ first_name }}", "body": "b"}},
    )
    templates["t_q"] = Template(id="t_q", channel="in_app", content={"header": "News", "body": "{{ tier }}"})
    settings = defs.settings.model_copy(update={"render": RenderSettings(max_error_share=max_error_share)})
    defs = dataclasses.replace(defs, templates=templates, settings=settings)
    ids = [f"C{i:03d}" for i in range(total)]
    load(
        engine,
        [
            customer(c, first_name="N" * 70 if i < long_names else f"N{i}", locale="de-DE" if i % 2 else "en-GB")
            for i, c in enumerate(ids)
        ],
    )
    with engine.begin() as conn:
        conn.execute(
            target_list.insert(),
            [
                {"run_date": RUN, "campaign_id": camp, "customer_id": c, "variant": "default", "send_at": NOW}
                for c in ids
                for camp in ("p", "q")
            ],
        )
    return defs, ids


def ledger_states(engine):
    with engine.connect() as conn:
        return state_counts(conn)


def counts(engine, table, column):
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(column, sa.func.count()).select_from(table).group_by(column)).all())


def test_rows_that_fail_to_render_go_to_render_errors_and_are_not_sent(warehouse):
    defs, ids = world(warehouse, long_names=3)
    report = render_outbox(warehouse, defs, VARS, RUN, NOW)
    assert report.rendered == {"p": 97, "q": 100} and report.errors == {"p": 3}
    assert report.held == {}  # 3% is under the 5% limit
    with warehouse.connect() as conn:
        errors = conn.execute(sa.select(render_errors).order_by(render_errors.c.customer_id)).mappings().all()
        payloads = dict(
            conn.execute(sa.select(outbox.c.customer_id, outbox.c.payload).where(outbox.c.campaign_id == "p")).all()
        )
    assert [e["customer_id"] for e in errors] == ids[:3]
    assert {e["field"] for e in errors} == {"title"}
    assert errors[0]["locale"] == "en" and errors[1]["locale"] == "de"  # the content that was tried
    assert errors[1]["reason"] == "title: 76 characters, over the push limit of 65"
    assert all("NNNN" not in e["reason"] for e in errors)  # reasons never quote the customer's values
    assert set(payloads) == set(ids[3:])
    assert json.loads(payloads["C003"])["title"] == "Hallo N3"
    assert ledger_states(warehouse) == {"pending": 197}
    with warehouse.connect() as conn:  # each batch is one request's worth of one campaign and send time
        sizes = conn.execute(sa.select(delivery_batches.c.campaign_id, delivery_batches.c.messages)).all()
        members = counts(warehouse, outbox, outbox.c.batch_id)
    assert sorted(n for _, n in sizes) == sorted(members.values()) and max(members.values()) <= 50
    assert sum(n for c, n in sizes if c == "p") == 97


def test_a_campaign_over_the_failure_limit_is_held_and_released_after_a_fix(warehouse):
    defs, _ = world(warehouse, long_names=10)
    report = render_outbox(warehouse, defs, VARS, RUN, NOW)
    assert report.held == {"p": 0.1}
    with warehouse.connect() as conn:
        by_campaign = Counter(m.campaign_id for m in messages_in_state(conn, "held"))
    assert by_campaign == {"p": 90}  # q is unaffected and stays pending
    # Re-running without a fix changes nothing and records the same errors once.
    assert render_outbox(warehouse, defs, VARS, RUN, NOW).held == {"p": 0.1}
    assert counts(warehouse, render_errors, render_errors.c.campaign_id) == {"p": 10}
    # The marketer shortens the title; the re-run renders the 10 and, since no request for them
    # left, the 90 held ones again with the new text; the campaign is released.
    fixed = dict(defs.templates)
    fixed["t_p"] = Template(
        id="t_p",
        channel="push",
        content={"title": "Hi {{ first_name|truncate(20) }}", "body": "b"},
        locales={"de": {"title": "Hallo {{ first_name|truncate(20) }}", "body": "b"}},
    )
    report = render_outbox(warehouse, dataclasses.replace(defs, templates=fixed), VARS, RUN, NOW)
    assert report.rendered == {"p": 100} and report.rerendered == {"p": 90} and report.held == {}
    assert ledger_states(warehouse) == {"pending": 200}
    assert counts(warehouse, render_errors, render_errors.c.campaign_id) == {}


@given(st.text(max_size=40), st.text(max_size=70), st.dates())
def test_message_ids_are_uuid5_of_campaign_customer_and_date(campaign_id: str, customer_id: str, day: dt.date):
    expected = uuid.uuid5(MESSAGE_NAMESPACE, f"{campaign_id}|{customer_id}|{day.isoformat()}")
    assert message_id(campaign_id, customer_id, day) == str(expected)


def test_the_run_report_shows_render_errors_and_held_campaigns(warehouse, tmp_path):
    defs, _ = world(warehouse, long_names=10)
    render_outbox(warehouse, defs, VARS, RUN, NOW)
    config = RunConfig(run_date=RUN, warehouse_url=str(warehouse.url), reports_dir=tmp_path, run_id="t")
    report = build_run_report(warehouse, defs, config)
    p = report["campaigns"]["p"]
    assert (p["held"], p["render_errors"], p["pending"]) == (90, 10, 0)
    assert p["render_failures"] == [
        {"field": "title", "count": 10, "example": "title: 73 characters, over the push limit of 65"}
    ]
    assert report["campaigns"]["q"]["held"] == 0
    markdown = render_markdown(report)
    assert "**Held, not delivered:** p" in markdown
    assert "- p: title: 10 (e.g. title: 73 characters, over the push limit of 65)" in markdown


def test_public_notices_are_upserted_and_ended_when_removed(warehouse, tmp_path):
    from campaign_orchestrator.definitions.public_messages import load_public_messages
    from campaign_orchestrator.delivery.notices import publish_public_messages
    from campaign_orchestrator.warehouse.tables import inapp_messages

    notices = tmp_path / "public_messages.yaml"
    notices.write_text(
        """
public_messages:
  - id: outage
    kind: outage
    start_at: 2026-11-22T06:00:00Z
    end_at: 2026-11-22T12:00:00+01:00
    content: {header: "Payments are down", body: "We are on it."}
"""
    )
    problems: list[str] = []
    messages = load_public_messages(tmp_path, problems)
    assert problems == []
    with warehouse.begin() as conn:
        assert publish_public_messages(conn, messages, NOW)["created"] == 1
        assert publish_public_messages(conn, messages, NOW)["unchanged"] == 1
    with warehouse.connect() as conn:
        row = conn.execute(sa.select(inapp_messages)).one()
    assert row.customer_id is None and row.campaign_id == "public:outage" and row.priority == 1
    assert row.end_at == dt.datetime(2026, 11, 22, 11, 0)  # stored as naive UTC
    assert json.loads(row.content)["header"] == "Payments are down"
    notices.write_text(notices.read_text().replace("We are on it.", "Fixed soon."))
    with warehouse.begin() as conn:
        assert publish_public_messages(conn, load_public_messages(tmp_path, []), NOW)["updated"] == 1
        assert publish_public_messages(conn, [], NOW)["ended"] == 1
    with warehouse.connect() as conn:
        row = conn.execute(sa.select(inapp_messages)).one()
    assert json.loads(row.content)["body"] == "Fixed soon." and row.end_at == NOW


def test_public_notices_refuse_placeholders_and_need_a_version_to_force_updates(tmp_path):
    from campaign_orchestrator.definitions.public_messages import load_public_messages

    (tmp_path / "public_messages.yaml").write_text(
        """
public_messages:
  - {id: a, kind: outage, start_at: 2026-11-22T06:00:00Z, content: {header: "Hi {{ first_name }}", body: b}}
  - {id: b, kind: forced_update, start_at: 2026-11-22T06:00:00Z, content: {header: h, body: b}}
"""
    )
    problems: list[str] = []
    load_public_messages(tmp_path, problems)
    assert len(problems) == 2
    assert "no {{ }} placeholders" in problems[0] and "needs min_app_version" in problems[1]


def _payloads(engine, campaign_id):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.message_id, outbox.c.payload).where(outbox.c.campaign_id == campaign_id)
        ).all()
    return {mid: json.loads(p) for mid, p in rows}


def test_a_template_fixed_after_render_reaches_every_message_no_request_has_left_for(warehouse):
    """Render, fix the template, render the date again before delivery: the never-attempted
    messages get the new text under the same ids; a batch already attempted keeps its text, since
    its resend must be the same request; the run says how many of each."""
    defs, _ids = world(warehouse, long_names=0, total=120)
    first = render_outbox(warehouse, defs, VARS, RUN, NOW)
    assert first.rerendered == {} and first.kept_earlier_text == {}
    before = _payloads(warehouse, "p")
    with warehouse.begin() as conn:  # one push batch was attempted (it failed, to be retried)
        attempted = conn.execute(
            sa.select(delivery_batches.c.batch_id, delivery_batches.c.messages)
            .where(delivery_batches.c.campaign_id == "p")
            .order_by(delivery_batches.c.batch_id)
            .limit(1)
        ).one()
        conn.execute(
            delivery_batches.update()
            .where(delivery_batches.c.batch_id == attempted.batch_id)
            .values(state="failed", attempts=1, last_error="gave up after 5 attempts: HTTP 503")
        )
    fixed = dict(defs.templates)
    fixed["t_p"] = Template(
        id="t_p",
        channel="push",
        defaults={"first_name": "there"},
        content={"title": "Hello {{ first_name }}", "body": "b"},
    )
    again = render_outbox(warehouse, dataclasses.replace(defs, templates=fixed), VARS, RUN, NOW)

    after = _payloads(warehouse, "p")
    assert set(after) == set(before)  # the same messages, by id
    with warehouse.connect() as conn:
        in_attempted = set(
            conn.execute(sa.select(outbox.c.message_id).where(outbox.c.batch_id == attempted.batch_id)).scalars()
        )
    assert len(in_attempted) == attempted.messages
    assert all(after[m]["title"] == before[m]["title"] for m in in_attempted)  # kept: it may have left
    others = set(after) - in_attempted
    assert others and all(after[m]["title"].startswith("Hello ") for m in others)
    assert again.rerendered == {"p": len(others)} and again.kept_earlier_text == {"p": attempted.messages}
    assert again.rendered == {"p": len(others)}  # the in-app campaign's template did not change
    assert ledger_states(warehouse) == {"pending": 240 - attempted.messages, "failed": attempted.messages}
