"""Scheduled: settles lapsed sends and missing receipts, restarts stalled fan-outs, completes campaigns."""
from crm.consumers.reconcile import reconcile_handler as handler  # noqa: F401
