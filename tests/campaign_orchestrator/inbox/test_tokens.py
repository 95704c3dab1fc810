"""Customer tokens: one customer, one audience, an expiry; anything else is invalid."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign_orchestrator.inbox.tokens import InvalidToken, customer_of, issue_token

SECRET = "s" * 64  # HS512 (a refused algorithm below) wants 64 bytes


@given(st.text(min_size=1, max_size=64))
def test_a_token_names_exactly_the_customer_it_was_issued_for(customer_id: str):
    assert customer_of(issue_token(customer_id, SECRET, 60), SECRET) == customer_id


def test_an_expired_token_says_expired():
    old = issue_token("C1", SECRET, 60, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with pytest.raises(InvalidToken, match="expired"):
        customer_of(old, SECRET)


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"sub": "C1", "exp": 9999999999}, SECRET, algorithm="HS256"),  # no audience
        jwt.encode({"sub": "C1", "aud": "campaigns-inbox"}, SECRET, algorithm="HS256"),  # no expiry
        jwt.encode({"sub": "C1", "aud": "other", "exp": 9999999999}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "C1", "aud": "campaigns-inbox", "exp": 9999999999}, "x" * 40, algorithm="HS256"),
        jwt.encode({"sub": "C1", "aud": "campaigns-inbox", "exp": 9999999999}, SECRET, algorithm="HS512"),
        "not-a-token",
    ],
)
def test_a_token_without_audience_or_expiry_or_with_another_key_or_algorithm_is_invalid(token: str):
    with pytest.raises(InvalidToken, match="invalid"):
        customer_of(token, SECRET)
