"""Consumer of the clicks queue: clicks on tracked links applied to their logs, a batch at a time."""
from crm.consumers.clicks import click_handler as handler  # noqa: F401
