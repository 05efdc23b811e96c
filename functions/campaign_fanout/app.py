"""Consumer of the campaign fan-out queue: one log per recipient, sends queued in packed messages."""
from crm.consumers.campaigns import campaign_fanout_handler as handler  # noqa: F401
