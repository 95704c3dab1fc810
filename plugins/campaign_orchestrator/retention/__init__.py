"""Retention: personal data and ledgers kept only as long as the settings say.

Guarantee: `purge` removes or empties, per store, exactly what is older than its setting
(`settings.retention`, in days; none set keeps everything), set-based, and never what a night
still needs: a message that may still be sent or whose fate is `unknown` keeps its payload and
row, and `outbox_days` is refused beside a campaign whose `caps.total` counts sends ever.
"""

from campaign_orchestrator.retention.purge import PurgeReport, purge

__all__ = ["PurgeReport", "purge"]
