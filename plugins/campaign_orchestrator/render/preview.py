"""Previews: a campaign's message rendered for real customers, before anything is sent.

The same compiled templates, variant assignment and locale fallback as the nightly render, so
what a marketer sees is what the customer gets. Customers come by id, or as a sample of the
campaign's target list for the date (or of all customers when there is none yet).
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.errors import CampaignError
from campaign_orchestrator.render.compiled import PROFILE_CONTEXT, CompiledTemplate, RenderError, render_policy
from campaign_orchestrator.targeting.candidates import variant_of
from campaign_orchestrator.warehouse.sqlfuncs import hash_bucket
from campaign_orchestrator.warehouse.tables import customers, target_list


@dataclass(frozen=True)
class PreviewMessage:
    customer_id: str
    variant: str
    template_id: str
    channel: str
    customer_locale: str | None
    content_locale: str | None
    on_target_list: bool
    send_at: dt.datetime | None
    payload: dict[str, Any] | None
    error: str | None


class PreviewError(CampaignError, ValueError):
    """An unknown campaign or customer: said plainly, not as a traceback."""


def preview_campaign(
    engine: Engine,
    definitions: Definitions,
    template_variables: set[str],
    campaign_id: str,
    run_date: dt.date,
    customer_ids: list[str] | None = None,
    sample: int = 5,
) -> list[PreviewMessage]:
    campaign = definitions.campaigns.get(campaign_id)
    if campaign is None:
        raise PreviewError(f"no campaign {campaign_id!r}; campaigns: {', '.join(sorted(definitions.campaigns))}")
    policy = render_policy(definitions)
    compiled = {
        variant: (template_id, CompiledTemplate(definitions.templates[template_id], template_variables, policy))
        for variant, template_id in campaign.variant_templates.items()
    }
    wanted = {v for _, t in compiled.values() for v in t.variables} | set(PROFILE_CONTEXT)
    columns = sorted(wanted & set(customers.c.keys()))
    targeted = (
        sa.select(target_list.c.customer_id, target_list.c.variant, target_list.c.send_at)
        .where(target_list.c.run_date == run_date, target_list.c.campaign_id == campaign.id)
        .subquery("targeted")
    )
    stmt = sa.select(
        customers.c.customer_id,
        sa.func.coalesce(targeted.c.variant, variant_of(campaign, customers.c.customer_id)),
        targeted.c.customer_id.is_not(None),
        targeted.c.send_at,
        *(customers.c[c] for c in columns),
    ).join(targeted, targeted.c.customer_id == customers.c.customer_id, isouter=True)
    with engine.connect() as conn:
        if customer_ids:
            rows = conn.execute(stmt.where(customers.c.customer_id.in_(customer_ids))).all()
            unknown = sorted(set(customer_ids) - {r[0] for r in rows})
            if unknown:
                raise PreviewError(f"not in the customers table: {', '.join(unknown)}")
            order = {cid: i for i, cid in enumerate(customer_ids)}
            rows = sorted(rows, key=lambda r: order[r[0]])
        else:
            # A stable pseudo-random sample, from the target list when the date has one.
            spread = hash_bucket(customers.c.customer_id, "preview", 1 << 20)
            has_targets = conn.execute(sa.select(sa.func.count()).select_from(targeted)).scalar_one() > 0
            query = stmt.where(targeted.c.customer_id.is_not(None)) if has_targets else stmt
            rows = conn.execute(query.order_by(spread, customers.c.customer_id).limit(sample)).all()
    messages = []
    for row in rows:
        customer_id, variant, on_list, send_at = row[0], row[1], bool(row[2]), row[3]
        values: dict[str, Any] = dict(zip(columns, row[4:], strict=True))
        values.update(campaign_id=campaign.id, customer_id=customer_id, variant=variant, send_at=send_at)
        template_id, template = compiled[variant]
        chosen = template.choose(values.get("locale"))
        payload, error = None, None
        try:
            payload = template.render(values)
        except RenderError as exc:
            error = str(exc)
        messages.append(
            PreviewMessage(
                customer_id=customer_id,
                variant=variant,
                template_id=template_id,
                channel=campaign.channel,
                customer_locale=values.get("locale"),
                content_locale=chosen.locale,
                on_target_list=on_list,
                send_at=send_at,
                payload=payload,
                error=error,
            )
        )
    return messages


def as_text(messages: list[PreviewMessage]) -> str:
    lines: list[str] = []
    for m in messages:
        where = f"on the target list, sends {m.send_at:%Y-%m-%d %H:%M} UTC" if m.on_target_list else "not targeted"
        lines.append(
            f"{m.customer_id}  variant {m.variant} ({m.template_id})  locale {m.content_locale} "
            f"(customer {m.customer_locale or '-'})  {where}"
        )
        if m.error:
            lines.append(f"  RENDER ERROR  {m.error}")
        for key, value in (m.payload or {}).items():
            if key == "locale":
                continue
            if key == "buttons":
                value = "  ".join(f"[{b['text']}] {b['action']} {b.get('link', '')}".rstrip() for b in value)
            elif key == "data":
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            text = str(value).replace("\n", "\n" + " " * 14)
            lines.append(f"  {key:<11} {text}")
        lines.append("")
    return "\n".join(lines)


_CSS = """
body{font:14px/1.4 -apple-system,Segoe UI,Roboto,sans-serif;background:#eef0f3;margin:24px;color:#111}
h1{font-size:18px}
.card{display:inline-block;vertical-align:top;margin:0 16px 24px 0;width:340px}
.meta{font-size:12px;color:#555;margin-bottom:6px}
.error{background:#fde2e1;color:#8a1c14;padding:8px;border-radius:6px}
.phone{background:#1c1c1e;border-radius:28px;padding:14px;height:560px;position:relative;overflow:hidden}
.screen{background:linear-gradient(#4b6cb7,#182848);border-radius:18px;height:100%;position:relative}
.push{background:rgba(255,255,255,.92);border-radius:14px;margin:14px;padding:10px 12px;display:flex;gap:8px}
.push .app{font-size:11px;color:#666;text-transform:uppercase}
.push b{display:block}
.push img{width:44px;height:44px;object-fit:cover;border-radius:6px}
.link{font-size:11px;color:#3a6;word-break:break-all}
.inapp{position:absolute;left:12px;right:12px;background:#fff;border-radius:12px;padding:12px}
.inapp{box-shadow:0 4px 16px rgba(0,0,0,.3)}
.inapp.TOP_BANNER{top:12px}
.inapp.BOTTOM_BANNER{bottom:12px}
.inapp.MIDDLE_BANNER,.inapp.OVERLAYS,.inapp.CAROUSEL{top:35%}
.inapp.OVERLAYS{top:12px;bottom:12px}
.inapp.MOBILE_FEED{top:60px}
.inapp img{width:100%;border-radius:8px}
.inapp .buttons{display:flex;gap:8px;margin-top:8px}
.inapp button{flex:1;border:0;border-radius:8px;padding:8px;background:#0a84ff;color:#fff}
.email{background:#fff;border-radius:8px;overflow:hidden;width:600px}
.email .inbox{padding:10px 12px;border-bottom:1px solid #ddd}
.email .pre{color:#777}
.email iframe{width:100%;height:360px;border:0}
.email pre{white-space:pre-wrap;padding:8px 12px;margin:0;background:#fafafa}
"""


def as_html(campaign_id: str, run_date: dt.date, messages: list[PreviewMessage]) -> str:
    """A self-contained page; every value is escaped and the page allows no scripts."""
    e = html.escape
    cards = []
    for m in messages:
        meta = (
            f"<div class='meta'>{e(m.customer_id)} · variant {e(m.variant)} · locale {e(str(m.content_locale))} "
            f"(customer {e(m.customer_locale or '-')}) · {'targeted' if m.on_target_list else 'not targeted'}</div>"
        )
        if m.error or m.payload is None:
            body = f"<div class='error'>Not sent: {e(m.error or '')}</div>"
        elif m.channel == "push":
            body = _push_html(m.payload)
        elif m.channel == "in_app":
            body = _inapp_html(m.payload)
        else:
            body = _email_html(m.payload)
        width = " style='width:600px'" if m.channel == "email" else ""
        cards.append(f"<div class='card'{width}>{meta}{body}</div>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src https: data:; "
        "style-src 'unsafe-inline'; frame-src 'self'\">"
        f"<title>Preview: {e(campaign_id)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Preview of {e(campaign_id)} for {run_date.isoformat()}</h1>{''.join(cards)}</body></html>"
    )


def _img(url: str | None) -> str:
    return f"<img src='{html.escape(url)}' alt=''>" if url else ""


def _push_html(p: dict[str, Any]) -> str:
    e = html.escape
    link = f"<div class='link'>opens {e(p['deep_link'])}</div>" if p.get("deep_link") else ""
    return (
        "<div class='phone'><div class='screen'><div class='push'><div style='flex:1'>"
        f"<div class='app'>Shop · now</div><b>{e(p.get('title', ''))}</b>{e(p.get('body', ''))}{link}</div>"
        f"{_img(p.get('image_url'))}</div></div></div>"
    )


def _inapp_html(p: dict[str, Any]) -> str:
    e = html.escape
    buttons = "".join(
        f"<button title='{e(b['action'])} {e(b.get('link', ''))}'>{e(b.get('text', ''))}</button>"
        for b in p.get("buttons", [])
    )
    return (
        f"<div class='phone'><div class='screen'><div class='inapp {e(p.get('layout', 'BOTTOM_BANNER'))}'>"
        f"{_img(p.get('image_url'))}<b>{e(p.get('header', ''))}</b><div>{e(p.get('body', ''))}</div>"
        f"<div class='buttons'>{buttons}</div></div></div></div>"
    )


def _email_html(p: dict[str, Any]) -> str:
    e = html.escape
    # The body runs in a sandboxed frame with no scripts: it looks as in a mail client, nothing more.
    frame = f'<iframe sandbox srcdoc="{e(p["html"], quote=True)}"></iframe>' if p.get("html") else ""
    return (
        f"<div class='email'><div class='inbox'><b>{e(p.get('subject', ''))}</b> "
        f"<span class='pre'>— {e(p.get('preheader', '') or '')}</span></div>"
        f"{frame}<pre>{e(p.get('text', ''))}</pre></div>"
    )
