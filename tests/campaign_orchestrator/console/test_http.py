"""The console over HTTP, as a real process: CSRF, roles on every route, a log without data."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.campaign_orchestrator.console.conftest import ConsoleServer
from tests.conftest import ROOT


def test_pages_need_a_login(console_server: ConsoleServer):
    anonymous = console_server.session()
    response = anonymous.get("/campaigns/winback_push")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert anonymous.post("/campaigns/winback_push/pause", {"version": "x"}).status_code == 401


def test_a_state_change_without_the_csrf_token_is_refused(console_server: ConsoleServer):
    bo = console_server.session("bo")
    version = "absent"
    forged = bo.post("/campaigns/winback_push/pause", {"version": version}, csrf=False)
    assert forged.status_code == 403 and "security token" in forged.text
    wrong = bo.http.post(
        console_server.url + "/campaigns/winback_push/pause",
        data={"version": version, "csrf_token": "guessed"},
        timeout=30,
    )
    assert wrong.status_code == 403
    header = bo.http.post(
        console_server.url + "/campaigns/winback_push/pause",
        data={"version": version},
        headers={"X-CSRF-Token": bo.csrf("/campaigns")},
        timeout=30,
        allow_redirects=False,
    )
    assert header.status_code == 409  # past the CSRF check (header), refused for its stale version
    assert "status: paused" not in (console_server.config_dir / "campaigns" / "winback_push.yaml").read_text()


def test_each_role_reaches_only_what_it_may(console_server: ConsoleServer):
    vi, ana = console_server.session("vi"), console_server.session("ana")
    for path in ("/segments", "/segments/high_value", "/templates/winback_push", "/lifecycles", "/campaigns"):
        assert vi.get(path).status_code == 200, path
    assert vi.get("/campaigns/winback_push/edit").status_code == 403
    assert vi.post("/campaigns/winback_push/edit", {"version": "absent", "text": "x"}).status_code == 403
    assert ana.post("/campaigns/winback_push/pause", {"version": "absent"}).status_code == 403
    page = ana.get("/campaigns/winback_push").text
    assert 'data-action="edit"' not in page and 'id="edit-link"' in page and 'data-action="pause"' not in page


def test_browse_shows_use_sizes_and_lint(console_server: ConsoleServer):
    vi = console_server.session("vi")
    found = vi.get("/segments?q=lapsed").text
    assert "lapsed_high_value" in found and "gold_or_platinum" not in found
    page = vi.get("/segments/lapsed_high_value").text
    assert 'href="/campaigns/winback_push"' in page  # used by
    assert "No run has sized it yet" in page and "campaigns validate</code> passes" in page
    template = vi.get("/templates/winback_push").text
    assert 'href="/campaigns/winback_push"' in template


def test_the_access_log_names_route_templates_only(console_server: ConsoleServer):
    vi = console_server.session("vi")
    vi.get("/segments?q=C0000137")
    log = console_server.log()
    assert "GET /{kind} 200" in log and "C0000137" not in log and "viewer-pass" not in log
    assert "campaigns_console=" not in log


def test_the_console_refuses_to_start_without_a_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CAMPAIGNS_CONSOLE_SECRET"}
    env["PYTHONPATH"] = str(ROOT / "plugins")
    result = subprocess.run(
        [sys.executable, "-m", "campaign_orchestrator.cli", "console", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "CAMPAIGNS_CONSOLE_SECRET" in result.stderr
