"""Who may use the console, and what each may do: viewer < editor < approver.

A viewer reads; an editor also edits and submits; an approver also approves, pauses and resumes.
Passwords are kept only as Argon2id hashes (argon2-cffi; `campaigns console hash-password` makes
one), checked in constant time, and a name that does not exist costs the same as a wrong
password, so timing tells nothing about who has an account.

The users file (`CAMPAIGNS_CONSOLE_USERS`) or `CAMPAIGNS_CONSOLE_USERS_JSON` holds::

    users:
      - {name: ana, role: editor, password_hash: "$argon2id$v=19$..."}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import Field, ValidationError

from campaign_orchestrator.definitions.base import StrictModel
from campaign_orchestrator.errors import CampaignError, InvalidInput

Role = Literal["viewer", "editor", "approver"]
RANK: dict[str, int] = {"viewer": 0, "editor": 1, "approver": 2}
NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


class ConsoleNotConfigured(CampaignError, InvalidInput):
    """The console has no (or too weak a) session secret, or its users cannot be read."""


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _hasher.hash("not a password of anyone")


class UserEntry(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    password_hash: str = Field(pattern=r"^\$argon2(id|i|d)\$", description="from campaigns console hash-password")
    display_name: str | None = None


class UsersFile(StrictModel):
    users: list[UserEntry] = Field(min_length=1)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str = field(repr=False)
    display_name: str = ""

    def can(self, role: Role) -> bool:
        """Whether this user has `role` or a greater one (approver implies editor implies viewer)."""
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class Users:
    by_name: dict[str, User]

    def get(self, name: str | None) -> User | None:
        return self.by_name.get(name) if name else None

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.by_name.get(name)
        ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
        return user if user is not None and ok else None


def parse_users(data: object, where: str) -> Users:
    try:
        parsed = UsersFile.model_validate({"users": data} if isinstance(data, list) else data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConsoleNotConfigured(f"{where}: {reasons}") from None
    names = [u.name for u in parsed.users]
    if len(set(names)) != len(names):
        raise ConsoleNotConfigured(f"{where}: user names must be distinct")
    return Users({u.name: User(u.name, u.role, u.password_hash, u.display_name or u.name) for u in parsed.users})


def load_users(path: Path | None, json_text: str | None) -> Users:
    """Users from the file, else from the JSON text; refuse to start with neither."""
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConsoleNotConfigured(f"{path}: cannot read the users file ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConsoleNotConfigured(f"{path}: not YAML ({exc})") from None
        return parse_users(data, str(path))
    if json_text:
        try:
            return parse_users(json.loads(json_text), "CAMPAIGNS_CONSOLE_USERS_JSON")
        except json.JSONDecodeError as exc:
            raise ConsoleNotConfigured(f"CAMPAIGNS_CONSOLE_USERS_JSON: not JSON ({exc.msg})") from None
    raise ConsoleNotConfigured(
        "no console users: set CAMPAIGNS_CONSOLE_USERS to a users file or CAMPAIGNS_CONSOLE_USERS_JSON "
        "(hash passwords with `campaigns console hash-password`)"
    )
