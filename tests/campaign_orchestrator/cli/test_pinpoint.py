"""`campaigns import-pinpoint` as a team moving off Pinpoint runs it, and a night that delivers the result."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from campaign_orchestrator.cli.pinpoint import import_pinpoint
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.run.context import Run, RunConfig, delivery_shards
from campaign_orchestrator.run.stages import (
    deliver_stage,
    render_stage,
    segments_stage,
    targets_stage,
    validate_definitions,
)
from campaign_orchestrator.warehouse.tables import inapp_messages
from tests.builders import customer, load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
MEMBERS = str(FIXTURES / "members_offer_campaign.json")
NIGHT = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)


@pytest.fixture
def folder(repo: Path, tmp_path: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    return target


def invoke(repo: Path, folder: Path, *args: str):
    return CliRunner().invoke(
        import_pinpoint, [*args, "--config", str(folder), "--contracts", str(repo / "data_contracts")]
    )


def test_import_pinpoint_writes_the_files_and_prints_every_warning(repo, folder):
    result = invoke(repo, folder, MEMBERS, "--segment", "gold_or_platinum", "--default", "first_name=there")
    assert result.exit_code == 0, result.output
    assert f"wrote {folder}/campaigns/members_double_points.yaml: campaign members_double_points" in result.output
    assert f"wrote {folder}/templates/pinpoint_members_double_points.yaml" in result.output
    assert "3 warning(s)" in result.output and "no default for tier" in result.output
    assert "styling is not kept" in result.output and "IN_APP_EVENT" in result.output
    assert (folder / "campaigns" / "members_double_points.yaml").exists()


def test_a_dry_run_prints_the_yaml_and_writes_nothing(repo, folder, tmp_path):
    data = json.loads(Path(MEMBERS).read_text())
    data["CampaignResponse"]["MessageConfiguration"]["InAppMessage"]["Content"][0]["PrimaryBtn"]["DefaultConfig"][
        "Link"
    ] = "shop://sale"
    changed = tmp_path / "sale.json"
    changed.write_text(json.dumps(data))
    before = sorted(p.name for p in folder.rglob("*"))
    links = (folder / "deep_links.yaml").read_text()
    result = invoke(repo, folder, str(changed), "--segment", "gold_or_platinum", "--register-links", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"--- {folder}/campaigns/members_double_points.yaml\n# yaml-language-server:" in result.output
    assert "template: pinpoint_members_double_points\n" in result.output
    assert f'--- {folder}/deep_links.yaml (lines appended)\n  - route: "shop://sale"\n' in result.output
    assert "would write" in result.output and result.output.rstrip().endswith("dry run: nothing was written")
    assert sorted(p.name for p in folder.rglob("*")) == before and (folder / "deep_links.yaml").read_text() == links


def test_a_missing_segment_is_one_message_and_exit_1(repo, folder):
    result = invoke(repo, folder, MEMBERS)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: 1 problem(s) importing from Pinpoint:" in result.output
    assert "--segment-map 9d8c7b6a5f4e4d3c8b2a1f0e9d8c7b6a=SEGMENT" in result.output


def test_a_malformed_option_is_a_usage_error(repo, folder):
    result = invoke(repo, folder, MEMBERS, "--segment-map", "no-equals-sign")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_a_pinpoint_export_round_trips_into_a_night_that_delivers_it(repo, folder, tmp_path):
    assert "gold_or_platinum" in load_definitions(folder, _vocab(repo)).segments
    imported = invoke(repo, folder, MEMBERS, "--segment", "gold_or_platinum", "--default", "first_name=there")
    assert imported.exit_code == 0, imported.output

    run = Run(
        RunConfig(
            run_date=NIGHT,
            warehouse_url=f"sqlite:///{tmp_path / 'wh.sqlite'}",
            config_dir=folder,
            contracts_dir=repo / "data_contracts",
            reports_dir=tmp_path / "reports",
        )
    )
    gold = [f"G{i:03d}" for i in range(40)]
    silver = [f"S{i:03d}" for i in range(10)]
    load(
        run.engine,
        [customer(c, tier="gold", first_name=f"Gold{i}") for i, c in enumerate(gold)]
        + [customer(c, tier="silver") for c in silver],
        opted_in={"in_app": gold + silver},  # in-app only: nothing goes to a provider
        installs=[(c, "ios", True) for c in gold + silver],
    )

    def no_provider(connection_id: str):
        raise AssertionError(f"the night tried to reach provider {connection_id}")

    validate_definitions(run)  # lints tonight's templates, the imported one among them
    segments_stage(run)
    targets_stage(run, NOW)
    render_stage(run, NOW)
    for shard in delivery_shards(run):
        deliver_stage(run, shard, no_provider, concurrent_shards=1, now=NOW)  # the night at its hour, not stale

    m = inapp_messages.c
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.customer_id, m.priority, m.session_cap, m.daily_cap, m.total_cap, m.content, m.start_at)
            .where(m.campaign_id == "members_double_points")
            .order_by(m.customer_id)
        ).all()
    run.engine.dispose()
    customers = {r.customer_id for r in rows}
    assert customers and customers <= set(gold) and len(customers) >= 30  # 5% holdout
    assert {(r.priority, r.session_cap, r.daily_cap, r.total_cap) for r in rows} == {(2, 1, 2, 5)}
    content = json.loads(next(r.content for r in rows if r.customer_id == "G001"))
    assert content["body"] == "Hi Gold1, as a gold member you earn double points until Sunday."
    assert content["buttons"][0]["link"] == "shop://offers/members"
    assert content["data"] == {"points_multiplier": "2", "offer_code": "DOUBLE-gold"}
    # Quiet hours 22:00-07:00 London: the 02:00 UTC night's messages start at 07:00.
    assert {r.start_at.time() for r in rows} == {dt.time(7, 0)}
    campaign = yaml.safe_load((folder / "campaigns" / "members_double_points.yaml").read_text())
    assert campaign["in_app"]["priority"] == 2


def _vocab(repo: Path):
    from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary
    from campaign_orchestrator.ingest.sources import load_sources_config

    lists = frozenset(load_sources_config(repo / "data_contracts" / "sources.yaml").lists)
    return vocabulary(load_contracts(repo / "data_contracts"), lists)
