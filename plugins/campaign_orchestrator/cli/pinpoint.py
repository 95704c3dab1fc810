"""`campaigns import-pinpoint`: Amazon Pinpoint in-app campaigns into the marketing folder.

Writes nothing unless the folder, with the imported files, passes what `campaigns validate`
checks (the loader and the template lint); prints what it wrote and every warning.
"""

from __future__ import annotations

from pathlib import Path

import click

from campaign_orchestrator.cli.options import config_option, contracts_option
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.definitions.pinpoint_import import (
    DEFAULT_DESTINATION,
    ImportOptions,
    ImportPlan,
    plan_import,
    write_plan,
)
from campaign_orchestrator.errors import CampaignError
from campaign_orchestrator.ingest.contracts import load_contracts, template_samples, template_variables, vocabulary
from campaign_orchestrator.ingest.sources import load_sources_config
from campaign_orchestrator.render.lint import lint_templates


def _pairs(option: str, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key.strip() or not target.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint=option)
        pairs[key.strip()] = target.strip()
    return pairs


@click.command("import-pinpoint")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@contracts_option
@click.option("--segment", help="An existing segment for every imported campaign (--segment-map ones aside).")
@click.option(
    "--segment-map",
    "segment_map",
    multiple=True,
    metavar="PINPOINT_SEGMENT_ID=SEGMENT",
    help="Our segment for a Pinpoint SegmentId; repeat for several.",
)
@click.option(
    "--destination",
    default=DEFAULT_DESTINATION,
    show_default=True,
    help="The message_store destination (settings.yaml) the campaigns deliver into.",
)
@click.option(
    "--default",
    "defaults",
    multiple=True,
    metavar="VARIABLE=TEXT",
    help="What a variable renders as for a customer without a value (Pinpoint: empty); repeatable.",
)
@click.option(
    "--register-links", is_flag=True, help="Add the buttons' deep links that are not routes to deep_links.yaml."
)
@click.option("--force", is_flag=True, help="Replace campaign and template files that exist.")
@click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")
def import_pinpoint(
    files: tuple[Path, ...],
    config_dir: Path,
    contracts_dir: Path,
    segment: str | None,
    segment_map: tuple[str, ...],
    destination: str,
    defaults: tuple[str, ...],
    register_links: bool,
    force: bool,
    dry_run: bool,
) -> None:
    """Convert Amazon Pinpoint in-app campaigns (FILE: `aws pinpoint get-campaign` output) and the
    in-app templates they use (`aws pinpoint get-in-app-template` output) into campaign and
    template files of the marketing folder, validated before anything is written."""

    try:
        contracts = load_contracts(contracts_dir)
        lists_file = contracts_dir / "sources.yaml"
        lists = frozenset(load_sources_config(lists_file).lists) if lists_file.exists() else None
        variables = template_variables(contracts)
        samples = template_samples(contracts)

        def lint(defs: Definitions, template_ids: set[str]) -> list[str]:
            return lint_templates(defs, variables, samples, only=template_ids)

        options = ImportOptions(
            destination=destination,
            segment=segment,
            segment_map=_pairs("--segment-map", segment_map),
            register_links=register_links,
            force=force,
            defaults=_pairs("--default", defaults),
            variables=frozenset(variables),
        )
        plan = plan_import(list(files), config_dir, options, vocabulary(contracts, lists), lint)
        if not dry_run:
            write_plan(plan)
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    _report(plan, dry_run)


def _report(plan: ImportPlan, dry_run: bool) -> None:
    if dry_run:
        for relative, text in plan.files.items():
            appended = plan.appended.get(relative)
            click.echo(f"--- {plan.config_dir / relative}{' (lines appended)' if appended else ''}")
            click.echo(appended or text, nl=False)
    verb = "would write" if dry_run else "wrote"
    for line in plan.summary:
        replaced = " (replaced)" if line.split(":", 1)[0] in plan.replaced else ""
        click.echo(f"{verb} {plan.config_dir}/{line}{replaced}")
    if plan.warnings:
        click.echo(f"\n{len(plan.warnings)} warning(s): review these in the files before the campaigns run")
        for warning in plan.warnings:
            click.echo(f"  - {warning}")
    if dry_run:
        click.echo("\ndry run: nothing was written")
    else:
        click.echo("\nnext: review the files, then `campaigns validate` and `campaigns plan --date YYYY-MM-DD`")
