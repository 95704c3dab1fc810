"""Previews: a campaign's or one template's message rendered for real customers, before anything is sent.

The same compiled templates, locale fallback and render policy as the nightly render (and, for a
campaign, the same variant assignment), so what a marketer sees is what the customer gets: every
message goes through one helper, `_message`. Customers come by id (an unknown id is a
PreviewError naming it), or as a stable sample: of the campaign's target list for the date (or
of all customers when there is none yet), or of all customers for a template.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.errors import CampaignError
from campaign_orchestrator.render.compiled import PROFILE_CONTEXT, CompiledTemplate, RenderError, render_policy
from campaign_orchestrator.targeting.candidates import variant_of
from campaign_orchestrator.warehouse.sqlfuncs import hash_bucket
from campaign_orchestrator.warehouse.tables import customers, target_list

# What a template preview puts in the campaign's own values (campaign_id, variant): there is no campaign.
PLACEHOLDER = "preview"


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
    of_campaign: bool = True  # False: one template's preview (no variant, no target list)


class PreviewError(CampaignError, ValueError):
    """An unknown campaign, template or customer: said plainly, not as a traceback."""


def _rows(
    conn: Connection,
    stmt: sa.Select[Any],
    customer_ids: list[str] | None,
    sample: int,
    only: sa.ColumnElement[bool] | None = None,
) -> Sequence[Sequence[Any]]:
    """The customers by id, in the order given (PreviewError names the unknown ones), or a stable
    pseudo-random sample of `sample` of them (of those matching `only`, when given)."""
    if customer_ids:
        rows = conn.execute(stmt.where(customers.c.customer_id.in_(customer_ids))).all()
        unknown = sorted(set(customer_ids) - {r[0] for r in rows})
        if unknown:
            raise PreviewError(f"not in the customers table: {', '.join(unknown)}")
        order = {cid: i for i, cid in enumerate(customer_ids)}
        return sorted(rows, key=lambda r: order[r[0]])
    spread = hash_bucket(customers.c.customer_id, "preview", 1 << 20)
    query = stmt.where(only) if only is not None else stmt
    return conn.execute(query.order_by(spread, customers.c.customer_id).limit(sample)).all()


def _message(
    template_id: str,
    template: CompiledTemplate,
    values: dict[str, Any],
    customer_locale: str | None,
    on_target_list: bool = False,
    of_campaign: bool = True,
) -> PreviewMessage:
    """One customer's message as the nightly render makes it; a render error is kept, not raised."""
    chosen = template.choose(values.get("locale"))
    payload, error = None, None
    try:
        payload = template.render(values)
    except RenderError as exc:
        error = str(exc)
    return PreviewMessage(
        customer_id=values["customer_id"],
        variant=values["variant"],
        template_id=template_id,
        channel=template.template.channel,
        customer_locale=customer_locale,
        content_locale=chosen.locale,
        on_target_list=on_target_list,
        send_at=values.get("send_at"),
        payload=payload,
        error=error,
        of_campaign=of_campaign,
    )


def _columns(templates: list[CompiledTemplate]) -> list[str]:
    """The customer columns the templates read, and those every render needs."""
    wanted = {v for t in templates for v in t.variables} | set(PROFILE_CONTEXT)
    return sorted(wanted & set(customers.c.keys()))


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
    columns = _columns([t for _, t in compiled.values()])
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
        only = None
        if not customer_ids:  # the sample comes from the target list when the date has one
            has_targets = conn.execute(sa.select(sa.func.count()).select_from(targeted)).scalar_one() > 0
            only = targeted.c.customer_id.is_not(None) if has_targets else None
        rows = _rows(conn, stmt, customer_ids, sample, only)
    messages = []
    for row in rows:
        customer_id, variant, on_list, send_at = row[0], row[1], bool(row[2]), row[3]
        values: dict[str, Any] = dict(zip(columns, row[4:], strict=True))
        values.update(campaign_id=campaign.id, customer_id=customer_id, variant=variant, send_at=send_at)
        template_id, template = compiled[variant]
        messages.append(_message(template_id, template, values, values.get("locale"), on_list))
    return messages


def preview_template(
    engine: Engine,
    definitions: Definitions,
    template_variables: set[str],
    template_id: str,
    customer_ids: list[str] | None = None,
    sample: int = 5,
    locale: str | None = None,
) -> list[PreviewMessage]:
    """One template rendered for customers by id or a stable sample of all customers, as the
    nightly render would; `locale` stands in for each customer's own (their content and their
    dates' and money's format), so any customer shows a translation. There is no campaign:
    campaign_id and variant are PLACEHOLDER, and no message has a send time."""
    found = definitions.templates.get(template_id)
    if found is None:
        raise PreviewError(f"no template {template_id!r}; templates: {', '.join(sorted(definitions.templates))}")
    template = CompiledTemplate(found, template_variables, render_policy(definitions))
    columns = _columns([template])
    stmt = sa.select(customers.c.customer_id, *(customers.c[c] for c in columns))
    with engine.connect() as conn:
        rows = _rows(conn, stmt, customer_ids, sample)
    messages = []
    for row in rows:
        values: dict[str, Any] = dict(zip(columns, row[1:], strict=True))
        own = values.get("locale")
        if locale:
            values["locale"] = locale
        values.update(campaign_id=PLACEHOLDER, customer_id=row[0], variant=PLACEHOLDER, send_at=None)
        messages.append(_message(template_id, template, values, own, of_campaign=False))
    return messages


def as_text(messages: list[PreviewMessage]) -> str:
    lines: list[str] = []
    for m in messages:
        where = f"on the target list, sends {m.send_at:%Y-%m-%d %H:%M} UTC" if m.on_target_list else "not targeted"
        head = f"variant {m.variant} ({m.template_id})  " if m.of_campaign else f"{m.template_id}  "
        lines.append(
            f"{m.customer_id}  {head}locale {m.content_locale} "
            f"(customer {m.customer_locale or '-'})" + (f"  {where}" if m.of_campaign else "")
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
.push img,.push .img{width:44px;height:44px;object-fit:cover;border-radius:6px}
.img{background:#ccd;color:#445;font-size:9px;overflow:hidden;word-break:break-all;padding:2px}
.link{font-size:11px;color:#3a6;word-break:break-all}
.inapp{position:absolute;left:12px;right:12px;background:#fff;border-radius:12px;padding:12px}
.inapp{box-shadow:0 4px 16px rgba(0,0,0,.3)}
.inapp.TOP_BANNER{top:12px}
.inapp.BOTTOM_BANNER{bottom:12px}
.inapp.MIDDLE_BANNER,.inapp.OVERLAYS,.inapp.CAROUSEL{top:35%}
.inapp.OVERLAYS{top:12px;bottom:12px}
.inapp.MOBILE_FEED{top:60px}
.inapp img,.inapp .img{width:100%;border-radius:8px}
.inapp .img{height:80px}
.inapp .buttons{display:flex;gap:8px;margin-top:8px}
.inapp button{flex:1;border:0;border-radius:8px;padding:8px;background:#0a84ff;color:#fff}
.email{background:#fff;border-radius:8px;overflow:hidden;width:600px}
.email .inbox{padding:10px 12px;border-bottom:1px solid #ddd}
.email .pre{color:#777}
.email iframe{width:100%;height:360px;border:0}
.email pre{white-space:pre-wrap;padding:8px 12px;margin:0;background:#fafafa}
"""


def as_html(title: str, run_date: dt.date | None, messages: list[PreviewMessage], remote_images: bool = True) -> str:
    """A self-contained page; every value is escaped and the page allows no scripts. Without
    `remote_images` it loads nothing at all: each image is drawn as a box naming its URL."""
    e = html.escape
    cards = []
    for m in messages:
        campaign = f" · variant {e(m.variant)}" if m.of_campaign else ""
        targeting = f" · {'targeted' if m.on_target_list else 'not targeted'}" if m.of_campaign else ""
        meta = (
            f"<div class='meta'>{e(m.customer_id)}{campaign} · locale {e(str(m.content_locale))} "
            f"(customer {e(m.customer_locale or '-')}){targeting}</div>"
        )
        if m.error or m.payload is None:
            body = f"<div class='error'>Not sent: {e(m.error or '')}</div>"
        elif m.channel == "push":
            body = _push_html(m.payload, remote_images)
        elif m.channel == "in_app":
            body = _inapp_html(m.payload, remote_images)
        else:
            body = _email_html(m.payload)
        width = " style='width:600px'" if m.channel == "email" else ""
        cards.append(f"<div class='card'{width}>{meta}{body}</div>")
    images = "https: data:" if remote_images else "data:"  # the email body's frame inherits this policy
    when = f" for {run_date.isoformat()}" if run_date is not None else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src {images}; "
        "style-src 'unsafe-inline'; frame-src 'self'\">"
        f"<title>Preview: {e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Preview of {e(title)}{when}</h1>{''.join(cards)}</body></html>"
    )


def _img(url: str | None, remote: bool) -> str:
    if not url:
        return ""
    if not remote:
        return f"<div class='img' title='{html.escape(url)}'>image: {html.escape(url)}</div>"
    return f"<img src='{html.escape(url)}' alt=''>"


def _push_html(p: dict[str, Any], remote_images: bool) -> str:
    e = html.escape
    link = f"<div class='link'>opens {e(p['deep_link'])}</div>" if p.get("deep_link") else ""
    return (
        "<div class='phone'><div class='screen'><div class='push'><div style='flex:1'>"
        f"<div class='app'>Shop · now</div><b>{e(p.get('title', ''))}</b>{e(p.get('body', ''))}{link}</div>"
        f"{_img(p.get('image_url'), remote_images)}</div></div></div>"
    )


def _inapp_html(p: dict[str, Any], remote_images: bool) -> str:
    e = html.escape
    buttons = "".join(
        f"<button title='{e(b['action'])} {e(b.get('link', ''))}'>{e(b.get('text', ''))}</button>"
        for b in p.get("buttons", [])
    )
    return (
        f"<div class='phone'><div class='screen'><div class='inapp {e(p.get('layout', 'BOTTOM_BANNER'))}'>"
        f"{_img(p.get('image_url'), remote_images)}<b>{e(p.get('header', ''))}</b><div>{e(p.get('body', ''))}</div>"
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
