"""Small, explicit warehouse contents for tests: say who the customers are, not how to insert them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign_orchestrator.ingest.consent import refresh_preference_state
from campaign_orchestrator.warehouse.tables import app_installs, customers, preferences, suppressions

T0 = dt.datetime(2026, 1, 1, 12, 0)


def customer(customer_id: str, **attrs: Any) -> dict[str, Any]:
    row = {c.name: None for c in customers.c}
    row.update(
        customer_id=customer_id,
        first_name="Ana",
        email=f"{customer_id.lower()}@example.com",
        locale="en-US",
        timezone="Europe/London",
        country="GB",
        currency="GBP",
        tier="gold",
        lifetime_value=100.0,
    )
    row.update(attrs)
    return row


def load(
    engine: Engine,
    profiles: list[dict[str, Any]],
    opted_in: dict[str, list[str]] | None = None,
    installs: list[tuple[str, str, bool]] | None = None,
    suppressed: list[str] | None = None,
    prefs: list[tuple[str, str, bool, dt.datetime]] | None = None,
) -> None:
    """opted_in: channel -> customer ids with a current opt-in; installs: (customer, platform, token)."""
    pref_rows = [
        {"customer_id": cid, "channel": ch, "enabled": True, "ts": T0, "source": "test", "import_date": T0.date()}
        for ch, ids in (opted_in or {}).items()
        for cid in ids
    ]
    pref_rows += [
        {"customer_id": cid, "channel": ch, "enabled": en, "ts": ts, "source": "test", "import_date": T0.date()}
        for cid, ch, en, ts in (prefs or [])
    ]
    with engine.begin() as conn:
        if profiles:
            conn.execute(customers.insert(), profiles)
        if pref_rows:
            conn.execute(preferences.insert(), pref_rows)
        if installs:
            conn.execute(
                app_installs.insert(),
                [
                    {
                        "customer_id": c,
                        "app_id": "shop_web" if p == "web" else "shop_app",
                        "platform": p,
                        "push_token_present": tok,
                        "last_seen_at": T0,
                    }
                    for c, p, tok in installs
                ],
            )
        if suppressed:
            conn.execute(
                suppressions.insert(),
                [{"customer_id": c, "reason": "erased", "since": T0, "import_date": T0.date()} for c in suppressed],
            )
        refresh_preference_state(conn)


def definitions(
    campaigns: list[dict[str, Any]],
    segments: dict[str, Any] | None = None,
    per_customer_per_day: int = 1,
    default_timezone: str = "America/New_York",
    batch_size: int = 50,
) -> Any:
    """Definitions built in code: a braze-like provider and the message store as destinations."""
    from campaign_orchestrator.definitions.campaigns import Campaign
    from campaign_orchestrator.definitions.loader import Definitions, Segment
    from campaign_orchestrator.definitions.settings import Settings
    from campaign_orchestrator.definitions.templates import Template

    settings = Settings.model_validate(
        {
            "default_timezone": default_timezone,
            "caps": {"per_customer_per_day": per_customer_per_day},
            "delivery": {"shards": 2, "max_workers": 2, "batch_size": batch_size},
            "destinations": {
                "braze": {"kind": "provider", "connection_id": "campaigns_provider", "honours_idempotency_key": True},
                "inbox": {"kind": "message_store"},
            },
        }
    )
    segs = {
        sid: Segment(id=sid, rule=rule)
        for sid, rule in (segments or {"everyone": {"attribute": "customer_id", "exists": True}}).items()
    }
    camps = {}
    templates = {}
    for spec in campaigns:
        spec = {
            "segment": "everyone",
            "channel": "push",
            "destination": "braze",
            "provider_campaign_id": f"p-{spec['id']}",
            "template": f"t_{spec['id']}",
            **spec,
        }
        camp = Campaign.model_validate(spec)
        camps[camp.id] = camp
        content = {
            "push": {"title": "Hi {{ first_name }}", "body": "b"},
            "in_app": {"header": "Hi {{ first_name }}", "body": "b"},
            "email": {"subject": "Hi {{ first_name }}", "text": "b"},
        }[camp.channel]
        for template_id in camp.variant_templates.values():
            templates[template_id] = Template(
                id=template_id, channel=camp.channel, defaults={"first_name": "there"}, content=content
            )
    from campaign_orchestrator.definitions.rules import Vocabulary

    vocab = Vocabulary(attributes={"customer_id": "string", "tier": "string"}, segments=frozenset(segs))
    return Definitions(settings=settings, segments=segs, campaigns=camps, templates=templates, vocabulary=vocab)


def deliver_target_list(conn: Any, run_date: dt.date, now: dt.datetime) -> None:
    """Put a night's target list into the ledger as sent, as the render and deliver stages would:
    rows already in the ledger (kept from an earlier run of the date) are left as they are."""
    import sqlalchemy as sa

    from campaign_orchestrator.render.render import OUTBOX_COLUMNS
    from campaign_orchestrator.warehouse.tables import campaign_candidates, outbox, target_list

    t, c = target_list.c, campaign_candidates.c
    already = sa.exists().where(
        outbox.c.campaign_id == t.campaign_id, outbox.c.customer_id == t.customer_id, outbox.c.slot_date == run_date
    )
    conn.execute(
        outbox.insert().from_select(
            list(OUTBOX_COLUMNS),
            sa.select(
                t.campaign_id + ":" + t.customer_id + ":" + sa.cast(run_date.isoformat(), sa.String),
                t.run_date,
                t.run_date,
                t.campaign_id,
                t.customer_id,
                t.variant,
                c.channel,
                sa.literal("braze"),
                t.send_at,
                sa.literal("{}"),
                sa.literal("sent"),  # a state of its own: a ledger row from before batches, in effect
                sa.literal(now),
                sa.literal(now),
                sa.null(),
                sa.literal(0),
            )
            .join(
                campaign_candidates,
                sa.and_(c.run_date == t.run_date, c.campaign_id == t.campaign_id, c.customer_id == t.customer_id),
            )
            .where(t.run_date == run_date, ~already),
        )
    )


def import_night(
    engine: Engine, ctx: Any, config: Any, contracts: dict[str, Any], only: list[str] | None = None
) -> Any:
    """What the DAG's ingest tasks do, through the same entry points: validate every source (all
    failures together), then publish them in one transaction."""
    from campaign_orchestrator.ingest import ContractError, ImportFailed, publish, validate_source

    staged, failures = [], []
    for source, spec in config.all().items():
        if only and source not in only:
            continue
        contract = contracts.get("lists" if source.startswith("list:") else source)
        if contract is None:
            failures.append(ContractError(source, spec.path or "query", "contract_exists", None, "no data contract"))
            continue
        try:
            staged.append(validate_source(engine, ctx, source, spec, contract))
        except ContractError as exc:
            failures.append(exc)
    if failures:
        raise ImportFailed(failures)
    publish(engine, ctx.run_date, staged, contracts)
    return staged


def state_counts(conn: Any, *where: Any) -> dict[str, int]:
    """Messages per state in the ledger view's terms (all dates unless `where` narrows it)."""
    import sqlalchemy as sa

    from campaign_orchestrator.outbox.ledger import message_ledger

    ledger = message_ledger(*where)
    return {
        state: int(n) for state, n in conn.execute(sa.select(ledger.c.state, sa.func.count()).group_by(ledger.c.state))
    }


def messages_in_state(conn: Any, state: str, *where: Any) -> list[Any]:
    """(customer id, campaign id, destination, last error) of the messages in `state`."""
    import sqlalchemy as sa

    from campaign_orchestrator.outbox.ledger import message_ledger

    ledger = message_ledger(*where)
    columns = (ledger.c.customer_id, ledger.c.campaign_id, ledger.c.destination, ledger.c.last_error)
    return list(conn.execute(sa.select(*columns).where(ledger.c.state == state)).all())


def set_max_lateness(folder: Path, max_lateness: str | None = None) -> Path:
    """Set `delivery.max_lateness` in the marketing folder's settings.yaml (None: no limit), its
    comments kept. Tests that run a night of a fixed past date (2026-11-22) with today's clock use
    it: under the shipped setting such a night is stale and sends nothing (run/test_stale.py tests
    that), which is not what they test."""
    import re

    settings = folder / "settings.yaml"
    value = "null" if max_lateness is None else max_lateness
    text, n = re.subn(r"^(\s+max_lateness:) *\S+", rf"\g<1> {value}", settings.read_text(), count=1, flags=re.M)
    assert n == 1, f"{settings} has no delivery.max_lateness line"
    settings.write_text(text)
    return folder


def marketing_copy(repo: Path, target: Path, max_lateness: str | None = None) -> Path:
    """The repository's marketing folder copied to `target`, with `delivery.max_lateness` set."""
    import shutil

    shutil.copytree(repo / "marketing", target)
    return set_max_lateness(target, max_lateness)
