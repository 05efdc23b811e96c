"""Customer ingestion (queued) and listing."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from crm.api.deps import DEFAULT_LIMIT, CurrentUser, Cursor, IdempotencyKey, Limit, SettingsDep, current_user
from crm.api.openapi import body_of
from crm import queues
from crm.api.storage import DbDep
from crm.db import CUSTOMERS, IDEMPOTENCY_KEYS
from crm.models.common import Email, IsoTime, Page, validate_one_or_batch
from crm.models.customers import MAX_BATCH, Accepted, Customer, CustomerBatchIn, CustomerIn
from crm.services import customers as service
from crm.services.idempotency import run_once

router = APIRouter(prefix="/api/customers", tags=["customers"], dependencies=[Depends(current_user)])


@router.post("", status_code=202, response_model=Accepted, openapi_extra=body_of(CustomerIn, CustomerBatchIn))
def ingest_customers(payload: Annotated[Any, Body(include_in_schema=False)], settings: SettingsDep, db: DbDep,
                     user: CurrentUser, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Validates one customer or a batch and queues them; the consumer upserts by e-mail."""
    customers = validate_one_or_batch(payload, CustomerIn, "customers", MAX_BATCH)
    status, body = run_once(db[IDEMPOTENCY_KEYS], f"customers:{user.email}", idempotency_key, payload,
                            lambda: _enqueue(customers, settings))
    return JSONResponse(body, status_code=status)


def _enqueue(customers: list, settings) -> tuple[int, dict]:
    records = service.queue_records(customers)
    queues.enqueue(settings.sqs_customer_queue_url, service.QUEUE_KIND, records, settings)
    return 202, {"accepted": len(records)}


@router.get("", response_model=Page[Customer])
def list_customers(db: DbDep, email: Email | None = None, q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                   min_spend: Annotated[float | None, Query(ge=0)] = None,
                   max_spend: Annotated[float | None, Query(ge=0)] = None,
                   min_visits: Annotated[int | None, Query(ge=0)] = None,
                   max_visits: Annotated[int | None, Query(ge=0)] = None,
                   active_after: IsoTime | None = None, active_before: IsoTime | None = None,
                   limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Customer]:
    filters = service.CustomerFilters(email, q, min_spend, max_spend, min_visits, max_visits, active_after, active_before)
    items, next_cursor = service.list_customers(db[CUSTOMERS], filters, limit, cursor)
    return Page[Customer](items=items, next_cursor=next_cursor)
