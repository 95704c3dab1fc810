"""The stack test's console step: after the night, the marketer console (as docker-compose runs it)
starts on the night's warehouse, logs a user in over real HTTP, and shows what the night computed:
a segment's size from `segment_stats`, a campaign's funnel, and the sends calendar."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import requests

from campaign_devtools.local_stack import StackError
from campaign_orchestrator.console.users import hash_password

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class ConsoleCheckFailed(StackError):
    """The console did not start, let its user in, or show the night's figures."""


def console_command(port: int, warehouse_url: str, project: Path) -> list[str]:
    return [
        sys.executable, "-m", "campaign_orchestrator.cli", "console", "--host", "127.0.0.1", "--port", str(port),
        "--warehouse", warehouse_url, "--config", str(project / "marketing"),
        "--contracts", str(project / "data_contracts"),
    ]  # fmt: skip


def console_environment() -> tuple[dict[str, str], str]:
    """The console's secret and a one-user users file (an approver), and that user's password."""
    password = secrets.token_urlsafe(16)
    users = {"users": [{"name": "stack", "role": "approver", "password_hash": hash_password(password)}]}
    env = {"CAMPAIGNS_CONSOLE_SECRET": secrets.token_urlsafe(48), "CAMPAIGNS_CONSOLE_USERS_JSON": json.dumps(users)}
    return env, password


def read_from_console(base: str, password: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise ConsoleCheckFailed(f"the console at {base} did not answer within {timeout:.0f} s")
        time.sleep(0.5)
    http = requests.Session()
    token = CSRF_RE.search(http.get(f"{base}/login", timeout=30).text)
    if token is None:
        raise ConsoleCheckFailed("the login page carries no CSRF token")
    form = {"csrf_token": token.group(1), "name": "stack", "password": password, "next": "/campaigns"}
    login = http.post(f"{base}/login", data=form, timeout=30, allow_redirects=False)
    if login.status_code != 303:
        raise ConsoleCheckFailed(f"logging in answered {login.status_code}")
    segment = http.get(f"{base}/segments/high_value", timeout=30).text
    sized = re.search(r'id="sizes".*?<td class="num">([\d,]+)</td>', segment, re.S)
    if sized is None:
        raise ConsoleCheckFailed("the segment page shows no size from the night (segment_stats)")
    campaign = http.get(f"{base}/campaigns/winback_push", timeout=30).text
    if not re.search(r'id="funnels".*?<td class="num">', campaign, re.S):
        raise ConsoleCheckFailed("the campaign page shows no funnel from the night")
    calendar = http.get(f"{base}/campaigns/calendar", timeout=30)
    days = calendar.text.count('class="day')
    if calendar.status_code != 200 or days != 14 or "data-campaign=" not in calendar.text:
        raise ConsoleCheckFailed(f"the calendar answered {calendar.status_code} with {days} days")
    return {"console_segment_size": int(sized.group(1).replace(",", "")), "console_calendar_days": days}
