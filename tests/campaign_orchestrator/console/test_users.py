"""Users and roles: approver > editor > viewer, Argon2id hashes, clear refusals of a bad users file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaign_orchestrator.console.settings import ConsoleSettings
from campaign_orchestrator.console.users import (
    ConsoleNotConfigured,
    User,
    hash_password,
    load_users,
    verify_password,
)
from tests.campaign_orchestrator.console.conftest import PASSWORDS, users_json


def test_roles_imply_the_lesser_ones():
    approver, editor, viewer = (User(n, r, "h") for n, r in (("a", "approver"), ("e", "editor"), ("v", "viewer")))
    assert approver.can("approver") and approver.can("editor") and approver.can("viewer")
    assert not editor.can("approver") and editor.can("editor") and editor.can("viewer")
    assert not viewer.can("editor") and viewer.can("viewer")


def test_passwords_are_kept_as_argon2id_hashes_and_checked():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "correct hors")
    assert not verify_password("not a hash", "correct horse")
    assert hash_password("correct horse") != hashed  # salted
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_users_from_a_file_or_the_environment(tmp_path: Path):
    users = load_users(None, users_json())
    assert users.authenticate("ana", PASSWORDS["ana"]) is not None
    assert users.authenticate("ana", PASSWORDS["bo"]) is None
    assert users.authenticate("nobody", PASSWORDS["ana"]) is None
    path = tmp_path / "users.yaml"
    path.write_text(
        "users:\n"
        + "".join(
            f"  - {{name: {u['name']}, role: {u['role']}, password_hash: '{u['password_hash']}'}}\n"
            for u in json.loads(users_json())["users"]
        )
    )
    from_file = load_users(path, None)
    assert from_file.get("bo") is not None and from_file.get("bo").role == "approver"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"users": [{"name": "a", "role": "boss", "password_hash": "$argon2id$x"}]}', "users.0.role"),
        ('{"users": [{"name": "a", "role": "viewer", "password_hash": "plain"}]}', "users.0.password_hash"),
        ('{"users": [{"name": "a", "role": "viewer", "password": "plain"}]}', "users.0.password"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_users_definition_is_refused_with_the_field(text: str, message: str):
    with pytest.raises(ConsoleNotConfigured, match=message):
        load_users(None, text)


def test_no_users_and_a_short_secret_are_refused(tmp_path: Path):
    with pytest.raises(ConsoleNotConfigured, match="no console users"):
        load_users(None, None)
    with pytest.raises(ConsoleNotConfigured, match="at least 32"):
        ConsoleSettings(tmp_path, tmp_path, "sqlite://", "short", load_users(None, users_json()))
    settings = ConsoleSettings(tmp_path, tmp_path, "sqlite://", "s" * 40, load_users(None, users_json()))
    assert "s" * 40 not in repr(settings)
