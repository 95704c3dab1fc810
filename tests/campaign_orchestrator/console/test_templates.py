"""The template editor over HTTP against a real console on a small real warehouse: the role it
needs, a preview that follows the text, `campaigns validate`'s own messages for an invalid edit,
and saving one template's entry into its file with the rest of the file as it was."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.campaign_orchestrator.console.conftest import Client, ConsoleServer
from tests.conftest import ROOT


def api(client: Client, template_id: str, body: dict[str, Any]) -> requests.Response:
    token = client.csrf("/templates")
    path = f"{client.url}/api/templates/{template_id}/preview"
    return client.http.post(path, json=body, headers={"X-CSRF-Token": token}, timeout=60)


def editor_text(client: Client, template_id: str) -> tuple[str, str]:
    """(the textarea's YAML, the form's version) of the template's editor page."""
    page = client.get(f"/templates/{template_id}/edit")
    assert page.status_code == 200, page.text
    text = page.text.split('id="template-text"')[1].split(">", 1)[1].split("</textarea>")[0]
    version = page.text.split('name="version" value="')[1].split('"')[0]
    return html.unescape(text), version


def validate_with(server: ConsoleServer, tmp_path: Path, file: str, text: str) -> list[str]:
    """What `campaigns validate` prints for the console's folder with `file` changed to `text`
    (run on a copy, its paths spelt as the console's folder)."""
    copy = tmp_path / "marketing"
    shutil.copytree(server.config_dir, copy)
    (copy / file).write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "campaign_orchestrator.cli", "validate", "--config", str(copy)]
    command += ["--contracts", str(ROOT / "data_contracts")]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    lines = (done.stdout + done.stderr).replace(str(copy), str(server.config_dir)).splitlines()
    return [line for line in lines if line.startswith(str(server.config_dir))]


def test_only_editors_open_the_template_editor(data_console: ConsoleServer):
    viewer = data_console.session("vi")
    assert viewer.get("/templates/anz_gold_push/edit").status_code == 403
    assert api(viewer, "anz_gold_push", {"yaml": "id: anz_gold_push\n"}).status_code == 403
    assert 'id="template-edit-link"' not in viewer.get("/templates/anz_gold_push").text
    ana = data_console.session("ana")
    assert 'href="/templates/anz_gold_push/edit"' in ana.get("/templates/anz_gold_push").text
    text, _ = editor_text(ana, "anz_gold_push")
    # Only this template's entry, not the file's other templates.
    assert text.startswith("id: anz_gold_push\nchannel: push\n") and "ios_reward_push" not in text
    assert ana.get("/templates/nope/edit").status_code == 404


def test_the_preview_follows_the_text_for_sampled_or_chosen_customers(data_console: ConsoleServer):
    ana = data_console.session("ana")
    text, _ = editor_text(ana, "anz_gold_push")
    first = api(ana, "anz_gold_push", {"yaml": text, "locale": "", "customers": []})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["ok"] and answer["problems"] == [] and len(answer["messages"]) == 5  # a sample
    assert "Friday picks, " in answer["html"] and "<script" not in answer["html"]
    assert answer["locales"] == ["en"]
    chosen = [m["customer_id"] for m in answer["messages"][:2]]
    edited = text.replace('"Friday picks, {{ first_name }}"', '"Weekend picks for you, {{ first_name }}"')
    second = api(ana, "anz_gold_push", {"yaml": edited, "customers": chosen}).json()
    assert [m["customer_id"] for m in second["messages"]] == chosen
    assert "Weekend picks for you, " in second["html"] and "Friday picks" not in second["html"]
    assert all(m["payload"]["title"].startswith("Weekend picks for you, ") for m in second["messages"])
    unknown = api(ana, "anz_gold_push", {"yaml": edited, "customers": [chosen[0], "NOPE1"]})
    assert unknown.status_code == 422 and unknown.json()["error"] == "not in the customers table: NOPE1"


def test_a_chosen_locale_previews_that_translation_for_any_customer(data_console: ConsoleServer):
    ana = data_console.session("ana")
    text, _ = editor_text(ana, "europe_newsletter")
    answer = api(ana, "europe_newsletter", {"yaml": text, "locale": "fr"}).json()
    assert answer["ok"] and answer["locales"] == ["en", "de", "fr", "es"]
    assert {m["content_locale"] for m in answer["messages"]} == {"fr"}
    assert all("la sélection de la semaine" in m["payload"]["subject"] for m in answer["messages"])
    assert api(ana, "europe_newsletter", {"yaml": text, "locale": "not a locale"}).status_code == 422


def test_an_invalid_edit_gets_campaigns_validates_messages(data_console: ConsoleServer, tmp_path: Path):
    ana = data_console.session("ana")
    file = "templates/app_messages.yaml"
    original = (data_console.config_dir / file).read_text()
    text, _ = editor_text(ana, "anz_gold_push")
    long_title = text.replace("Friday picks, ", "Friday picks for you and for your family and everyone you love, ")
    answer = api(ana, "anz_gold_push", {"yaml": long_title}).json()
    assert not answer["ok"] and answer["html"] is None
    expected = f"{data_console.config_dir / file}:templates[2]: content.title: 69 characters, over the push limit of 65"
    assert answer["problems"] == [expected + " (rendered with the declared defaults)"]
    unknown_variable = text.replace("Our gold members' picks", "{{ favourite_colour }} picks")
    answer = api(ana, "anz_gold_push", {"yaml": unknown_variable}).json()
    file_text = original.replace("Our gold members' picks", "{{ favourite_colour }} picks")
    assert answer["problems"] == validate_with(data_console, tmp_path, file, file_text)
    assert answer["problems"][0].startswith(f"{data_console.config_dir / file}:templates[2]: content.body: unknown")
    renamed = api(ana, "anz_gold_push", {"yaml": text.replace("id: anz_gold_push", "id: other")}).json()
    stays = "id: stays 'anz_gold_push' here (campaigns name the template by it)"
    assert renamed["problems"] == [f"{data_console.config_dir / file}: {stays}"]
    not_yaml = api(ana, "anz_gold_push", {"yaml": "id: [unclosed\n"}).json()
    assert not_yaml["problems"][0].startswith(f"{data_console.config_dir / file}: the template is not valid YAML: ")
    assert (data_console.config_dir / file).read_text() == original  # a preview writes nothing


def test_saving_keeps_the_other_templates_and_every_comment(data_console: ConsoleServer):
    ana = data_console.session("ana")
    file = data_console.config_dir / "templates" / "emails.yaml"
    before = file.read_text()
    text, version = editor_text(ana, "big_spender_thanks")
    assert "# no message without the amount" in text  # the entry's own comment is in the editor
    edited = text.replace('subject: "Thank you, {{ first_name }}"', 'subject: "A big thank-you, {{ first_name }}"')
    saved = ana.post("/templates/big_spender_thanks/edit", {"version": version, "text": edited})
    assert saved.status_code == 303 and saved.headers["location"] == "/templates/big_spender_thanks"
    # The file is as it was but for that one line: header, the other templates, comments, quoting.
    assert file.read_text() == before.replace('"Thank you, {{ first_name }}"', '"A big thank-you, {{ first_name }}"')
    assert "A big thank-you" in ana.get("/templates/big_spender_thanks").text
    stale = ana.post("/templates/big_spender_thanks/edit", {"version": version, "text": text})
    assert stale.status_code == 409 and "was changed by someone else" in stale.text
    current = html.unescape(stale.text.split('id="current">')[1].split("</pre>")[0])
    assert current.startswith("id: big_spender_thanks\n") and "A big thank-you" in current  # the entry as it is now
    assert "A big thank-you" in file.read_text()  # nothing lost
    _, version = editor_text(ana, "big_spender_thanks")
    fax = text.replace("channel: email", "channel: fax")
    invalid = ana.post("/templates/big_spender_thanks/edit", {"version": version, "text": fax})
    assert invalid.status_code == 422 and 'aria-invalid="true"' in invalid.text
    assert "channel: Input should be &#39;push&#39;, &#39;email&#39; or &#39;in_app&#39;" in invalid.text
    assert "A big thank-you" in file.read_text()
    viewer = data_console.session("vi").post("/templates/big_spender_thanks/edit", {"version": version, "text": text})
    assert viewer.status_code == 403


def test_saving_a_single_template_file_keeps_its_header(data_console: ConsoleServer):
    ana = data_console.session("ana")
    file = data_console.config_dir / "templates" / "feature_push.yaml"
    before = file.read_text()
    text, version = editor_text(ana, "feature_push")
    assert not text.startswith("#")  # the file's schema line is not the template's
    edited = text.replace("New: track your order live", "New: follow your parcel live")
    assert ana.post("/templates/feature_push/edit", {"version": version, "text": edited}).status_code == 303
    assert file.read_text() == before.replace("New: track your order live", "New: follow your parcel live")
