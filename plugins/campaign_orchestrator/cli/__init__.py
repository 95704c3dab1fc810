"""The `campaigns` command line: operators' commands (run a night, deliver, import, notices, schema)
and marketers' (validate, estimate, plan, preview), calling the same engine functions as the DAG.

Guarantee: a wrong definition, input or connection ends in one clear message and a non-zero exit,
never a traceback; nothing here holds logic the DAG does not share.
"""

from campaign_orchestrator.cli.main import main

__all__ = ["main"]
