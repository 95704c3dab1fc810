"""The engine's errors: one root, and one marker for what retrying cannot fix.

Every error the engine raises on purpose is a `CampaignError`. Those caused by an input that is
wrong (a definition, a rule, a template at lint, a data contract, a source, a connection's
settings) also carry the `InvalidInput` marker, mixed in as dlt marks its terminal errors: the
DAG fails such a task at once instead of retrying it, and the CLI prints the message without a
traceback. Everything else (a provider that is down, a night left incomplete) is worth retrying.
"""

from __future__ import annotations


class CampaignError(Exception):
    """Root of the errors the engine raises on purpose; the message is for a person."""


class InvalidInput(Exception):
    """Marker: the input is wrong, and retrying the same input cannot fix it."""


class NightIncomplete(CampaignError):
    """The night ran, but is not complete: a stage did not finish, or campaigns were held."""
