"""Scheduled: rolls each campaign's counters up from its logs' tallies, every few seconds for a minute."""
from crm.consumers.roll_up import roll_up_handler as handler  # noqa: F401
