"""The inbox API's request and response bodies: what the OpenAPI schema promises the apps."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from campaign_orchestrator.inbox.engagement import Outcome
from campaign_orchestrator.inbox.preferences import PreferenceChannel

ID_TEXT = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$"
MESSAGE_ID = r"^[A-Za-z0-9-]+$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it at the door, not with a 500


def plausible_time(value: dt.datetime) -> dt.datetime:
    """An event time a device could have: 2000-2100 (a year-1 timestamp is a broken clock)."""
    if not 2000 <= value.year <= 2100:
        raise ValueError("a time between the years 2000 and 2100")
    return value


EventTime = Annotated[dt.datetime, AfterValidator(plausible_time)]
EventType = Literal[
    "displayed",
    "clicked",
    "dismissed",
    "read",
    "archived",
    "acknowledged",
    "_inapp.message_displayed",
    "_inapp.message_clicked",
    "_inapp.message_dismissed",
]
BulkAction = Literal["read", "archived", "dismissed", "acknowledged"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Button(BaseModel):
    text: str
    action: str
    link: str | None


class FeedItem(BaseModel):
    id: str
    campaign_id: str
    variant: str
    public: bool
    pinned: bool
    priority: int
    layout: str
    header: str
    body: str
    image_url: str | None
    buttons: list[Button]
    deep_link: str | None
    data: dict[str, str]
    created_at: str | None
    starts_at: str | None
    expires_at: str | None
    seen_at: str | None
    read_at: str | None
    clicked_at: str | None
    dismissed_at: str | None
    archived_at: str | None
    acknowledged_at: str | None


class Feed(BaseModel):
    items: list[FeedItem]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")
    total: int = Field(description="showable, unarchived messages")
    unread: int
    unseen: int


class PublicMessages(BaseModel):
    items: list[FeedItem]


class EventIn(Strict):
    id: str = Field(min_length=1, max_length=64, pattern=ID_TEXT, description="the client's event id (idempotency)")
    message_id: str = Field(min_length=1, max_length=36, pattern=MESSAGE_ID)
    type: EventType
    at: EventTime | None = Field(default=None, description="when it happened on the device; default now")
    session_id: str | None = Field(default=None, max_length=64, pattern=ID_TEXT)
    app_id: str | None = Field(default=None, max_length=128, pattern=ID_TEXT)


class EventBatch(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=100)


class EventResult(BaseModel):
    id: str
    outcome: Outcome


class EventResults(BaseModel):
    results: list[EventResult]


class BulkState(Strict):
    action: BulkAction
    status: Literal["active", "unread", "unseen", "read"] = "active"
    campaign_id: str | None = Field(default=None, max_length=128, pattern=ID_TEXT)


class BulkStateResult(BaseModel):
    changed: int


class ChannelState(BaseModel):
    enabled: bool
    since: str | None


class HistoryEntry(BaseModel):
    channel: str
    enabled: bool
    ts: str | None
    source: str | None
    caller: str


class Preferences(BaseModel):
    customer_id: str
    channels: dict[str, ChannelState]
    history: list[HistoryEntry]


class PreferencesUpdate(Strict):
    channels: dict[PreferenceChannel, bool] = Field(min_length=1, description="channel -> enabled")
    source: str = Field(min_length=1, max_length=128, pattern=ID_TEXT, description="where: app_settings, ...")


class DeviceUpdate(Strict):
    platform: Literal["ios", "android", "web"]
    push_token: str | None = Field(default=None, max_length=4096, pattern=NO_NUL)
    endpoint_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_TEXT)


class Device(BaseModel):
    customer_id: str
    app_id: str
    platform: str
    push_token_present: bool
    endpoint_id: str | None
    updated_at: str | None


class TokenRequest(Strict):
    customer_id: str = Field(min_length=1, max_length=64, pattern=ID_TEXT)
    ttl_seconds: int = Field(default=3600, ge=60, le=86400)


class Token(BaseModel):
    token: str
    expires_at: str


class Problem(BaseModel):
    detail: str


class PinpointButtonConfig(BaseModel):
    ButtonAction: Literal["LINK", "DEEP_LINK", "CLOSE"]
    Text: str
    Link: str | None = None


class PinpointButton(BaseModel):
    DefaultConfig: PinpointButtonConfig


class PinpointHeader(BaseModel):
    Alignment: Literal["LEFT", "CENTER", "RIGHT"]
    Header: str


class PinpointBody(BaseModel):
    Alignment: Literal["LEFT", "CENTER", "RIGHT"]
    Body: str


class PinpointContent(BaseModel):
    HeaderConfig: PinpointHeader
    BodyConfig: PinpointBody
    ImageUrl: str | None = None
    PrimaryBtn: PinpointButton | None = None
    SecondaryBtn: PinpointButton | None = None


class PinpointInAppMessage(BaseModel):
    Layout: str
    Content: list[PinpointContent]
    CustomConfig: dict[str, str]


class PinpointQuietTime(BaseModel):
    Start: str
    End: str


class PinpointSchedule(BaseModel):
    EndDate: str | None = None
    EventFilter: dict[str, Any]
    QuietTime: PinpointQuietTime | None = None


class PinpointCampaign(BaseModel):
    CampaignId: str
    TreatmentId: str
    Priority: int
    DailyCap: int
    SessionCap: int
    TotalCap: int
    Schedule: PinpointSchedule
    InAppMessage: PinpointInAppMessage


class PinpointMessages(BaseModel):
    """GetInAppMessages' InAppMessagesResponse."""

    InAppMessageCampaigns: list[PinpointCampaign]


class PinpointEvent(BaseModel):
    EventType: str = Field(min_length=1, max_length=128)
    Timestamp: EventTime
    Attributes: dict[str, str] = Field(default_factory=dict)
    Session: dict[str, Any] | None = None
    AppPackageName: str | None = None


class PinpointBatchItem(BaseModel):
    Endpoint: dict[str, Any] = Field(default_factory=dict)
    Events: dict[str, PinpointEvent] = Field(default_factory=dict, max_length=100)


class PinpointEventsRequest(BaseModel):
    BatchItem: dict[str, PinpointBatchItem] = Field(min_length=1, max_length=100, description="endpoint id -> events")

    @model_validator(mode="after")
    def _ids(self) -> PinpointEventsRequest:
        ids = re.compile(ID_TEXT)
        for endpoint_id, item in self.BatchItem.items():
            if len(endpoint_id) > 64 or not ids.fullmatch(endpoint_id):
                raise ValueError("an endpoint id is 1-64 letters, digits and _.:@-")
            if any(len(e) > 64 or not ids.fullmatch(e) for e in item.Events):
                raise ValueError("an event id is 1-64 letters, digits and _.:@-")
        return self


class PinpointItemResponse(BaseModel):
    Message: str
    StatusCode: int


class PinpointEndpointResult(BaseModel):
    EndpointItemResponse: PinpointItemResponse
    EventsItemResponse: dict[str, PinpointItemResponse]


class PinpointEventsResults(BaseModel):
    Results: dict[str, PinpointEndpointResult]


class PinpointEventsResponse(BaseModel):
    EventsResponse: PinpointEventsResults
