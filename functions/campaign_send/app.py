"""Consumer of the campaign send queue: calls the vendor once per log."""
from crm.consumers.campaigns import campaign_send_handler as handler  # noqa: F401
