"""The OpenAPI schema is complete and true: schemathesis drives the running service from it.

A bounded number of generated requests per operation, as a back-end caller (server key) so they
reach the handlers; no response may be a server error or break the schema it documents.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.campaign_orchestrator.inbox.conftest import SERVER_KEY, Inbox, start_inbox

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def test_every_route_the_apps_call_is_in_the_schema(inbox: Inbox):
    paths = inbox.http.get(inbox.url + "/openapi.json", timeout=10).json()["paths"]
    assert {
        "/v1/customers/{customer_id}/feed",
        "/v1/customers/{customer_id}/events",
        "/v1/customers/{customer_id}/messages/state",
        "/v1/customers/{customer_id}/preferences",
        "/v1/customers/{customer_id}/devices/{app_id}",
        "/v1/public-messages",
        "/v1/tokens",
        "/v1/apps/{application_id}/endpoints/{endpoint_id}/inappmessages",
        "/v1/apps/{application_id}/events",
    } <= set(paths)


def test_schemathesis_finds_no_server_error_and_no_response_off_schema(inbox: Inbox, tmp_path: Path):
    # Its own process on the same store, with a limit generated requests do not reach.
    process, url = start_inbox(inbox.store_url, inbox.config_dir, tmp_path / "inbox.log", rate_limit="100000/minute")
    try:
        run_schemathesis(url, tmp_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_schemathesis(url: str, tmp_path: Path) -> None:
    command = [str(Path(sys.executable).parent / "st"), "run", f"{url}/openapi.json", "--checks", CHECKS]
    command += ["--max-examples", "12", "--seed", "16", "-H", f"X-Api-Key: {SERVER_KEY}", "--request-timeout", "30"]
    command += ["--generation-deterministic", "--no-color"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
