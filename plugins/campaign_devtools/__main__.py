"""`python -m campaign_devtools`: the same as `campaigns-dev`."""

from campaign_devtools.cli import main

main()
