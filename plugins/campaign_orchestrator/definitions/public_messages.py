"""Public in-app messages: notices every customer's app shows, such as an outage or a forced update.

They are not campaigns: no audience, no consent or caps, no personalisation. Marketers or the
on-call engineer list them in `marketing/public_messages.yaml`; each night (and on demand with
`campaigns notices`) they are upserted into `inapp_messages` by a message id derived from their
id, with no customer. Editing a notice updates its row; removing one ends it now.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from campaign_orchestrator.definitions.base import ID_PATTERN, StrictModel
from campaign_orchestrator.definitions.templates import InAppContent
from campaign_orchestrator.definitions.yaml_files import pydantic_problems, read_yaml_doc

NOTICES_FILE = "public_messages.yaml"
NOTICE_NAMESPACE = uuid.UUID("0b8f4c7e-2d1a-4f5e-9c3b-7a6d5e4f3a21")
CAMPAIGN_PREFIX = "public:"


class PublicMessage(StrictModel):
    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["outage", "forced_update", "announcement"]
    content: InAppContent
    priority: int = Field(default=1, ge=1, le=5, description="1 = critical, shown before campaign messages")
    start_at: dt.datetime
    end_at: dt.datetime | None = None
    min_app_version: str | None = Field(default=None, description="forced_update: versions below must update")

    @model_validator(mode="after")
    def _plain_and_ordered(self) -> PublicMessage:
        texts = [self.content.header, self.content.body, *(b.text for b in self.content.buttons)]
        if any("{{" in t or "{%" in t for t in texts):
            raise ValueError("public messages are the same for everyone: no {{ }} placeholders")
        if self.end_at is not None and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        if self.kind == "forced_update" and not self.min_app_version:
            raise ValueError("a forced_update needs min_app_version")
        return self

    @property
    def message_id(self) -> str:
        return str(uuid.uuid5(NOTICE_NAMESPACE, self.id))


def load_public_messages(config_dir: Path, problems: list[str]) -> list[PublicMessage]:
    path = config_dir / NOTICES_FILE
    if not path.exists():
        return []
    doc = read_yaml_doc(path, problems)
    if doc is None:
        return []
    items = doc.data.get("public_messages") if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        problems.append(f"{path}: public_messages: must be a list")
        return []
    out: list[PublicMessage] = []
    for i, item in enumerate(items):
        try:
            out.append(PublicMessage.model_validate(item))
        except ValidationError as exc:
            problems.extend(pydantic_problems(path, f"public_messages[{i}]", exc, doc))
    ids = [m.id for m in out]
    problems.extend(f"{path}: public message {d!r} is listed twice" for d in {x for x in ids if ids.count(x) > 1})
    return out
