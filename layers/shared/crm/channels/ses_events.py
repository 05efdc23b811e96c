"""SES's events about the e-mails it was given (through the configuration set's EventBridge destination), read
into what each means for its log; crm.services.email_events applies them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from crm.errors import InvalidInput
from crm.models.campaigns import FAILED, SENT

# eventType → (the log's outcome and its reason, the counter and first-time mark, the suppression's reason)
EFFECTS: dict[str, tuple[tuple[str, str | None] | None, str | None, str | None]] = {
    "Delivery": ((SENT, None), "delivered", None),
    "Reject": ((FAILED, "rejected"), None, None),
    "Rendering Failure": ((FAILED, "rendering_failure"), None, None),
    "Complaint": (None, "complained", "complained"),
    "Open": (None, "opened", None),
    "Click": (None, "clicked", None),
}
PERMANENT_BOUNCE = ((FAILED, "bounced"), "bounced", "bounced")


@dataclass(frozen=True)
class SesEvent:
    kind: str
    message_id: str
    log_id: ObjectId | None
    at: datetime | None
    permanent: bool  # a bounce SES will not retry


def read(event: Any) -> SesEvent:
    """An EventBridge event from SES (detail-type "Email Delivered", "Email Bounced", ...)."""
    try:
        detail = event["detail"]
        mail = detail["mail"]
        kind = detail.get("eventType") or detail["notificationType"]
        log_ids = (mail.get("tags") or {}).get("log_id") or []
        log_id = ObjectId(log_ids[0]) if log_ids and ObjectId.is_valid(log_ids[0]) else None
        happened = _time(event.get("time"))
        bounce = detail.get("bounce") or {}
        return SesEvent(kind, str(mail["messageId"]), log_id, happened, bounce.get("bounceType") == "Permanent")
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise InvalidInput(f"not an SES event: {type(exc).__name__} {exc}") from exc


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        return None
