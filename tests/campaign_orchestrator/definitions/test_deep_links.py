from __future__ import annotations

from pathlib import Path

import pytest

from campaign_orchestrator.definitions.deep_links import load_registry


def registry(tmp_path: Path, text: str):
    (tmp_path / "deep_links.yaml").write_text(text)
    problems: list[str] = []
    return load_registry(tmp_path, problems), problems


ROUTES = """
routes:
  - route: "shop://orders"
  - route: "shop://product/{sku}"
  - route: "https://shop.example.com/p/{sku}"
  - route: "shop://old"
    active: false
"""


@pytest.mark.parametrize(
    ("link", "ok"),
    [
        ("shop://orders", True),
        ("shop://orders/", True),
        ("shop://orders?utm_source=push", True),
        ("shop://orders#top", True),
        ("shop://product/sku-123", True),
        ("https://shop.example.com/p/42?x=1", True),
        ("shop://product/", False),  # a parameter is one non-empty segment
        ("shop://product/a/b", False),
        ("shop://ordersx", False),
        ("SHOP://orders", False),
        ("shop://old", False),
        ("javascript:alert(1)", False),
    ],
)
def test_links_match_active_routes_only(tmp_path, link, ok):
    reg, problems = registry(tmp_path, ROUTES)
    assert problems == [] and reg is not None
    assert (reg.check(link) is None) is ok


def test_a_broken_registry_is_a_definition_problem(tmp_path):
    reg, problems = registry(tmp_path, "routes:\n  - route: not a link\n    color: red\n")
    assert reg is None
    assert any("routes.0.route" in p for p in problems) and any("routes.0.color" in p for p in problems)
    reg, problems = registry(tmp_path, "routes: [\n")
    assert reg is None and "not valid YAML" in problems[0]


def test_no_registry_means_links_are_not_checked(tmp_path):
    assert load_registry(tmp_path, []) is None


def test_a_route_past_its_retirement_day_is_gone_even_if_still_marked_active(tmp_path):
    reg, _ = registry(tmp_path, 'routes:\n  - route: "shop://a"\n    retired_on: 2020-01-01\n  - route: "shop://b"\n')
    assert reg is not None
    assert "was retired on 2020-01-01" in (reg.check("shop://a") or "")
    assert reg.check("shop://b") is None
