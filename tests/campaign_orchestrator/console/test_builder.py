"""The segment builder over HTTP against a real console on a small real warehouse: sizes of the
rule and of each block, the `campaigns validate` message for an invalid rule, and saving."""

from __future__ import annotations

from typing import Any

from tests.campaign_orchestrator.console.conftest import DATA_DAY, Client, ConsoleServer


def api(client: Client, path: str, body: dict[str, Any]) -> Any:
    token = client.csrf("/segments")
    return client.http.post(client.url + path, json=body, headers={"X-CSRF-Token": token}, timeout=60)


def test_sizes_of_a_rule_and_its_blocks_follow_the_edit(data_console: ConsoleServer):
    ana = data_console.session("ana")
    page = ana.get("/segments/repeat_buyers_lapsing/build")
    assert page.status_code == 200 and 'id="blocks"' in page.text
    rule: dict[str, Any] = {
        "all": [{"event": "purchase", "count": {"gte": 2}, "within_last": "90d"}, {"attribute": "tier", "eq": "gold"}]
    }
    first = api(ana, "/api/segments/repeat_buyers_lapsing/sizes", {"rule": rule, "part": "all", "date": DATA_DAY})
    assert first.status_code == 200, first.text
    sizes = first.json()["sizes"]
    assert sizes["customers"] == 400 and 0 < sizes["blocks"][0] < 400 and 0 < sizes["blocks"][1] < 400
    assert sizes["total"] <= min(sizes["blocks"]) and len(sizes["sample"]) <= 5
    assert "- attribute: tier\n  eq: gold\n" in first.json()["yaml"]
    rule["all"][1] = {"attribute": "tier", "in": ["gold", "platinum"]}
    second = api(ana, "/api/segments/repeat_buyers_lapsing/sizes", {"rule": rule, "part": "blocks"}).json()
    assert second["sizes"]["counted_blocks"] == 1  # the unchanged block came from the cache
    assert second["sizes"]["blocks"][0] == sizes["blocks"][0] and second["sizes"]["blocks"][1] > sizes["blocks"][1]


def test_an_invalid_rule_gets_the_validate_message_at_its_block(data_console: ConsoleServer):
    ana = data_console.session("ana")
    rule = {"all": [{"attribute": "tier", "eq": "gold"}, {"event": "purchase", "count": {"gte": "two"}}]}
    answer = api(ana, "/api/segments/repeat_buyers_lapsing/sizes", {"rule": rule, "part": "blocks"})
    assert answer.status_code == 422
    (problem,) = answer.json()["problems"]
    assert problem["block"] == 1
    assert problem["message"].startswith(f"{data_console.config_dir / 'segments' / 'behaviour.yaml'}:segments[0]: ")
    assert "rule.all[1].count.gte: expected a number of at least 0, got 'two'" in problem["message"]
    from_yaml = api(ana, "/api/segments/repeat_buyers_lapsing/check", {"yaml": "attribute: tier\neq: gold\n"}).json()
    assert from_yaml["ok"] and from_yaml["rule"] == {"attribute": "tier", "eq": "gold"}


def test_saving_a_rule_writes_the_file_keeping_its_comments(data_console: ConsoleServer):
    ana = data_console.session("ana")
    file = data_console.config_dir / "segments" / "behaviour.yaml"
    before = file.read_text()
    page = ana.get("/segments/big_spenders_90d/build").text
    version = page.split('name="version" value="')[1].split('"')[0]
    text = "event: purchase\nwithin_last: 60d\nsum: {property: amount, gt: 250}\n"
    saved = ana.post("/segments/big_spenders_90d/build", {"version": version, "rule_text": text})
    assert saved.status_code == 303, saved.text
    after = file.read_text()
    assert "within_last: 60d" in after and "# Behavioural segments" in after and after != before
    stale = ana.post("/segments/big_spenders_90d/build", {"version": version, "rule_text": text})
    assert stale.status_code == 409  # the version it read is gone: nothing is lost
    viewer = data_console.session("vi").post("/segments/big_spenders_90d/build", {"version": "x", "rule_text": text})
    assert viewer.status_code == 403
