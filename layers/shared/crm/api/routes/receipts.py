"""Delivery receipts from the vendor: the signature and the body checked, then queued. Their consumer applies them
in batches (crm.consumers.receipts), so this reply waits on neither the database nor the campaign's size."""
from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel

from crm import signing
from crm.api.deps import SettingsDep
from crm.api.openapi import VENDOR_SIGNATURE, body_of, secured_by
from crm.errors import InvalidInput
from crm.models.campaigns import ReceiptBatchIn, ReceiptIn
from crm.models.common import validate_one_or_batch
from crm.services import receipts as receipt_queue

router = APIRouter(prefix="/api/delivery-receipt", tags=["vendor"])
MAX_RECEIPTS = 100


class ReceiptsAccepted(BaseModel):
    accepted: int
    ignored: int


async def raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("", status_code=202, response_model=ReceiptsAccepted,
             openapi_extra={**body_of(ReceiptIn, ReceiptBatchIn), **secured_by(VENDOR_SIGNATURE)})
def delivery_receipt(body: Annotated[bytes, Depends(raw_body)], settings: SettingsDep,
                     # Both checked by signing.verify, so that any bad one is the same 401; the signature is documented
                     # as the vendorSignature security scheme rather than as a parameter.
                     timestamp: Annotated[str | None, Header(alias="X-Vendor-Timestamp", json_schema_extra={
                         "pattern": signing.TIMESTAMP_PATTERN})] = None,
                     signature: Annotated[str | None, Header(alias="X-Vendor-Signature",
                                                             include_in_schema=False)] = None
                     ) -> ReceiptsAccepted:
    """One receipt or {"receipts": [...]}, queued; duplicates, late and unknown receipts change nothing when applied.
    `ignored` is always 0 now: which receipts change nothing is known only when they are applied."""
    signing.verify(settings.secret("webhook_secret"), timestamp, signature, body)
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise InvalidInput.for_field(("body",), "not JSON") from exc
    receipts = validate_one_or_batch(payload, ReceiptIn, "receipts", MAX_RECEIPTS)
    receipt_queue.queue(settings, receipts)
    return ReceiptsAccepted(accepted=len(receipts), ignored=0)
