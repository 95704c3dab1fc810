"""The campaign editor over HTTP on a real console and warehouse: the form saves a draft and leaves
the running version alone, a bad field gets validate's message at the field, the funnel is the one
`campaigns plan` computes and writes nothing, and the calendar is for every role."""

from __future__ import annotations

import html
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from campaign_orchestrator.console.campaign_form import form_values
from tests.campaign_orchestrator.console.conftest import DATA_DAY, Client, ConsoleServer
from tests.campaign_orchestrator.console.test_campaign_form import posted
from tests.conftest import ROOT


def version(client: Client, campaign: str) -> str:
    page = client.get(f"/campaigns/{campaign}/form").text
    found = re.search(r'name="version" value="([^"]+)"', page)
    assert found, page[-2000:]
    return found.group(1)


def api(client: Client, path: str, body: dict) -> dict:
    token = client.csrf("/campaigns")
    response = client.http.post(client.url + path, json=body, headers={"X-CSRF-Token": token}, timeout=120)
    return {"status": response.status_code, **response.json()}


def counts(url: str) -> dict[str, int]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("target_list", "segment_stats")}


def test_a_viewer_sees_the_calendar_but_not_the_editor(data_console: ConsoleServer):
    vi = data_console.session("vi")
    assert vi.get("/campaigns/winback_push/form").status_code == 403
    page = vi.get("/campaigns/calendar?start=2026-12-07")
    assert page.status_code == 200
    days = {chunk[:10]: set(re.findall(r'data-campaign="(\w+)"', chunk)) for chunk in page.text.split('data-day="')[1:]}
    assert len(days) == 14 and "winback_push" in days["2026-12-10"]
    assert [d for d, sent in days.items() if "anz_gold_weekly" in sent] == ["2026-12-11", "2026-12-18"]  # Fridays


def test_the_form_saves_a_draft_and_the_running_version_stays(data_console: ConsoleServer):
    ana = data_console.session("ana")
    running = (data_console.config_dir / "campaigns" / "big_spender_thanks.yaml").read_text()
    fields = posted(form_values(running))
    fields.update(holdout_percent="25", send_time="19:15", quiet="none")
    saved = ana.post("/campaigns/big_spender_thanks/form", {**fields, "version": version(ana, "big_spender_thanks")})
    assert saved.status_code == 303, saved.text[-2000:]
    draft = (data_console.config_dir / "drafts" / "campaigns" / "big_spender_thanks.yaml").read_text()
    assert "holdout_percent: 25" in draft and 'send_time: "19:15"' in draft and "quiet_hours: none" in draft
    assert "status: draft" in draft
    assert (data_console.config_dir / "campaigns" / "big_spender_thanks.yaml").read_text() == running


def test_a_bad_field_gets_the_validate_message_at_that_field(data_console: ConsoleServer):
    ana = data_console.session("ana")
    running = (data_console.config_dir / "campaigns" / "winback_push.yaml").read_text()
    fields = {**posted(form_values(running)), "priority": "soon", "version": version(ana, "winback_push")}
    refused = ana.post("/campaigns/winback_push/form", fields)
    assert refused.status_code == 422
    at_field = re.search(r'data-problems-for="priority" role="alert"><li>(.*?)</li>', refused.text, re.S)
    assert at_field, refused.text[-3000:]
    message = html.unescape(at_field.group(1))
    draft = data_console.config_dir / "drafts" / "campaigns" / "winback_push.yaml"
    assert message.startswith(f"{draft}: priority: Input should be a valid integer")
    assert re.search(r'name="priority" value="soon"[^>]*aria-invalid="true"', refused.text)
    assert not draft.exists()  # nothing was written
    checked = api(ana, "/api/campaigns/winback_push/check", {"fields": {**fields, "priority": "soon"}})
    assert checked["problems"] == [{"message": message, "field": "priority"}]


def test_the_funnel_is_what_campaigns_plan_computes_and_nothing_is_written(data_console: ConsoleServer, tmp_path: Path):
    ana = data_console.session("ana")
    running = (data_console.config_dir / "campaigns" / "churn_winback_email.yaml").read_text()
    fields = posted(form_values(running))
    before = counts(data_console.warehouse_url)
    planned = api(ana, "/api/campaigns/churn_winback_email/plan", {"fields": fields, "date": DATA_DAY})
    assert planned["status"] == 200 and planned["scheduled"], planned
    assert counts(data_console.warehouse_url) == before  # rolled back
    copy = tmp_path / "copy.sqlite"
    shutil.copy(data_console.warehouse_url.removeprefix("sqlite:///"), copy)
    cli = [sys.executable, "-m", "campaign_orchestrator.cli", "plan", "--date", DATA_DAY, "--sample", "0"]
    cli += ["--warehouse", f"sqlite:///{copy}", "--config", str(ROOT / "marketing")]
    done = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    line = next(row for row in done.stdout.splitlines() if row.startswith("churn_winback_email "))
    segment, *_reasons, targeted = (int(x) for x in line.split()[1:])
    funnel = planned["campaign"][0]
    assert (funnel["segment_size"], funnel["targeted"]) == (segment, targeted) and targeted > 0
    # A bigger holdout in the unsaved form moves customers from targeted to held out.
    bigger = api(ana, "/api/campaigns/churn_winback_email/plan", {"fields": {**fields, "holdout_percent": "50"}})
    assert bigger["campaign"][0]["held_out"] > funnel["held_out"]
    assert bigger["campaign"][0]["targeted"] < funnel["targeted"]
