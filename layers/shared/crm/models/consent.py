"""Shapes of API.md's "Consent": the suppression list."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from crm.models.common import Email, InputModel, IsoTime

# What a person may add by hand; `erased` comes only from erasing a customer.
AddedReason = Literal["unsubscribed", "bounced", "complained", "manual"]


class SuppressionIn(InputModel):
    email: Email
    reason: AddedReason = "manual"


class SuppressionRemovalIn(InputModel):
    reason: str = Field(min_length=1, max_length=500, description=(
        "Why the address may be messaged again; kept on the audit trail. Required to remove an `unsubscribed` or "
        "`complained` entry (admins only)."))


class Suppression(BaseModel):
    # None for an erased person: only the address's hash is kept.
    email: str | None
    reason: Literal["unsubscribed", "bounced", "complained", "manual", "erased"]
    created_at: IsoTime
