"""`campaigns purge` applies settings.retention (a dry run first says what would go), and the
definitions refuse an outbox retention beside a campaign whose caps.total counts sends ever."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from campaign_orchestrator.cli import main
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema
from tests.campaign_orchestrator.retention.test_purge import OLD, TODAY, fill, messages


def folder_with(repo: Path, tmp_path: Path, retention: str) -> Path:
    config = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", config)
    with (config / "settings.yaml").open("a") as settings:
        settings.write(f"\nretention:\n{retention}")
    return config


def test_purge_says_what_it_would_remove_then_removes_it(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    engine = create_warehouse_engine(url)
    ensure_schema(engine)
    fill(engine)
    config = folder_with(repo, tmp_path, "  rendered_payload_days: 30\n  engagement_days: 30\n")
    args = ["purge", "--date", TODAY.isoformat(), "--warehouse", url, "--config", str(config)]
    args += ["--archive", str(tmp_path / "archive")]
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "rendered_payloads: 4 would remove or empty" in dry.output
    assert "engagement_events: 1 would remove or empty" in dry.output
    assert messages(engine)[f"m-{OLD}-sent"] != "{}"
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert "rendered_payloads: 4 removed or emptied" in done.output
    assert messages(engine)[f"m-{OLD}-sent"] == "{}"


def test_an_outbox_retention_beside_a_total_cap_is_refused_at_validate(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    config = folder_with(repo, tmp_path, "  outbox_days: 90\n")
    result = CliRunner().invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code != 0
    assert "caps.total: counts this campaign's sends ever" in result.output
    assert "churn_winback_email.yaml" in result.output
