"""`campaigns erase`: remove customers from every store and print the receipt.

Prints the receipt (request id, counts per store, provider destinations), never a customer's id or
address; exits non-zero while a request is not finished (a provider down, a message in flight),
saying what it waits for: `campaigns erase --pending` finishes it.
"""

from __future__ import annotations

from pathlib import Path

import click

from campaign_orchestrator.cli.options import archive_option, config_option, reports_option, warehouse_option
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.definitions.yaml_files import read_yaml
from campaign_orchestrator.erasure import Places, Receipt, continue_erasure, pending_requests, request_erasure
from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema, redacted


class ErasureSettingsInvalid(CampaignError, InvalidInput):
    """settings.yaml cannot be read, so the provider destinations are not known."""


def read_ids(path: Path) -> list[str]:
    """One customer id a line; blank lines, `#` comments and a `customer_id` header are skipped."""
    ids = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        value = line.split("#", 1)[0].strip().strip('"')
        if value and value != "customer_id":
            ids.append(value.split(",", 1)[0].strip())
    return ids


def read_settings(config_dir: Path) -> Settings:
    """The destinations to forward to; without the file they are not known, which is an error (an
    erasure run from the wrong folder must not skip the providers)."""
    path = config_dir / "settings.yaml"
    if not path.exists():
        raise ErasureSettingsInvalid(f"{path} does not exist: the provider destinations are not known (--config)")
    problems: list[str] = []
    data = read_yaml(path, problems)
    if problems:
        raise ErasureSettingsInvalid("; ".join(problems))
    try:
        return Settings.model_validate(data or {})
    except ValueError as exc:
        raise ErasureSettingsInvalid(f"{path}: {exc}") from None


@click.command()
@click.option("--customer", "customer_ids", multiple=True, help="A customer id to erase (repeat).")
@click.option(
    "--file",
    "id_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of customer ids, one a line.",
)
@click.option("--pending", is_flag=True, help="Finish every request not finished yet (a crash, the inbox's DELETE).")
@warehouse_option
@archive_option
@reports_option
@config_option
def erase(
    customer_ids: tuple[str, ...],
    id_file: Path | None,
    pending: bool,
    warehouse: str,
    archive_dir: Path,
    reports_dir: Path,
    config_dir: Path,
) -> None:
    """Erase customers: suppress them at once, then delete or anonymise them in every table, archive
    file, report and provider that supports deletion; keep a receipt and salted-hash tombstones
    (the salt: CAMPAIGNS_ERASURE_SALT)."""
    ids = [*customer_ids, *(read_ids(id_file) if id_file else [])]
    if not ids and not pending:
        raise click.UsageError("name customers with --customer ID or --file FILE, or give --pending")
    places = Places(archive_dir=archive_dir, reports_dir=reports_dir, settings=read_settings(config_dir))
    click.echo(f"warehouse: {redacted(warehouse)}", err=True)
    engine = create_warehouse_engine(warehouse)
    ensure_schema(engine)
    requests = [request_erasure(engine, ids, "cli")] if ids else []
    if pending:
        requests += [r for r in pending_requests(engine) if r not in requests]
    receipts: list[Receipt] = [continue_erasure(engine, r, places) for r in requests]
    engine.dispose()
    for receipt in receipts:
        click.echo("\n".join(receipt.lines()))
    if not receipts:
        click.echo("no erasure request is waiting")
    unfinished = [r.request_id for r in receipts if not r.finished]
    if unfinished:
        raise click.ClickException(
            f"{len(unfinished)} erasure request(s) not finished ({', '.join(unfinished)}): see 'waiting for' above; "
            "the customers are suppressed already, and `campaigns erase --pending` finishes the rest"
        )
