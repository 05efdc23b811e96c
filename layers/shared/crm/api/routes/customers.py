"""Customer ingestion (queued) and listing."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from crm.api.deps import DEFAULT_LIMIT, CurrentUser, Cursor, IdempotencyKey, Limit, SettingsDep, current_user
from crm.api.ingest import IngestRoute
from crm.api.openapi import body_of
from crm.api.storage import DbDep
from crm.db import CUSTOMERS
from crm.models.common import Accepted, Email, IsoTime, Page
from crm.models.customers import MAX_BATCH, Customer, CustomerBatchIn, CustomerIn
from crm.services import customers as service

# The queue message kind doubles as the batch key of the POST body: {"customers": [...]}.
INGEST = IngestRoute(service.QUEUE_KIND, CustomerIn, MAX_BATCH, service.queue_records,
                     lambda settings: settings.sqs_customer_queue_url)
router = APIRouter(prefix="/api/customers", tags=["customers"], dependencies=[Depends(current_user)])


@router.post("", status_code=202, response_model=Accepted, openapi_extra=body_of(CustomerIn, CustomerBatchIn))
def ingest_customers(payload: Annotated[Any, Body(include_in_schema=False)], settings: SettingsDep, db: DbDep,
                     user: CurrentUser, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Validates one customer or a batch and queues them; the consumer upserts by e-mail."""
    return INGEST.accept(payload, settings, db, user, idempotency_key)


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
