"""The marketers' files the inbox honours while it runs: the deep link registry and quiet hours.

They are re-read when a file changes (checked at most every few seconds), so a route retired in
`marketing/deep_links.yaml` stops its messages appearing within the feed's freshness bound,
without a restart. A file that does not load keeps the last good version and logs why.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from campaign_orchestrator.definitions.campaigns import QuietHours
from campaign_orchestrator.definitions.deep_links import REGISTRY_FILE, DeepLinkRegistry, load_registry

log = logging.getLogger(__name__)
SETTINGS_FILE = "settings.yaml"


@dataclass(frozen=True)
class MarketingView:
    registry: DeepLinkRegistry | None
    quiet_hours: QuietHours | None
    # link -> (day checked, problem): a route's retirement date can pass while the view lives.
    _checked: dict[str, tuple[dt.date, str | None]] = field(default_factory=dict, compare=False, repr=False)

    def link_problem(self, link: str) -> str | None:
        if self.registry is None:
            return None
        today = dt.date.today()
        known = self._checked.get(link)
        if known is None or known[0] != today:
            if len(self._checked) > 10_000:  # links carry values (a sku): keep the memo bounded
                self._checked.clear()
            known = (today, self.registry.check(link))
            self._checked[link] = known
        return known[1]


def _quiet_hours(config_dir: Path) -> QuietHours | None:
    path = config_dir / SETTINGS_FILE
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    value = doc.get("quiet_hours") if isinstance(doc, dict) else None
    return QuietHours.model_validate(value) if isinstance(value, dict) else None


class MarketingFiles:
    def __init__(self, config_dir: Path, check_every_seconds: float = 5.0) -> None:
        self.config_dir = config_dir
        self.check_every = check_every_seconds
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp: tuple[float, ...] = ()
        self._view = MarketingView(None, None)
        self.current()

    def _mtimes(self) -> tuple[float, ...]:
        paths = (self.config_dir / REGISTRY_FILE, self.config_dir / SETTINGS_FILE)
        return tuple(p.stat().st_mtime if p.exists() else -1.0 for p in paths)

    def current(self) -> MarketingView:
        now = time.monotonic()
        if now - self._checked < self.check_every and self._stamp:
            return self._view
        with self._lock:
            self._checked = now
            stamp = self._mtimes()
            if stamp != self._stamp:
                self._reload(stamp)
        return self._view

    def _reload(self, stamp: tuple[float, ...]) -> None:
        problems: list[str] = []
        registry = load_registry(self.config_dir, problems)
        try:
            quiet = _quiet_hours(self.config_dir)
        except (yaml.YAMLError, ValidationError, OSError) as exc:
            problems.append(f"{SETTINGS_FILE}: quiet_hours: {type(exc).__name__}")
            quiet = self._view.quiet_hours
        if problems:
            log.warning("marketing files: keeping the last good version: %s", "; ".join(problems))
            registry = registry or self._view.registry
        self._view = MarketingView(registry, quiet)
        self._stamp = stamp
