"""Dependency checks behind GET /health."""
from __future__ import annotations

from crm import db, queues
from crm.config import Settings
from crm.errors import translate


def check_dependencies(settings: Settings) -> dict[str, str]:
    checks: dict[str, str] = {}
    for name, probe in (("mongo", lambda: db.ping(settings)), ("queues", lambda: _check_queues(settings))):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means that dependency is down
            checks[name] = "unavailable" if translate(exc) else f"error: {type(exc).__name__}"
    return checks


# The mock vendor's queue exists only in a stack whose channel it is (template.yaml: UseMockVendor).
ONLY_WITH_THE_MOCK_VENDOR = {"sqs_vendor_receipt_queue_url"}


def _check_queues(settings: Settings) -> None:
    for name in Settings.model_fields:
        if name.startswith("sqs_") and name.endswith("_queue_url"):
            url = getattr(settings, name)
            if not url and name in ONLY_WITH_THE_MOCK_VENDOR:
                continue
            if not url:
                raise RuntimeError(f"{name} is not configured")
            queues.check(url, settings)
