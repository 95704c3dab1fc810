"""After the console's edits the folder still validates, and the night sends what was approved only.

A real console process edits a copy of `marketing/`: winback_push is edited in the form, submitted
by an editor and approved by an approver; a new campaign (a copy of it under another provider id) is
submitted but never approved; europe_newsletter is paused. Then `campaigns validate` and
`campaigns run` (1,500 customers, the provider simulator) run on the edited folder.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

from campaign_orchestrator.console.campaign_form import form_values
from tests.builders import marketing_copy
from tests.campaign_orchestrator.console.conftest import ConsoleServer, serve
from tests.campaign_orchestrator.console.test_campaign_form import posted
from tests.e2e.conftest import RUN_DATE

APPROVED_ID = "8d3f2c1e-winback-push"
DRAFT_ID = "console-draft-never-approved"


def version_of(client, campaign: str, which: str) -> str:
    page = client.get(f"/campaigns/{campaign}").text
    action = {"draft": "submit|approve", "approved": "pause|resume"}[which]
    found = re.search(rf'action="/campaigns/{campaign}/(?:{action})".*?name="version" value="([^"]+)"', page, re.S)
    assert found, page[-3000:]
    return found.group(1)


def edit(server: ConsoleServer, campaign: str, change) -> None:
    ana = server.session("ana")
    page = ana.get(f"/campaigns/{campaign}/edit").text
    text = html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1))  # type: ignore[union-attr]
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    saved = ana.post(f"/campaigns/{campaign}/edit", {"text": change(text), "version": version})
    assert saved.status_code == 303, saved.text[-2000:]
    submitted = ana.post(f"/campaigns/{campaign}/submit", {"version": version_of(ana, campaign, "draft")})
    assert submitted.status_code == 303, submitted.text[-2000:]


def edit_in_form(server: ConsoleServer, campaign: str, changes: dict[str, str]) -> None:
    """Edit through the campaign form (the fields a browser posts), then submit."""
    ana = server.session("ana")
    page = ana.get(f"/campaigns/{campaign}/form").text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    fields = posted(form_values((server.config_dir / "campaigns" / f"{campaign}.yaml").read_text()))
    saved = ana.post(f"/campaigns/{campaign}/form", {**fields, **changes, "version": version})
    assert saved.status_code == 303, saved.text[-2000:]
    submitted = ana.post(f"/campaigns/{campaign}/submit", {"version": version_of(ana, campaign, "draft")})
    assert submitted.status_code == 303, submitted.text[-2000:]


def test_the_night_sends_the_approved_edit_and_not_the_draft(export, sim_process, tmp_path: Path, repo: Path):
    marketing_copy(repo, tmp_path / "marketing")  # the console's folder, no lateness limit: RUN_DATE is past
    for server in serve(tmp_path):
        edit_in_form(server, "winback_push", {"holdout_percent": "5", "send_time": "11:00"})
        bo = server.session("bo")
        approved = bo.post("/campaigns/winback_push/approve", {"version": version_of(bo, "winback_push", "draft")})
        assert approved.status_code == 303, approved.text[-2000:]
        edit(
            server,
            "console_copy_push",
            lambda _t: (
                (repo / "marketing" / "campaigns" / "winback_push.yaml")
                .read_text()
                .replace("id: winback_push", "id: console_copy_push")
                .replace(APPROVED_ID, DRAFT_ID)
            ),
        )
        paused = bo.post(
            "/campaigns/europe_newsletter/pause", {"version": version_of(bo, "europe_newsletter", "approved")}
        )
        assert paused.status_code == 303, paused.text[-2000:]
        folder = server.config_dir
    running = (folder / "campaigns" / "winback_push.yaml").read_text()
    assert "status: approved" in running and "holdout_percent: 5" in running and 'send_time: "11:00"' in running
    assert (folder / "drafts" / "campaigns" / "console_copy_push.yaml").exists()

    env = {**os.environ, "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": sim_process.connection_uri}
    base = [sys.executable, "-m", "campaign_orchestrator.cli"]
    validate = subprocess.run(
        [*base, "validate", "--config", str(folder)], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert validate.returncode == 0, validate.stderr[-3000:]
    warehouse = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    night = ["run", "--date", RUN_DATE.isoformat(), "--config", str(folder), "--warehouse", warehouse]
    run = subprocess.run(
        [*base, *night, "--sources", str(export), "--reports", str(tmp_path / "reports")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    sent_to = {r["campaign_id"] for r in sim_process.get("/_sim/recipients")["recipients"]}
    assert APPROVED_ID in sent_to  # the approved edit runs
    assert DRAFT_ID not in sent_to  # the draft never does
    assert "51b7e0aa-europe-newsletter" not in sent_to  # nor the paused campaign
