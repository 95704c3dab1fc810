"""`campaigns inbox`: refuses to serve without a signing secret, and issues tokens the service accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from campaign_orchestrator.inbox.settings import InboxNotConfigured, InboxSettings, secrets_from_environment
from campaign_orchestrator.inbox.tokens import customer_of

SECRET = "a-signing-secret-of-at-least-32-chars!!"


def campaigns(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_INBOX", "AIRFLOW_CONN_CAMPAIGNS_INBOX"))
    }
    command = [sys.executable, "-m", "campaign_orchestrator.cli", *args]
    return subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False)


def test_serving_without_a_signing_secret_is_one_clear_error_before_any_port_opens():
    done = campaigns("inbox", "serve", "--port", "1", env={})
    assert done.returncode == 1
    assert "CAMPAIGNS_INBOX_SECRET" in done.stderr and "Traceback" not in done.stderr


def test_a_printed_token_names_the_customer_and_the_secret_never_shows():
    done = campaigns("inbox", "token", "C42", "--ttl", "60", env={"CAMPAIGNS_INBOX_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert customer_of(token, SECRET) == "C42" and SECRET not in done.stdout + done.stderr


def test_the_secrets_come_from_the_airflow_connection_when_the_variables_are_unset(monkeypatch):
    for name in ("CAMPAIGNS_INBOX_SECRET", "CAMPAIGNS_INBOX_SERVER_KEY"):
        monkeypatch.delenv(name, raising=False)
    connection = {"conn_type": "generic", "password": SECRET, "extra": {"server_key": "k" * 40}}
    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGNS_INBOX", json.dumps(connection))
    assert secrets_from_environment() == (SECRET, "k" * 40)


def test_a_short_secret_is_refused_and_never_printed():
    with pytest.raises(InboxNotConfigured) as caught:
        InboxSettings(store_url="sqlite://", signing_secret="short")
    assert "short" not in str(caught.value)
    assert SECRET not in repr(InboxSettings(store_url="sqlite://", signing_secret=SECRET))
