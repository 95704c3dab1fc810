"""Options and helpers shared by the `campaigns` commands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.warehouse.engine import DEFAULT_WAREHOUSE_URL, redacted


def parse_date(_ctx: Any, _param: Any, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


warehouse_option = click.option(
    "--warehouse",
    envvar="CAMPAIGNS_WAREHOUSE_URL",
    default=DEFAULT_WAREHOUSE_URL,
    show_default=True,
    help="SQLAlchemy URL of the warehouse (env CAMPAIGNS_WAREHOUSE_URL).",
)
config_option = click.option(
    "--config",
    "config_dir",
    envvar="CAMPAIGNS_CONFIG_DIR",
    default="marketing",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The marketers' definitions folder.",
)
contracts_option = click.option(
    "--contracts",
    "contracts_dir",
    envvar="CAMPAIGNS_CONTRACTS_DIR",
    default="data_contracts",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data contracts and sources.yaml.",
)


sources_option = click.option(
    "--sources",
    "sources_dir",
    envvar="CAMPAIGNS_SOURCES_DIR",
    default="data/incoming",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with the night's source files (env CAMPAIGNS_SOURCES_DIR).",
)
reports_option = click.option(
    "--reports",
    "reports_dir",
    envvar="CAMPAIGNS_REPORTS_DIR",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run reports go (env CAMPAIGNS_REPORTS_DIR).",
)
archive_option = click.option(
    "--archive",
    "archive_dir",
    envvar="CAMPAIGNS_ARCHIVE_DIR",
    default="archive",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where each night's raw and validated inputs are kept (env CAMPAIGNS_ARCHIVE_DIR).",
)


def run_config(run_date: dt.date, **kwargs: Any) -> Any:
    """The run's config from the options; says on stderr which warehouse it uses (the default, a
    file in the current folder, is easy to use by mistake)."""

    config = RunConfig(run_date=run_date, **{k: v for k, v in kwargs.items() if v is not None})
    default = " (the default: --warehouse or CAMPAIGNS_WAREHOUSE_URL to choose another)"
    note = default if config.warehouse_url == DEFAULT_WAREHOUSE_URL else ""
    click.echo(f"warehouse: {redacted(config.warehouse_url)}{note}", err=True)
    return config
