"""What a delivery attempt of one shard did and left: counts per campaign, destinations found
down, the shard's messages per state afterwards and the causes of what is not delivered, in one
line for people (`DeliveryReport.summary`, `cause_lines`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from campaign_orchestrator.errors import CampaignError


@dataclass
class DeliveryReport:
    shard: int
    sent: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    unknown: int = 0
    resent_in_flight: int = 0
    requests: int = 0
    # per campaign: requests beyond the first per batch (429, 5xx, timeouts, dropped connections),
    # and seconds its requests waited for the rate limit (client bucket, Retry-After, 429 backoff)
    retried: dict[str, int] = field(default_factory=dict)
    throttled_s: dict[str, float] = field(default_factory=dict)
    waited_for_other_workers_s: float = 0.0
    dead_samples: list[str] = field(default_factory=list)
    # destinations found down in this attempt, with the cause
    down: dict[str, str] = field(default_factory=dict)
    # after the attempt: the shard's messages per state, and why the unsent ones are not sent
    remaining: dict[str, int] = field(default_factory=dict)
    causes: dict[str, dict[str, int]] = field(default_factory=dict)  # state -> cause -> messages
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, bucket: dict[str, int], campaign_id: str, n: int = 1) -> None:
        with self._lock:  # the ledger thread and the main thread both count
            bucket[campaign_id] = bucket.get(campaign_id, 0) + n

    def count_unknown(self, n: int) -> None:
        with self._lock:
            self.unknown += n

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "sent": self.sent,
            "dead": self.dead,
            "failed": self.failed,
            "unknown": self.unknown,
            "resent_in_flight": self.resent_in_flight,
            "requests": self.requests,
            "retried": self.retried,
            "throttled_s": {k: round(v, 3) for k, v in self.throttled_s.items()},
            "waited_for_other_workers_s": round(self.waited_for_other_workers_s, 3),
            "down": self.down,
            "remaining": self.remaining,
            "causes": self.causes,
        }

    @property
    def incomplete(self) -> int:
        """Messages of the shard still to be sent: another attempt may deliver them."""
        return sum(self.remaining.get(s, 0) for s in ("pending", "failed", "in_flight"))

    def summary(self) -> str:
        """One line: the shard's messages per state, and the causes of what is not sent."""
        states = ", ".join(f"{self.remaining.get(s, 0)} {s}" for s in ("sent", "pending", "failed", "unknown", "dead"))
        return f"shard {self.shard}: {states}" + "".join(f"; {c}" for c in cause_lines(self.causes))


def cause_lines(causes: dict[str, dict[str, int]], most: int = 3) -> list[str]:
    """'3690 failed: HTTP 401: Invalid API key', the commonest causes first, per state."""
    lines = []
    for state, by_cause in causes.items():
        ranked = sorted(by_cause.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"{n} {state}: {cause}" for cause, n in ranked[:most]]
        if len(ranked) > most:
            lines.append(f"{sum(n for _, n in ranked[most:])} {state} for {len(ranked) - most} other reasons")
    return lines


class DeliveryIncomplete(CampaignError):
    """Messages are still pending or failed after a delivery attempt; another attempt may send them.
    `details` are the deliver stages' details (remaining per state, causes)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:

        self.details = details
        self.remaining: dict[str, int] = {}
        self.causes: dict[str, dict[str, int]] = {}
        for d in details:
            for state, n in (d.get("remaining") or {}).items():
                self.remaining[state] = self.remaining.get(state, 0) + int(n)
            for state, by_cause in (d.get("causes") or {}).items():
                mine = self.causes.setdefault(state, {})
                for cause, n in by_cause.items():
                    mine[cause] = mine.get(cause, 0) + int(n)
        left = self.remaining.get("pending", 0) + self.remaining.get("failed", 0)
        super().__init__(
            f"{left} messages not delivered yet ({self.remaining.get('pending', 0)} pending, "
            f"{self.remaining.get('failed', 0)} failed): "
            + "; ".join(cause_lines({k: v for k, v in self.causes.items() if k in ("pending", "failed")}))
            + ". Another attempt (the task's retry, or campaigns deliver) sends them once the cause is fixed."
        )
