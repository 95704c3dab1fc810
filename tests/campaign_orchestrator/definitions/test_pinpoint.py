"""Pinpoint in-app exports into a copy of marketing/: what maps, what warns, what refuses to import."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.definitions.pinpoint import PinpointImportError, read_exports, slug
from campaign_orchestrator.definitions.pinpoint_import import ImportOptions, ImportPlan, plan_import, write_plan
from campaign_orchestrator.ingest.contracts import load_contracts, template_samples, template_variables, vocabulary
from campaign_orchestrator.ingest.sources import load_sources_config
from campaign_orchestrator.render.lint import lint_templates

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
MEMBERS = "members_offer_campaign.json"
WELCOME = "welcome_template_campaign.json"
WELCOME_TEMPLATE = "welcome_banner_template.json"
AB = "checkout_ab_campaign.json"
CAROUSEL = "new_in_carousel_campaign.json"
NOW = dt.datetime(2026, 10, 20, 9, 0)  # the export was taken before Pinpoint's end of support


@pytest.fixture(scope="module")
def checks(repo: Path) -> tuple[Any, frozenset[str], Callable[..., list[str]]]:
    contracts = load_contracts(repo / "data_contracts")
    lists = frozenset(load_sources_config(repo / "data_contracts" / "sources.yaml").lists)
    variables = template_variables(contracts)
    samples = template_samples(contracts)

    def lint(defs: Any, ids: set[str]) -> list[str]:
        return lint_templates(defs, variables, samples, only=ids)

    return vocabulary(contracts, lists), frozenset(variables), lint


@pytest.fixture
def folder(repo: Path, tmp_path: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    return target


def export(tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """A fixture export changed by `change` (given the campaign or template body)."""
    data = json.loads((FIXTURES / name).read_text())
    body = data.get("CampaignResponse") or data.get("InAppTemplateResponse")
    change(body)
    path = tmp_path / f"changed_{name}"
    path.write_text(json.dumps(data))
    return path


def run_import(folder: Path, checks: Any, *files: str | Path, write: bool = True, **given: Any) -> ImportPlan:
    vocab, variables, lint = checks
    given.setdefault("segment", "gold_or_platinum")
    options = ImportOptions(variables=variables, now=NOW, **given)
    paths = [f if isinstance(f, Path) else FIXTURES / f for f in files]
    plan = plan_import(paths, folder, options, vocab, lint)
    if write:
        write_plan(plan)
    return plan


def read(folder: Path, relative: str) -> Any:
    return yaml.safe_load((folder / relative).read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def problems_of(excinfo: pytest.ExceptionInfo[PinpointImportError]) -> str:
    return "\n".join(excinfo.value.problems)


def test_a_campaign_with_session_and_daily_caps_keeps_them(folder, checks):
    run_import(folder, checks, MEMBERS)
    campaign = read(folder, "campaigns/members_double_points.yaml")
    assert campaign["in_app"] == {
        "priority": 2,
        "session_cap": 1,
        "daily_cap": 2,
        "total_cap": 5,
        "expires_after_hours": 72,
    }
    assert campaign["channel"] == "in_app" and campaign["destination"] == "app_inbox"
    assert campaign["holdout_percent"] == 5 and campaign["segment"] == "gold_or_platinum"
    assert (campaign["start_date"], campaign["end_date"]) == (dt.date(2026, 11, 1), dt.date(2027, 1, 31))
    assert campaign["quiet_hours"] == {"start": "22:00", "end": "07:00", "fallback": "move"}
    assert "schedule" not in campaign and campaign["send_time"] == "now"  # IN_APP_EVENT: daily, at once


def test_a_zero_limit_means_no_cap_and_a_missing_priority_is_the_middle_one(folder, checks, tmp_path):
    def change(body):
        body["Limits"] = {"Daily": 0, "Session": 0, "Total": 0}
        del body["Priority"]

    run_import(folder, checks, export(tmp_path, MEMBERS, change))
    assert read(folder, "campaigns/members_double_points.yaml")["in_app"] == {"priority": 3, "expires_after_hours": 72}


def test_pinpoint_placeholders_become_the_profiles_variables(folder, checks):
    run_import(folder, checks, MEMBERS, defaults={"first_name": "there"})
    template = read(folder, "templates/pinpoint_members_double_points.yaml")
    content = template["content"]
    assert content["body"] == "Hi {{ first_name }}, as a {{ tier }} member you earn double points until Sunday."
    assert content["data"] == {"points_multiplier": "2", "offer_code": "DOUBLE-{{ tier }}"}
    assert template["defaults"] == {"first_name": "there", "tier": ""}
    assert content["buttons"] == [
        {"text": "See the offer", "action": "DEEP_LINK", "link": "shop://offers/members"},
        {"text": "Not now", "action": "CLOSE"},
    ]


def test_helpers_and_named_fields_convert_and_a_block_is_refused(folder, checks, tmp_path):
    def helper(body):
        item = body["MessageConfiguration"]["InAppMessage"]["Content"][0]
        item["HeaderConfig"]["Header"] = "{{upper User.UserAttributes.FirstName}} in {{Location.Country}}"

    def block(body):
        helper(body)
        body["MessageConfiguration"]["InAppMessage"]["Content"][0]["BodyConfig"]["Body"] = (
            "{{#if Attributes.Tier}}x{{/if}}"
        )

    with pytest.raises(PinpointImportError) as excinfo:
        run_import(folder, checks, export(tmp_path, MEMBERS, block))
    assert "Content[0].Body: placeholder {{#if Attributes.Tier}} is a Handlebars block or helper" in problems_of(
        excinfo
    )
    assert "Header" not in problems_of(excinfo)
    run_import(folder, checks, export(tmp_path, MEMBERS, helper))
    header = read(folder, "templates/pinpoint_members_double_points.yaml")["content"]["header"]
    assert header == "{{ first_name | upper }} in {{ country }}"


def test_an_unknown_placeholder_is_an_error_naming_the_campaign_field_and_placeholder(folder, checks, tmp_path):
    def change(body):
        body["MessageConfiguration"]["InAppMessage"]["Content"][0]["BodyConfig"]["Body"] = (
            "Your {{User.UserAttributes.FavouriteStore}} store misses you"
        )

    before = snapshot(folder)
    with pytest.raises(PinpointImportError) as excinfo:
        run_import(folder, checks, export(tmp_path, MEMBERS, change))
    (problem,) = excinfo.value.problems
    assert problem.startswith("campaign 'Members double points' (4b1e8d2a9c7f4e3a8b6d5c4e3f2a1b0c): ")
    assert "MessageConfiguration.Content[0].Body: placeholder {{User.UserAttributes.FavouriteStore}}" in problem
    assert "'favourite_store', which is not a template variable here" in problem and "first_name" in problem
    assert snapshot(folder) == before


def test_a_missing_segment_is_an_error_that_says_what_to_pass(folder, checks):
    with pytest.raises(PinpointImportError) as excinfo:
        run_import(folder, checks, MEMBERS, segment=None)
    (problem,) = excinfo.value.problems
    assert "Pinpoint segment '9d8c7b6a5f4e4d3c8b2a1f0e9d8c7b6a' has no segment here" in problem
    assert "pass --segment SEGMENT" in problem
    assert "--segment-map 9d8c7b6a5f4e4d3c8b2a1f0e9d8c7b6a=SEGMENT" in problem and "gold_or_platinum" in problem


def test_a_segment_map_or_a_segment_named_like_pinpoints_is_used(folder, checks):
    mapping = {"9d8c7b6a5f4e4d3c8b2a1f0e9d8c7b6a": "high_value"}
    run_import(folder, checks, MEMBERS, CAROUSEL, segment=None, segment_map=mapping)
    assert read(folder, "campaigns/members_double_points.yaml")["segment"] == "high_value"
    assert read(folder, "campaigns/new_in_carousel.yaml")["segment"] == "everyone"  # its SegmentId


def test_a_segment_that_is_not_in_the_folder_is_refused(folder, checks):
    with pytest.raises(PinpointImportError, match=r"segment 'vip': not a segment of this folder"):
        run_import(folder, checks, MEMBERS, segment="vip")


def test_an_unregistered_deep_link_is_an_error_unless_registered(folder, checks, tmp_path):
    def change(body):
        button = body["MessageConfiguration"]["InAppMessage"]["Content"][0]["PrimaryBtn"]["DefaultConfig"]
        button["Link"] = "shop://sale/{{Attributes.Tier}}?src=inapp"

    changed = export(tmp_path, MEMBERS, change)
    with pytest.raises(PinpointImportError) as excinfo:
        run_import(folder, checks, changed)
    (problem,) = excinfo.value.problems
    assert (
        "PrimaryBtn.Link: deep link 'shop://sale/{{ tier }}?src=inapp' is not a route in marketing/deep_links.yaml"
        in (problem)
    )
    assert "register 'shop://sale/{tier}'" in problem and "--register-links" in problem

    plan = run_import(folder, checks, changed, register_links=True)
    assert plan.routes_added == ["shop://sale/{tier}"]
    routes = [r["route"] for r in read(folder, "deep_links.yaml")["routes"]]
    assert routes[-1] == "shop://sale/{tier}" and "shop://checkout/legacy" in routes
    assert "# The screens the apps open" in (folder / "deep_links.yaml").read_text()  # comments kept


def test_a_retired_route_is_refused_even_with_register_links(folder, checks, tmp_path):
    def change(body):
        body["MessageConfiguration"]["InAppMessage"]["Content"][0]["PrimaryBtn"]["DefaultConfig"]["Link"] = (
            "shop://checkout/legacy"
        )

    with pytest.raises(PinpointImportError, match=r"route 'shop://checkout/legacy' was retired"):
        run_import(folder, checks, export(tmp_path, MEMBERS, change), register_links=True)


def test_existing_files_are_not_replaced_without_force(folder, checks):
    run_import(folder, checks, MEMBERS)
    first = snapshot(folder)
    with pytest.raises(PinpointImportError) as excinfo:
        run_import(folder, checks, MEMBERS, defaults={"first_name": "there"})
    assert "members_double_points.yaml" in str(excinfo.value) and "pass --force" in str(excinfo.value)
    assert snapshot(folder) == first
    plan = run_import(folder, checks, MEMBERS, defaults={"first_name": "there"}, force=True)
    assert plan.replaced == ["campaigns/members_double_points.yaml", "templates/pinpoint_members_double_points.yaml"]
    assert read(folder, "templates/pinpoint_members_double_points.yaml")["defaults"]["first_name"] == "there"


def test_a_failing_import_leaves_the_folder_unchanged(folder, checks, tmp_path):
    def ends_before_it_starts(body):
        body["Schedule"]["EndTime"] = "2026-10-01T00:00:00Z"
        body["MessageConfiguration"]["InAppMessage"]["Content"][0]["PrimaryBtn"]["DefaultConfig"]["Link"] = "shop://x"

    def long_body(body):
        body["MessageConfiguration"]["InAppMessage"]["Content"][0]["BodyConfig"]["Body"] = "x" * 151

    before = snapshot(folder)
    with pytest.raises(PinpointImportError) as loader:  # the loader refuses the campaign
        run_import(folder, checks, export(tmp_path, MEMBERS, ends_before_it_starts), CAROUSEL, register_links=True)
    assert "in the imported definitions (nothing was written)" in str(loader.value)
    (problem,) = loader.value.problems
    assert problem.startswith(f"{folder / 'campaigns' / 'members_double_points.yaml'}: ")  # the real folder's path
    assert "end_date is before start_date" in problem
    with pytest.raises(PinpointImportError) as lint:  # the template lint refuses the message
        run_import(folder, checks, export(tmp_path, MEMBERS, long_body))
    assert "content.body" in str(lint.value) and "150" in str(lint.value)
    assert snapshot(folder) == before


def test_a_quiet_time_that_is_no_clock_time_is_an_error(folder, checks, tmp_path):
    def change(body):
        body["Schedule"]["QuietTime"] = {"Start": "25:00", "End": "07:00"}

    with pytest.raises(PinpointImportError, match=r"Schedule.QuietTime.Start: '25:00' is not a clock time HH:MM"):
        run_import(folder, checks, export(tmp_path, MEMBERS, change))


def test_the_imported_folder_loads_with_the_existing_loader(folder, checks):
    vocab = checks[0]
    plan = run_import(
        folder, checks, MEMBERS, WELCOME, WELCOME_TEMPLATE, AB, CAROUSEL, defaults={"first_name": "there"}
    )
    defs = load_definitions(folder, vocab)
    imported = {"members_double_points", "welcome_banner", "checkout_nudge_a_b", "new_in_carousel"}
    assert imported <= set(defs.campaigns)
    assert all(defs.campaigns[c].channel == "in_app" for c in imported)
    assert len(plan.files) == 8 and plan.warnings
    for relative in plan.files:
        assert (folder / relative).read_text().startswith("# yaml-language-server: $schema=../schema/")


def test_an_ab_campaign_becomes_weighted_variants_with_a_template_each(folder, checks):
    run_import(folder, checks, AB, defaults={"first_name": "there"})
    campaign = read(folder, "campaigns/checkout_nudge_a_b.yaml")
    assert campaign["variants"] == [
        {"id": "basket_copy", "weight": 45, "template": "pinpoint_checkout_nudge_a_b_basket_copy"},
        {"id": "rewards_copy", "weight": 45, "template": "pinpoint_checkout_nudge_a_b_rewards_copy"},
    ]
    assert campaign["holdout_percent"] == 10 and "template" not in campaign
    templates = {t["id"]: t for t in read(folder, "templates/pinpoint_checkout_nudge_a_b.yaml")["templates"]}
    assert templates["pinpoint_checkout_nudge_a_b_rewards_copy"]["content"]["header"] == "Check your rewards"
    assert campaign["send_time"] == "18:30" and "send_timezone" not in campaign  # IsLocalTime: their clock
    assert campaign["in_app"] == {"priority": 1, "session_cap": 1, "daily_cap": 1, "expires_after_hours": 72}


def test_treatments_larger_than_the_audience_are_refused(folder, checks, tmp_path):
    def change(body):
        body["AdditionalTreatments"][0]["SizePercent"] = 95

    with pytest.raises(PinpointImportError, match=r"add up to 105% \(over 100\)"):
        run_import(folder, checks, export(tmp_path, AB, change))


def test_a_campaign_on_an_in_app_template_takes_it_from_the_template_export(folder, checks):
    plan = run_import(folder, checks, WELCOME, WELCOME_TEMPLATE)
    template = read(folder, "templates/pinpoint_welcome_banner.yaml")
    assert template["content"]["layout"] == "TOP_BANNER"
    assert template["content"]["body"] == "Welcome, {{ first_name }}! New arrivals land every Friday."
    assert template["content"]["data"] == {"screen": "home"}
    assert "in-app template 'WelcomeBanner'" in template["description"]
    assert any("per-platform actions not kept" in w and "Web LINK" in w for w in plan.warnings)
    assert read(folder, "campaigns/welcome_banner.yaml")["in_app"]["total_cap"] == 3


def test_a_campaign_whose_template_was_not_exported_says_how_to_export_it(folder, checks):
    with pytest.raises(PinpointImportError, match=r"aws pinpoint get-in-app-template --template-name WelcomeBanner"):
        run_import(folder, checks, WELCOME)


def test_a_carousel_keeps_its_first_item_and_names_the_others(folder, checks):
    plan = run_import(folder, checks, CAROUSEL)
    content = read(folder, "templates/pinpoint_new_in_carousel.yaml")["content"]
    assert (content["layout"], content["header"]) == ("CAROUSEL", "New this week")
    assert content["image_url"] == "https://cdn.example.com/inapp/new-1.jpg"
    (dropped,) = [w for w in plan.warnings if "content items" in w]
    assert "3 content items; one is kept (the first), dropped: 2: 'Boots'; 3: 'Coats'" in dropped
    assert "# - MessageConfiguration: CAROUSEL has 3" in (folder / "campaigns/new_in_carousel.yaml").read_text()


def test_a_paused_once_campaign_is_disabled_and_expires_at_its_end(folder, checks):
    run_import(folder, checks, CAROUSEL)
    campaign = read(folder, "campaigns/new_in_carousel.yaml")
    assert campaign["enabled"] is False
    assert campaign["schedule"] == {"type": "once", "date": dt.date(2026, 11, 8)}
    assert (campaign["send_time"], campaign["send_timezone"]) == ("09:00", "UTC")
    assert campaign["in_app"]["expires_after_hours"] == 159  # 2026-11-08 09:00 to 2026-11-15 00:00


@pytest.mark.parametrize(
    ("frequency", "start", "expected"),
    [
        ("WEEKLY", "2026-11-04T10:00:00Z", {"type": "weekly", "days": ["wed"]}),
        ("MONTHLY", "2026-11-04T10:00:00Z", {"type": "cron", "cron": "0 0 4 * *"}),
        ("ONCE", "IMMEDIATE", {"type": "once", "date": NOW.date()}),
        ("HOURLY", "2026-11-04T10:00:00Z", None),
    ],
)
def test_frequencies_map_to_schedules(folder, checks, tmp_path, frequency, start, expected):
    def change(body):
        body["Schedule"].update(Frequency=frequency, StartTime=start, EndTime=None)

    plan = run_import(folder, checks, export(tmp_path, MEMBERS, change))
    campaign = read(folder, "campaigns/members_double_points.yaml")
    assert campaign.get("schedule") == expected
    if frequency == "HOURLY":
        assert any("HOURLY: runs once a night" in w for w in plan.warnings)


def test_exports_are_read_wrapped_bare_listed_or_as_a_campaigns_response(tmp_path):
    body = json.loads((FIXTURES / MEMBERS).read_text())["CampaignResponse"]
    template = json.loads((FIXTURES / WELCOME_TEMPLATE).read_text())["InAppTemplateResponse"]
    shapes = {
        "bare.json": body,
        "list.json": [copy.deepcopy(body), {"CampaignResponse": body}],
        "page.json": {"CampaignsResponse": {"Item": [body], "NextToken": None}},
        "template.json": template,
        "other.json": {"SegmentResponse": {}},
    }
    for name, data in shapes.items():
        (tmp_path / name).write_text(json.dumps(data))
    exports = read_exports([tmp_path / n for n in shapes])
    assert len(exports.campaigns) == 4 and set(exports.templates) == {"WelcomeBanner"}
    assert len(exports.problems) == 1 and "other.json" in exports.problems[0]


def test_a_push_campaign_is_not_imported(folder, checks, tmp_path):
    def change(body):
        body["MessageConfiguration"] = {"APNSMessage": {"Body": "hi", "Title": "t"}}

    with pytest.raises(PinpointImportError, match=r"no InAppMessage and no in-app template \(it has APNSMessage\)"):
        run_import(folder, checks, export(tmp_path, MEMBERS, change))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Members double points", "members_double_points"), ("2026 Été -20%!", "campaign_2026_ete_20"), ("", "campaign")],
)
def test_campaign_ids_are_slugs_of_the_pinpoint_name(name, expected):
    assert slug(name) == expected


def test_a_mapped_segment_wins_over_the_segment_for_all(folder, checks):
    mapping = {"9d8c7b6a5f4e4d3c8b2a1f0e9d8c7b6a": "high_value"}
    run_import(folder, checks, MEMBERS, CAROUSEL, segment="gold_or_platinum", segment_map=mapping)
    assert read(folder, "campaigns/members_double_points.yaml")["segment"] == "high_value"
    assert read(folder, "campaigns/new_in_carousel.yaml")["segment"] == "gold_or_platinum"


def test_two_pinpoint_campaigns_of_one_name_get_two_ids_and_an_unused_template_is_named(folder, checks, tmp_path):
    def other(body):
        body["Id"] = "0000aaaa1111bbbb2222cccc3333dddd"

    plan = run_import(folder, checks, MEMBERS, export(tmp_path, MEMBERS, other), WELCOME_TEMPLATE)
    assert (folder / "campaigns" / "members_double_points_2.yaml").exists()
    assert read(folder, "campaigns/members_double_points_2.yaml")["template"] == "pinpoint_members_double_points_2"
    assert any("imported as 'members_double_points_2'" in w for w in plan.warnings)
    assert "in-app template 'WelcomeBanner': no given campaign uses it; not imported" in plan.warnings


def test_written_files_are_readable_like_the_others(folder, checks):
    plan = run_import(folder, checks, MEMBERS, register_links=True)
    others = (folder / "campaigns" / "gold_inapp_offer.yaml").stat().st_mode & 0o777
    for relative in plan.files:
        assert (folder / relative).stat().st_mode & 0o777 == others
    assert not list(folder.rglob(".*.tmp"))
