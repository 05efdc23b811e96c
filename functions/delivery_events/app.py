"""Consumer of the SES event queue: applies delivery, bounce, complaint, open and click events to their logs."""
from crm.consumers.delivery_events import delivery_event_handler as handler  # noqa: F401
