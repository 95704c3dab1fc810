"""The `campaigns` command as a user runs it."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from campaign_devtools.demo_data import generate
from campaign_orchestrator.cli import main

DAY = dt.date(2026, 11, 22)


def test_validate_accepts_the_repository_definitions(repo, monkeypatch):
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_import_prints_per_source_counts_and_replays_from_the_archive(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    generate(tmp_path / "in", customers=300, as_of=DAY, bad_rows=4)
    args = [
        "import",
        "--date",
        DAY.isoformat(),
        "--warehouse",
        f"sqlite:///{tmp_path / 'w.sqlite'}",
        "--sources",
        str(tmp_path / "in"),
        "--archive",
        str(tmp_path / "archive"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("customers"))
    assert "300" in line and "296" in line and "expect_column_values_to_be_in_set(tier): 2" in line
    replay = CliRunner().invoke(main, [*args, "--from-archive"])
    assert replay.exit_code == 0, replay.output
    assert "published" in replay.output


def test_a_broken_source_is_a_clear_error_not_a_traceback(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    generate(tmp_path / "in", customers=50, as_of=DAY)
    (tmp_path / "in" / "customers.csv").write_text("")
    result = CliRunner().invoke(
        main,
        [
            "import",
            "--date",
            DAY.isoformat(),
            "--warehouse",
            f"sqlite:///{tmp_path / 'w.sqlite'}",
            "--sources",
            str(tmp_path / "in"),
            "--archive",
            str(tmp_path / "archive"),
        ],
    )
    assert result.exit_code == 1
    assert "source 'customers'" in result.output and "file_not_empty" in result.output
    assert "Traceback" not in result.output


def _plan(repo, monkeypatch, *warehouse: str):
    monkeypatch.chdir(repo)
    return CliRunner().invoke(main, ["plan", "--date", DAY.isoformat(), *warehouse])


def test_a_warehouse_with_an_unknown_scheme_is_one_clear_line(repo, monkeypatch):
    result = _plan(repo, monkeypatch, "--warehouse", "snowflak://acct/db")
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "Error: warehouse snowflak://acct/db: no engine 'snowflak' here" in result.output
    assert "Traceback" not in result.output


def test_a_warehouse_that_cannot_be_reached_is_one_clear_line_without_its_password(repo, monkeypatch):
    from tests.conftest import free_port

    url = f"postgres://night:s3cret@127.0.0.1:{free_port()}/warehouse"  # docker-compose's spelling
    result = _plan(repo, monkeypatch, "--warehouse", url)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: cannot reach the warehouse postgresql+psycopg://night:***@127.0.0.1" in result.output
    assert "s3cret" not in result.output


def test_the_cli_says_which_warehouse_it_uses_and_when_it_is_the_default(repo, tmp_path, monkeypatch):
    monkeypatch.delenv("CAMPAIGNS_WAREHOUSE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    folders = ["--config", str(repo / "marketing"), "--contracts", str(repo / "data_contracts")]
    result = CliRunner().invoke(main, ["estimate", "everyone", "--date", DAY.isoformat(), *folders])
    assert "warehouse: sqlite:///warehouse.sqlite (the default" in result.output, result.output
