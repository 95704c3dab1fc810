"""The simulator answers like Braze: validation, auth, idempotency, rate-limit headers."""

from __future__ import annotations

import requests

SEND = "/campaigns/trigger/send"
SCHEDULE = "/campaigns/trigger/schedule/create"


def post(sim, path, body, key=None, idem=None):
    url, api_key = sim
    headers = {"Authorization": f"Bearer {key or api_key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return requests.post(url + path, json=body, headers=headers, timeout=5)


def recipients(n):
    return [{"external_user_id": f"U{i}", "trigger_properties": {"title": "t"}} for i in range(n)]


def test_accepts_a_valid_send_and_remembers_each_recipient(simulator):
    r = post(simulator, SEND, {"campaign_id": "c1", "recipients": recipients(50)})
    assert r.status_code == 201 and r.json()["message"] == "success" and r.json()["dispatch_id"]
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(r.headers)
    stats = requests.get(simulator[0] + "/_sim/stats", timeout=5).json()
    assert stats["recipients"] == 50 and stats["unique"] == 50 and stats["duplicates"] == 0


def test_rejects_what_braze_rejects(simulator):
    assert post(simulator, SEND, {"campaign_id": "c", "recipients": recipients(1)}, key="wrong").status_code == 401
    too_many = post(simulator, SEND, {"campaign_id": "c", "recipients": recipients(51)})
    assert too_many.status_code == 400 and "at most 50" in too_many.json()["message"]
    assert post(simulator, SEND, {"recipients": recipients(1)}).status_code == 400
    assert post(simulator, SEND, {"campaign_id": "c", "recipients": [{"trigger_properties": {}}]}).status_code == 400
    assert post(simulator, SCHEDULE, {"campaign_id": "c", "recipients": recipients(1)}).status_code == 400
    ok = post(
        simulator,
        SCHEDULE,
        {"campaign_id": "c", "recipients": recipients(1), "schedule": {"time": "2030-01-01T10:00:00Z"}},
    )
    assert ok.status_code == 201 and ok.json()["schedule_id"]
    stats = requests.get(simulator[0] + "/_sim/stats", timeout=5).json()
    assert stats["recipients"] == 1 and stats["scheduled"] == 1


def test_a_replayed_idempotency_key_gets_the_first_answer_and_sends_nothing(simulator):
    body = {"campaign_id": "c", "recipients": recipients(3)}
    first = post(simulator, SEND, body, idem="k1")
    again = post(simulator, SEND, body, idem="k1")
    assert again.json() == first.json()
    stats = requests.get(simulator[0] + "/_sim/stats", timeout=5).json()
    assert stats["recipients"] == 3 and stats["idempotent_replays"] == 1


def test_injected_faults(simulator):
    requests.post(simulator[0] + "/_sim/faults", json={"fail_next": 1, "status": 503, "reject_ids": ["U2"]}, timeout=5)
    assert post(simulator, SEND, {"campaign_id": "c", "recipients": recipients(1)}).status_code == 503
    bad = post(simulator, SEND, {"campaign_id": "c", "recipients": recipients(3)})
    assert bad.status_code == 400 and "U2" in bad.json()["message"]


def test_fault_settings_are_checked_when_given():
    import pytest

    from campaign_devtools.provider_sim import Faults

    for bad in (
        {"rate_limit": 0},
        {"error_rate": 1.5},
        {"error_rate": 0.6, "drop_rate": 0.6},
        {"hold_s": "x"},
        {"nope": 1},
    ):
        with pytest.raises(ValueError):
            Faults.from_doc(bad)
    assert Faults.from_doc({"error_rate": 0.2, "storm_s": 1}).error_rate == 0.2


def test_playing_braze_a_repeated_idempotency_key_is_a_second_delivery(braze_simulator):
    body = {"campaign_id": "c", "recipients": recipients(3)}
    first = post(braze_simulator, SEND, body, idem="k1")
    again = post(braze_simulator, SEND, body, idem="k1")
    assert first.status_code == again.status_code == 201
    assert again.json()["dispatch_id"] != first.json()["dispatch_id"]
    stats = requests.get(braze_simulator[0] + "/_sim/stats", timeout=5).json()
    assert stats["idempotency"] == "ignore" and stats["repeated_keys"] == 1 and stats["idempotent_replays"] == 0
    assert stats["recipients"] == 6 and stats["duplicates"] == 3  # each recipient recorded twice


def test_the_simulator_plays_one_of_two_kinds_of_provider():
    import pytest
    from click.testing import CliRunner

    from campaign_devtools.cli import main
    from campaign_devtools.provider_sim import make_server

    with pytest.raises(ValueError, match="honour or ignore"):
        make_server(idempotency="sometimes")  # type: ignore[arg-type]
    result = CliRunner().invoke(main, ["provider-sim", "--api-key", "k", "--idempotency", "sometimes"])
    assert result.exit_code == 2 and "honour" in result.output
    server = make_server()
    assert server.store.idempotency == "ignore"  # by default it is Braze
    server.server_close()
