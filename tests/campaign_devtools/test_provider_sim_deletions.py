"""The simulator's `/users/delete`, as Braze answers it: 1 to 50 external ids, a deleted id deleted
again is a no-op, and its books tell the requests naming an id from the successful deletions."""

from __future__ import annotations

import requests

DELETE = "/users/delete"


def delete(sim: tuple[str, str], ids: object, api_key: str | None = None, key: str = "k1") -> requests.Response:
    url, default_key = sim
    headers = {"Authorization": f"Bearer {api_key or default_key}", "Idempotency-Key": key}
    return requests.post(url + DELETE, json={"external_ids": ids}, headers=headers, timeout=5)


def books(sim: tuple[str, str]) -> dict[str, object]:
    doc: dict[str, object] = requests.get(sim[0] + "/_sim/deletions", timeout=5).json()
    return doc


def test_users_are_deleted_once_and_a_repeat_is_a_no_op(simulator: tuple[str, str]) -> None:
    first = delete(simulator, ["U1", "U2"])
    assert first.status_code == 201 and first.json() == {"deleted": 2, "message": "success"}
    again = delete(simulator, ["U2", "U3"], key="k2")
    assert again.status_code == 201 and again.json()["deleted"] == 1
    seen = books(simulator)
    assert seen["deleted"] == ["U1", "U2", "U3"]
    assert seen["named"] == {"U1": 1, "U2": 2, "U3": 1} and seen["succeeded"] == {"U1": 1, "U2": 2, "U3": 1}
    assert [r["ids"] for r in seen["requests"]] == [2, 2]  # type: ignore[index]


def test_a_deletion_braze_would_refuse_is_refused(simulator: tuple[str, str]) -> None:
    assert delete(simulator, ["U1"], api_key="wrong").status_code == 401
    too_many = delete(simulator, [f"U{i}" for i in range(51)])
    assert too_many.status_code == 400 and "1 to 50" in too_many.json()["message"]
    assert delete(simulator, []).status_code == 400 and delete(simulator, [1, 2]).status_code == 400
    assert books(simulator)["deleted"] == []


def test_an_accepted_deletion_whose_answer_is_lost_is_not_a_success_and_reset_forgets(
    simulator: tuple[str, str],
) -> None:
    requests.post(simulator[0] + "/_sim/faults", json={"accept_then_504_rate": 1.0}, timeout=5).raise_for_status()
    assert delete(simulator, ["U1"]).status_code == 504
    requests.post(simulator[0] + "/_sim/faults", json={}, timeout=5).raise_for_status()
    assert delete(simulator, ["U1"]).status_code == 201
    seen = books(simulator)
    assert seen["named"] == {"U1": 2} and seen["succeeded"] == {"U1": 1} and seen["deleted"] == ["U1"]
    requests.post(simulator[0] + "/_sim/reset", json={}, timeout=5).raise_for_status()
    assert books(simulator) == {"requests": [], "deleted": [], "named": {}, "succeeded": {}}
