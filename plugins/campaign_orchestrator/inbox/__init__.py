"""The in-app inbox service the apps call: feed, engagement events, caps at display, preferences,
devices, and Pinpoint-compatible routes, over the message store the night delivers into."""

from campaign_orchestrator.inbox.app import create_app
from campaign_orchestrator.inbox.settings import InboxNotConfigured, InboxSettings
from campaign_orchestrator.inbox.tokens import InvalidToken, customer_of, issue_token

__all__ = ["InboxNotConfigured", "InboxSettings", "InvalidToken", "create_app", "customer_of", "issue_token"]
