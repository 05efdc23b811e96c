"""The mock messaging vendor, a stand-in for an SMS / e-mail provider; authenticated by X-Vendor-Key."""
from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header

from crm import queues
from crm.api.deps import SettingsDep
from crm.api.openapi import VENDOR_KEY, body_of, secured_by
from crm.api.storage import DbDep
from crm.db import VENDOR_MESSAGES
from crm.errors import Unauthorized
from crm.models.campaigns import VendorAccepted, VendorBatchAccepted, VendorBatchIn, VendorResult, VendorSendIn
from crm.models.common import validate_one_or_batch
from crm.services import mock_vendor

MAX_BATCH = 100

router = APIRouter(prefix="/api/mock-send", tags=["vendor"])


@router.post("", status_code=202, response_model=VendorAccepted | VendorBatchAccepted,
             openapi_extra={**body_of(VendorSendIn, VendorBatchIn), **secured_by(VENDOR_KEY)})
def mock_send(payload: Annotated[Any, Body(include_in_schema=False)], settings: SettingsDep, db: DbDep,
              # Documented as the vendorKey security scheme rather than as a parameter.
              vendor_key: Annotated[str | None, Header(alias="X-Vendor-Key", max_length=200,
                                                       include_in_schema=False)] = None
              ) -> VendorAccepted | VendorBatchAccepted:
    """One message, or {"messages": [...]} with up to 100; accepted at once, each reported later (≈90 % SENT)
    by a signed call to the receipt URL."""
    if not vendor_key or not hmac.compare_digest(vendor_key, settings.secret("vendor_api_key")):
        raise Unauthorized("Missing or wrong X-Vendor-Key", code="invalid_vendor_key")
    sends = validate_one_or_batch(payload, VendorSendIn, "messages", MAX_BATCH)

    def schedule(receipts: list[dict], delay_seconds: int) -> None:
        queues.enqueue(settings.sqs_vendor_receipt_queue_url, mock_vendor.QUEUE_KIND, receipts, settings,
                       delay_seconds=delay_seconds)

    ids = mock_vendor.accept(db[VENDOR_MESSAGES], settings, sends, schedule)
    if isinstance(payload, dict) and "messages" in payload:
        return VendorBatchAccepted(results=[VendorResult(log_id=s.log_id, vendor_message_id=ids[s.log_id])
                                            for s in sends])
    return VendorAccepted(vendor_message_id=ids[sends[0].log_id])
