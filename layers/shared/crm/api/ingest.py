"""The one way a POST ingests records: validate all, then queue them packed, at most once per Idempotency-Key."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable

from bson import ObjectId
from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.database import Database

from crm import queues
from crm.access.audit import Auditor
from crm.api.access import Audit
from crm.api.deps import IdempotencyKey, SettingsDep
from crm.api.openapi import body_of
from crm.config import Settings
from crm.db import IDEMPOTENCY_KEYS
from crm.errors import InvalidInput
from crm.messages import too_large
from crm.models.common import Accepted, validate_one_or_batch
from crm.services.idempotency import run_once


@dataclass(frozen=True)
class IngestRoute:
    """`kind` names the queue message kind and the batch key of the body: `{"<kind>": [...]}`."""

    kind: str
    model: type[BaseModel]
    batch_model: type[BaseModel]
    max_batch: int
    queue_records: Callable[[list[Any]], list[dict[str, Any]]]
    queue_url: Callable[[Settings], str]
    # What the records must agree with beyond their own shape (the attribute registry's types): (db, records,
    # whether the body was a batch); raises InvalidInput.
    check: Callable[[Database, list[Any], bool], None] | None = None

    def add_to(self, router: APIRouter, description: str) -> None:
        """POST on the router's prefix: one object or a batch, answered 202 once queued."""

        @router.post("", status_code=202, response_model=Accepted, description=description,
                     operation_id=f"ingest_{self.kind}", openapi_extra=body_of(self.model, self.batch_model))
        def ingest(payload: Annotated[Any, Body(include_in_schema=False)], settings: SettingsDep, audit: Audit,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
            return self.accept(payload, settings, audit, idempotency_key)

    def accept(self, payload: Any, settings: Settings, audit: Auditor, idempotency_key: str | None) -> JSONResponse:
        valid = validate_one_or_batch(payload, self.model, self.kind, self.max_batch)
        if self.check is not None:
            self.check(audit.db, valid, isinstance(payload, dict) and self.kind in payload)

        records = self.queue_records(valid)
        batch = isinstance(payload, dict) and self.kind in payload
        if oversized := too_large(self.kind, records, settings.sqs_max_message_bytes):
            raise InvalidInput(f"A {self.kind} record is larger than the queue carries; send less in it",
                               [{"loc": ["body", self.kind, i] if batch else ["body"],
                                 "msg": f"at most {settings.sqs_max_message_bytes} bytes as JSON"}
                                for i in oversized[:20]])

        def enqueue(ingest_id: ObjectId) -> tuple[int, dict[str, Any]]:
            # Queuing twice after a takeover is harmless: customers upsert and orders apply once per order_id.
            audit.before(f"{self.kind}.ingest:{ingest_id}", f"{self.kind}.ingest", self.kind, None,
                         lambda: queues.enqueue(self.queue_url(settings), self.kind, records, settings),
                         accepted=len(records))
            return 202, {"accepted": len(records)}

        status, body = run_once(audit.db[IDEMPOTENCY_KEYS], f"{self.kind}:{audit.actor.key}", idempotency_key, payload,
                                enqueue)
        return JSONResponse(body, status_code=status)
