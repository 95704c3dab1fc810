"""The feed: which of a customer's stored messages an app may show now, in which order, by page.

A targeted message is shown while it has started and not expired, is neither dismissed nor
archived, no cap of its campaign is reached, every deep link it opens is an active route, and the
customer's in-app consent is still given. Public messages (outages, forced updates) skip consent
and caps, honour `min_app_version`, and are pinned above everything. Order: pinned, priority
(1 first), newest, id. The cursor is the last item's sort key, so a page never repeats or skips
a message that existed when the first page was read, whatever arrives in between.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.inbox.store import Inbox, StoredMessage

Status = Literal["active", "unread", "unseen", "read", "archived"]
SortKey = tuple[int, int, int, str]
LinkCheck = Callable[[str], str | None]


class BadFeedRequest(CampaignError, InvalidInput):
    """A cursor that is not one this service issued, or an app version that is not a version."""


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int
    unread: int
    unseen: int


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        raise BadFeedRequest("app_version is not a version number (e.g. 5.2.1)") from None


def sort_key(m: StoredMessage) -> SortKey:
    created = int(m.created_at.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    return (0 if m.public else 1, m.priority, -created, m.message_id)


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        pinned, priority, created, message_id = raw
        if not (isinstance(pinned, int) and isinstance(priority, int) and isinstance(created, int)):
            raise ValueError
        return (pinned, priority, created, str(message_id))
    except (ValueError, TypeError, json.JSONDecodeError):
        raise BadFeedRequest("cursor is not one this service issued; start again without it") from None


def _buttons(m: StoredMessage) -> list[dict[str, Any]]:
    return [b for b in m.content.get("buttons") or () if isinstance(b, dict)]


def _links(buttons: list[dict[str, Any]]) -> list[str]:
    return [str(b["link"]) for b in buttons if b.get("action") == "DEEP_LINK" and b.get("link")]


def deep_links(m: StoredMessage) -> list[str]:
    return _links(_buttons(m))


def _public_applies(m: StoredMessage, app_version: Version | None) -> bool:
    """A forced update shows to apps below its minimum version; an app that sends no version sees it."""
    minimum = m.content.get("min_app_version")
    if not minimum or app_version is None:
        return True
    try:
        return app_version < Version(str(minimum))
    except InvalidVersion:
        return True


def capped(m: StoredMessage, session_id: str | None) -> bool:
    """A cap reached in its scope; a session cap only counts when the app names its session."""
    return any(
        cap and m.displays.get(kind, 0) >= cap and (kind != "session_cap" or session_id) for kind, cap in m.caps.items()
    )


def showable(
    inbox: Inbox,
    now: dt.datetime,
    session_id: str | None,
    app_version: Version | None,
    link_check: LinkCheck,
) -> list[StoredMessage]:
    """The messages the app may show now (archived ones included; the status filter decides)."""
    out = []
    for m in inbox.messages:
        if m.states["dismissed_at"] is not None:
            continue
        if m.public:
            if not _public_applies(m, app_version):
                continue
        elif inbox.consent is not True or capped(m, session_id):
            continue
        if any(link_check(link) is not None for link in deep_links(m)):
            continue
        out.append(m)
    return sorted(out, key=sort_key)


def _matches(m: StoredMessage, status: Status) -> bool:
    s = m.states
    if status == "archived":
        return s["archived_at"] is not None
    if s["archived_at"] is not None:
        return False
    if status == "unread":
        return s["read_at"] is None
    if status == "unseen":
        return s["seen_at"] is None
    if status == "read":
        return s["read_at"] is not None
    return True


def select_status(messages: list[StoredMessage], status: Status) -> list[StoredMessage]:
    return [m for m in messages if _matches(m, status)]


def item(m: StoredMessage) -> dict[str, Any]:
    c = m.content
    buttons = _buttons(m)
    links = _links(buttons)
    data = c.get("data")
    return {
        "id": m.message_id,
        "campaign_id": m.campaign_id,
        "variant": m.variant,
        "public": m.public,
        "pinned": m.public,
        "priority": m.priority,
        "layout": c.get("layout", "BOTTOM_BANNER"),
        "header": c.get("header", ""),
        "body": c.get("body", ""),
        "image_url": c.get("image_url"),
        "buttons": [
            {"text": str(b.get("text", "")), "action": str(b.get("action", "CLOSE")), "link": b.get("link")}
            for b in buttons
        ],
        "deep_link": links[0] if links else None,
        "data": {str(k): str(v) for k, v in data.items()} if data else {},
        # Datetimes as they are: json_response's orjson writes them as ISO 8601 UTC ("...Z") in C.
        "created_at": m.created_at,
        "starts_at": m.start_at,
        "expires_at": m.end_at,
        **m.states,
    }


def paginate(messages: list[StoredMessage], status: Status, cursor: str | None, limit: int) -> FeedPage:
    """One page of the showable messages; counts cover every showable, unarchived message."""
    live = [m for m in messages if m.states["archived_at"] is None]
    chosen = select_status(messages, status)
    if cursor:
        after = decode_cursor(cursor)
        chosen = [m for m in chosen if sort_key(m) > after]
    page = chosen[:limit]
    more = len(chosen) > limit
    return FeedPage(
        items=[item(m) for m in page],
        next_cursor=encode_cursor(sort_key(page[-1])) if more and page else None,
        total=len(live),
        unread=sum(1 for m in live if m.states["read_at"] is None),
        unseen=sum(1 for m in live if m.states["seen_at"] is None),
    )
