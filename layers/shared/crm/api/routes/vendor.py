"""The mock messaging vendor, a stand-in for an SMS / e-mail provider; authenticated by X-Vendor-Key."""
from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path

from crm import queues
from crm.api.deps import SettingsDep
from crm.api.openapi import VENDOR_KEY, body_of, secured_by
from crm.api.storage import DbDep
from crm.db import VENDOR_MESSAGES
from crm.errors import NotFound, Unauthorized
from crm.models.campaigns import (
    VendorAccepted,
    VendorBatchAccepted,
    VendorBatchIn,
    VendorResult,
    VendorSendIn,
    VendorStatus,
)
from crm.models.common import validate_one_or_batch
from crm.services import mock_vendor

MAX_BATCH = 100

router = APIRouter(prefix="/api/mock-send", tags=["vendor"])


def vendor_key_checked(settings: SettingsDep,
                       # Documented as the vendorKey security scheme rather than as a parameter; any wrong key is a 401.
                       vendor_key: Annotated[str | None, Header(alias="X-Vendor-Key", include_in_schema=False)] = None
                       ) -> None:
    # Compared as bytes: hmac.compare_digest raises TypeError on a str that is not ASCII.
    if not vendor_key or not hmac.compare_digest(vendor_key.encode(), settings.secret("vendor_api_key").encode()):
        raise Unauthorized("Missing or wrong X-Vendor-Key", code="invalid_vendor_key")


VendorKey = Depends(vendor_key_checked)


@router.post("", status_code=202, response_model=VendorAccepted | VendorBatchAccepted, dependencies=[VendorKey],
             openapi_extra={**body_of(VendorSendIn, VendorBatchIn), **secured_by(VENDOR_KEY)})
def mock_send(payload: Annotated[Any, Body(include_in_schema=False)], settings: SettingsDep, db: DbDep,
              ) -> VendorAccepted | VendorBatchAccepted:
    """One message, or {"messages": [...]} with up to 100; accepted at once, each reported later (≈90 % SENT)
    by a signed call to the receipt URL. A log_id sent again gets its first vendor_message_id back and sends
    nothing more."""
    sends = validate_one_or_batch(payload, VendorSendIn, "messages", MAX_BATCH)

    def schedule(receipts: list[dict], delay_seconds: int) -> None:
        queues.enqueue(settings.sqs_vendor_receipt_queue_url, mock_vendor.QUEUE_KIND, receipts, settings,
                       delay_seconds=delay_seconds)

    ids = mock_vendor.accept(db[VENDOR_MESSAGES], settings, sends, schedule)
    if isinstance(payload, dict) and "messages" in payload:
        return VendorBatchAccepted(results=[VendorResult(log_id=s.log_id, vendor_message_id=ids[s.log_id])
                                            for s in sends])
    return VendorAccepted(vendor_message_id=ids[sends[0].log_id])


@router.get("/{vendor_message_id}", response_model=VendorStatus, dependencies=[VendorKey],
            openapi_extra=secured_by(VENDOR_KEY))
def mock_status(vendor_message_id: Annotated[str, Path(min_length=1, max_length=100)], settings: SettingsDep,
                db: DbDep) -> VendorStatus:
    """What became of a message: ACCEPTED until it is reported, then SENT or FAILED."""
    found = mock_vendor.status_of(db[VENDOR_MESSAGES], settings, vendor_message_id)
    if found is None:
        raise NotFound(f"No message {vendor_message_id[:100]}")
    return VendorStatus(**found)
