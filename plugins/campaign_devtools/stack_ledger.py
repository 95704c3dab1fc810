"""The stack test's verdict on delivery: what the provider simulator received against the ledger.

Per run date (a request's dispatch or schedule id names its batch, so its night): every message
the ledger marks sent arrived once, nothing else arrived, no request key came twice, and every
targeted message was sent, or is `stale` when its night ran after its date.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def compare_with_ledger(warehouse_url: str, received: list[dict[str, Any]], stats: dict[str, Any]) -> dict[str, Any]:
    """What the simulator received against the ledger, per run date (a request's dispatch id says
    which batch, so which night, it carried): every sent message arrived once, nothing else did,
    no request key came twice, and every targeted message was sent, or is `stale` when its night
    ran after its date (settings.delivery.max_lateness: the older of the two nights, with the
    shipped 0h), which then sent nothing. `problems` lists what does not hold."""
    import sqlalchemy as sa

    from campaign_orchestrator.outbox.ledger import message_ledger
    from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages, target_list

    engine = sa.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            night_of = dict(
                conn.execute(
                    sa.select(delivery_batches.c.dispatch_id, delivery_batches.c.run_date).where(
                        delivery_batches.c.dispatch_id.is_not(None)
                    )
                ).all()
            )
            ledger = message_ledger()
            sent = conn.execute(
                sa.select(ledger.c.run_date, ledger.c.destination, sa.func.count())
                .where(ledger.c.state == "sent")
                .group_by(ledger.c.run_date, ledger.c.destination)
            ).all()
            not_sent = conn.scalar(
                sa.select(sa.func.count()).select_from(ledger).where(ledger.c.state.not_in(("sent", "stale")))
            )
            stale = {
                d.isoformat(): int(n)
                for d, n in conn.execute(
                    sa.select(ledger.c.run_date, sa.func.count())
                    .where(ledger.c.state == "stale")
                    .group_by(ledger.c.run_date)
                )
            }
            targeted = conn.scalar(sa.select(sa.func.count()).select_from(target_list)) or 0
            stored = conn.scalar(
                sa.select(sa.func.count()).select_from(inapp_messages).where(inapp_messages.c.customer_id.is_not(None))
            )
    finally:
        engine.dispose()
    per_night: dict[str, Counter[tuple[str, str]]] = {}
    strays = 0
    for r in received:
        night = night_of.get(r.get("schedule_id") or r["dispatch_id"])  # the ledger keeps what the answer named
        if night is None:
            strays += 1
            continue
        per_night.setdefault(night.isoformat(), Counter())[(r["campaign_id"], r["external_user_id"])] += 1
    provider_sent = {d.isoformat(): int(n) for d, dest, n in sent if dest == "braze"}
    store_sent = sum(int(n) for _d, dest, n in sent if dest == "app_inbox")
    nights = sorted(set(provider_sent) | set(per_night) | set(stale))
    by_night = {
        night: {
            "ledger_sent": provider_sent.get(night, 0),
            "simulator": sum(per_night.get(night, Counter()).values()),
            "duplicates": sum(n - 1 for n in per_night.get(night, Counter()).values()),
            "stale": stale.get(night, 0),
        }
        for night in nights
    }
    problems = []
    if not provider_sent:
        problems.append("nothing was sent to the provider")
    if strays:
        problems.append(f"the simulator got {strays} recipients under dispatch ids the ledger does not know")
    if stats.get("repeated_keys"):
        problems.append(f"the simulator got {stats['repeated_keys']} requests under a key it had already answered")
    for night, c in by_night.items():
        if c["simulator"] != c["ledger_sent"] or c["duplicates"]:
            problems.append(
                f"{night}: simulator got {c['simulator']} ({c['duplicates']} duplicates), "
                f"ledger says {c['ledger_sent']}"
            )
        if c["stale"] and c["simulator"]:
            problems.append(f"{night}: stale, yet the simulator got {c['simulator']} of its recipients")
    total_sent = sum(provider_sent.values()) + store_sent
    total_targeted = int(targeted)
    if not_sent or total_sent + sum(stale.values()) != total_targeted:
        problems.append(
            f"{total_targeted} targeted, {total_sent} sent, {sum(stale.values())} stale, "
            f"{not_sent} in the outbox neither sent nor stale"
        )
    if int(stored or 0) != store_sent:
        problems.append(f"{stored} in-app rows for {store_sent} sent")
    return {
        "nights": by_night,
        "provider_sent": sum(provider_sent.values()),
        "store_sent": store_sent,
        "simulator": stats,
        "inapp_rows": int(stored or 0),
        "not_sent": int(not_sent or 0),
        "stale_nights": sorted(stale),
        "targeted": total_targeted,
        "problems": problems,
    }
