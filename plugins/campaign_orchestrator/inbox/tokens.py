"""Customer tokens: a signed claim "this caller is customer X until T", issued by the back end.

HS256 JWTs (PyJWT) with a fixed audience and a required expiry. A token names exactly one
customer, so it can read and write only that customer's inbox; verification never says which
check failed beyond "invalid" or "expired", and never logs the token.
"""

from __future__ import annotations

import datetime as dt

import jwt

from campaign_orchestrator.errors import CampaignError

AUDIENCE = "campaigns-inbox"
ALGORITHM = "HS256"


class InvalidToken(CampaignError):
    """The token is malformed, signed with another secret, for another audience, or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def issue_token(customer_id: str, secret: str, ttl_seconds: int, now: dt.datetime | None = None) -> str:
    issued = now or dt.datetime.now(dt.UTC)
    claims = {"sub": customer_id, "aud": AUDIENCE, "iat": issued, "exp": issued + dt.timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def customer_of(token: str, secret: str) -> str:
    """The customer the token was issued for; InvalidToken otherwise."""
    customer_id, expires = verify_token(token, secret)
    if expires <= dt.datetime.now(dt.UTC):
        raise InvalidToken("token expired")
    return customer_id


def verify_token(token: str, secret: str) -> tuple[str, dt.datetime]:
    """(customer, expiry) of a token signed with `secret`; InvalidToken when it is not one."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "sub", "aud"]}
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    subject, expires = claims.get("sub"), claims.get("exp")
    if not isinstance(subject, str) or not subject or not isinstance(expires, int | float):
        raise InvalidToken("invalid token")
    return subject, dt.datetime.fromtimestamp(expires, dt.UTC)
