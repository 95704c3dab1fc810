"""`campaigns console`: serve the marketer console; `campaigns console hash-password` for the users file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from campaign_orchestrator.cli.options import config_option, contracts_option, warehouse_option
from campaign_orchestrator.warehouse.engine import redacted


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8095, show_default=True, type=int)
@config_option
@contracts_option
@warehouse_option
@click.option(
    "--users",
    "users_file",
    envvar="CAMPAIGNS_CONSOLE_USERS",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The users file (env CAMPAIGNS_CONSOLE_USERS; or JSON in CAMPAIGNS_CONSOLE_USERS_JSON).",
)
@click.pass_context
def console(
    ctx: click.Context,
    host: str,
    port: int,
    config_dir: Path,
    contracts_dir: Path,
    warehouse: str,
    users_file: Path | None,
) -> None:
    """Serve the marketer console (session secret: CAMPAIGNS_CONSOLE_SECRET)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from campaign_orchestrator.console.settings import session_secret_from_environment
    from campaign_orchestrator.console.users import load_users

    session_secret_from_environment()  # refuse to start without a secret, before binding a port
    if users_file is not None:
        os.environ["CAMPAIGNS_CONSOLE_USERS"] = str(users_file)
    load_users(users_file, os.environ.get("CAMPAIGNS_CONSOLE_USERS_JSON"))  # and without users
    os.environ.update(
        {
            "CAMPAIGNS_CONFIG_DIR": str(config_dir),
            "CAMPAIGNS_CONTRACTS_DIR": str(contracts_dir),
            "CAMPAIGNS_WAREHOUSE_URL": warehouse,
        }
    )
    click.echo(f"console: {config_dir} over {redacted(warehouse)} on http://{host}:{port}", err=True)
    uvicorn.run(
        "campaign_orchestrator.console.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        access_log=False,  # uvicorn's would log paths and queries; ours logs route templates
        log_level="info",
    )


@console.command("hash-password")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted when not given.")
def hash_password_command(password: str) -> None:
    """Print an Argon2id hash of a password, for a user's `password_hash` in the users file."""
    from campaign_orchestrator.console.users import hash_password

    try:
        click.echo(hash_password(password))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
