"""Amazon Pinpoint's in-app API shapes, served from this store, so a Pinpoint SDK can move over.

`GetInAppMessages` answers `{"InAppMessageCampaigns": [...]}`: one entry per showable message
with `CampaignId`, `TreatmentId`, `Priority` (1 highest), the caps (0 = none), `Schedule`
(`EndDate`, `EventFilter`: shown at session start, `QuietTime`) and `InAppMessage` (`Layout`,
`Content[]`, `CustomConfig`). Pinpoint's SDKs enforce caps on the device only; this server also
leaves capped campaigns out. `PutEvents` in-app events carry `campaign_id` and `treatment_id`
attributes, which resolve to the customer's newest showable message of that campaign.
"""

from __future__ import annotations

from typing import Any

from campaign_orchestrator.clock import iso_utc
from campaign_orchestrator.definitions.campaigns import QuietHours
from campaign_orchestrator.inbox.store import StoredMessage

SESSION_START = {
    "FilterType": "SYSTEM",
    "Dimensions": {
        "Attributes": {},
        "EventType": {"DimensionType": "INCLUSIVE", "Values": ["_session.start"]},
        "Metrics": {},
    },
}


def _button(button: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"ButtonAction": str(button.get("action", "CLOSE")), "Text": str(button.get("text", ""))}
    if button.get("link"):
        config["Link"] = str(button["link"])
    return {"DefaultConfig": config}


def content_item(content: dict[str, Any]) -> dict[str, Any]:
    buttons = [b for b in content.get("buttons") or [] if isinstance(b, dict)]
    item: dict[str, Any] = {
        "HeaderConfig": {"Alignment": "LEFT", "Header": str(content.get("header", ""))},
        "BodyConfig": {"Alignment": "LEFT", "Body": str(content.get("body", ""))},
    }
    if content.get("image_url"):
        item["ImageUrl"] = str(content["image_url"])
    if buttons:
        item["PrimaryBtn"] = _button(buttons[0])
    if len(buttons) > 1:
        item["SecondaryBtn"] = _button(buttons[1])
    return item


def in_app_campaign(m: StoredMessage, quiet: QuietHours | None) -> dict[str, Any]:
    schedule: dict[str, Any] = {"EventFilter": SESSION_START}
    if m.end_at is not None:
        schedule["EndDate"] = iso_utc(m.end_at)
    if quiet is not None and not m.public:
        schedule["QuietTime"] = {"Start": quiet.start, "End": quiet.end}
    return {
        "CampaignId": m.campaign_id,
        "TreatmentId": m.variant,
        "Priority": m.priority,
        "DailyCap": m.caps.get("daily_cap") or 0,
        "SessionCap": m.caps.get("session_cap") or 0,
        "TotalCap": m.caps.get("total_cap") or 0,
        "Schedule": schedule,
        "InAppMessage": {
            "Layout": str(m.content.get("layout", "BOTTOM_BANNER")),
            "Content": [content_item(m.content)],
            "CustomConfig": {str(k): str(v) for k, v in (m.content.get("data") or {}).items()},
        },
    }


def in_app_messages(messages: list[StoredMessage], quiet: QuietHours | None) -> dict[str, Any]:
    return {"InAppMessageCampaigns": [in_app_campaign(m, quiet) for m in messages]}


def message_for(messages: list[StoredMessage], campaign_id: str, treatment_id: str | None) -> StoredMessage | None:
    """The newest message of the campaign (and treatment, when given) among the customer's."""
    matching = [m for m in messages if m.campaign_id == campaign_id and (treatment_id in (None, "", m.variant))]
    return max(matching, key=lambda m: (m.created_at, m.message_id), default=None)
