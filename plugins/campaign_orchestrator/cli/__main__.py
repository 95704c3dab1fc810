"""`python -m campaign_orchestrator.cli`: the same as the `campaigns` console script."""

from campaign_orchestrator.cli.main import main

main()
