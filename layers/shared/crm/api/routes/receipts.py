"""Delivery receipts from the vendor: signed, batched, applied idempotently."""
from __future__ import annotations

import json
from typing import Annotated, Any

from bson import ObjectId
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel

from crm import signing
from crm.api.deps import SettingsDep
from crm.api.openapi import VENDOR_SIGNATURE, body_of, secured_by
from crm.api.storage import DbDep
from crm.errors import InvalidInput
from crm.models.campaigns import ReceiptBatchIn, ReceiptIn
from crm.models.common import validate_one_or_batch
from crm.services.delivery import Outcome, record_outcomes

router = APIRouter(prefix="/api/delivery-receipt", tags=["vendor"])
MAX_RECEIPTS = 100


class ReceiptsAccepted(BaseModel):
    accepted: int
    ignored: int


async def raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("", status_code=202, response_model=ReceiptsAccepted,
             openapi_extra={**body_of(ReceiptIn, ReceiptBatchIn), **secured_by(VENDOR_SIGNATURE)})
def delivery_receipt(body: Annotated[bytes, Depends(raw_body)], settings: SettingsDep, db: DbDep,
                     # Both checked by signing.verify, so that any bad one is the same 401; the signature is documented
                     # as the vendorSignature security scheme rather than as a parameter.
                     timestamp: Annotated[str | None, Header(alias="X-Vendor-Timestamp", json_schema_extra={
                         "pattern": signing.TIMESTAMP_PATTERN})] = None,
                     signature: Annotated[str | None, Header(alias="X-Vendor-Signature",
                                                             include_in_schema=False)] = None
                     ) -> ReceiptsAccepted:
    """One receipt or {"receipts": [...]}; duplicates, late and unknown receipts change nothing."""
    signing.verify(settings.secret("webhook_secret"), timestamp, signature, body)
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise InvalidInput.for_field(("body",), "not JSON") from exc
    receipts = validate_one_or_batch(payload, ReceiptIn, "receipts", MAX_RECEIPTS)
    applied, ignored = record_outcomes(db, [
        Outcome(ObjectId(r.log_id), r.status, r.vendor_message_id, r.timestamp, r.reason) for r in receipts])
    return ReceiptsAccepted(accepted=len(receipts), ignored=ignored)
