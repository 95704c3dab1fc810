"""The registry of deep links the apps handle (`marketing/deep_links.yaml`).

A push or button that opens a screen the app no longer has lands the customer on an error page,
so templates may only link to routes listed here as active. Routes are patterns: `{name}`
stands for one path segment (`shop://product/{sku}`); a query string is always allowed.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from campaign_orchestrator.definitions.base import StrictModel
from campaign_orchestrator.definitions.yaml_files import pydantic_problems, read_yaml_doc

REGISTRY_FILE = "deep_links.yaml"


class Route(StrictModel):
    route: str = Field(pattern=r"^[a-z][a-z0-9+.-]*://\S*$", description="e.g. shop://product/{sku}")
    active: bool = True
    retired_on: dt.date | None = Field(default=None, description="from this day the route is gone, active or not")
    description: str | None = None


class RegistryFile(StrictModel):
    routes: list[Route]


@functools.lru_cache(maxsize=256)
def _pattern(route: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_][a-z0-9_]*\})", route)
    body = "".join("[^/?#]+" if re.fullmatch(r"\{[a-z_][a-z0-9_]*\}", p) else re.escape(p) for p in parts)
    return re.compile(rf"{body}/?(?:[?#].*)?", re.DOTALL)


@dataclass(frozen=True)
class DeepLinkRegistry:
    routes: tuple[Route, ...]
    path: str = REGISTRY_FILE

    def check(self, link: str) -> str | None:
        """None if the link opens an active route, else why not (without echoing the link's values)."""
        matched = [r for r in self.routes if _pattern(r.route).fullmatch(link)]
        if not matched:
            return f"not a route in {self.path}"
        today = dt.date.today()
        if not any(r.active and (r.retired_on is None or r.retired_on > today) for r in matched):
            retired = next((r.retired_on for r in matched if r.retired_on), None)
            when = f" on {retired.isoformat()}" if retired else ""
            return f"route {matched[0].route!r} was retired{when} ({self.path})"
        return None


def load_registry(config_dir: Path, problems: list[str]) -> DeepLinkRegistry | None:
    """The registry, or None when the folder has none (links are then not checked)."""
    path = config_dir / REGISTRY_FILE
    if not path.exists():
        return None
    before = len(problems)
    doc = read_yaml_doc(path, problems)
    if len(problems) > before or doc is None:
        return None
    try:
        registry = RegistryFile.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(path, "", exc, doc))
        return None
    return DeepLinkRegistry(routes=tuple(registry.routes), path=f"{config_dir.name}/{REGISTRY_FILE}")
