"""`campaigns erase` as an operator runs it: ids from options or a file, a receipt without personal
data, one clear line (no traceback) without the salt or without customers, `--pending` when idle."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from campaign_orchestrator.cli import main
from tests.builders import customer, load
from tests.campaign_orchestrator.erasure.night import SALT


def args(engine: Engine, tmp_path: Path, repo: Path, *more: str) -> list[str]:
    url = engine.url.render_as_string(hide_password=False)
    folders = ["--archive", str(tmp_path / "archive"), "--reports", str(tmp_path / "reports")]
    config = tmp_path / "marketing"
    config.mkdir(exist_ok=True)
    (config / "settings.yaml").write_text("destinations:\n  app_inbox: {kind: message_store}\n")
    return ["erase", *more, "--warehouse", url, *folders, "--config", str(config)]


def test_ids_from_a_file_are_erased_and_the_receipt_names_none_of_them(
    warehouse: Engine, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)
    load(warehouse, [customer("C1"), customer("C2"), customer("C3")])
    listed = tmp_path / "erase.csv"
    listed.write_text("customer_id\nC1\n# a comment\n\nC2,requested by phone\n")
    result = CliRunner().invoke(main, args(warehouse, tmp_path, repo, "--file", str(listed), "--customer", "C2"))
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert "2 customer(s)" in first and "finished" in first
    assert "  customers                       2 row(s) deleted" in result.output
    assert not any(c in result.output for c in ("C1", "C2", "c1@example.com"))
    again = CliRunner().invoke(main, args(warehouse, tmp_path, repo, "--pending"))
    assert again.exit_code == 0 and "no erasure request is waiting" in again.output


def test_without_the_salt_or_without_customers_it_says_so_in_one_line(
    warehouse: Engine, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAMPAIGNS_ERASURE_SALT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CAMPAIGNS_ERASURE", raising=False)
    no_salt = CliRunner().invoke(main, args(warehouse, tmp_path, repo, "--customer", "C1"))
    assert no_salt.exit_code == 1 and "no erasure salt: set CAMPAIGNS_ERASURE_SALT" in no_salt.output
    assert "Traceback" not in no_salt.output
    nobody = CliRunner().invoke(main, args(warehouse, tmp_path, repo))
    assert nobody.exit_code == 2 and "--customer ID or --file FILE" in nobody.output


def test_without_the_settings_it_refuses_rather_than_skip_the_providers(
    warehouse: Engine, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)
    command = args(warehouse, tmp_path, repo, "--customer", "C1")
    command[command.index("--config") + 1] = str(tmp_path / "elsewhere")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and "the provider destinations are not known" in result.output
