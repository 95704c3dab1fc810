"""The `campaigns` command: the night's stages and the marketers' checks, without a scheduler."""

from __future__ import annotations

import logging
import sys

import click

from campaign_orchestrator.cli.console import console
from campaign_orchestrator.cli.db import db
from campaign_orchestrator.cli.erase import erase
from campaign_orchestrator.cli.inbox import inbox
from campaign_orchestrator.cli.marketing import estimate, plan, preview, validate
from campaign_orchestrator.cli.measure import measure
from campaign_orchestrator.cli.night import deliver, import_command, notices, run, schema
from campaign_orchestrator.cli.pinpoint import import_pinpoint
from campaign_orchestrator.cli.purge import purge
from campaign_orchestrator.cli.report import report
from campaign_orchestrator.errors import CampaignError


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class EngineGroup(click.Group):
    """Any error the engine raises on purpose is one clear message and exit 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CampaignError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=EngineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Batch campaign orchestrator: import, segment, target, render and deliver campaigns."""
    setup_logging(verbose)


for _command in (
    run,
    deliver,
    import_command,
    measure,
    notices,
    schema,
    plan,
    estimate,
    preview,
    validate,
    inbox,
    console,
    import_pinpoint,
    report,
    db,
    erase,
    purge,
):
    main.add_command(_command)
