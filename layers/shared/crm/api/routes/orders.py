"""Order ingestion (queued) and listing."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from crm.api.deps import DEFAULT_LIMIT, CurrentUser, Cursor, IdempotencyKey, Limit, SettingsDep, current_user
from crm.api.ingest import IngestRoute
from crm.api.openapi import body_of
from crm.api.storage import DbDep
from crm.db import ORDERS
from crm.models.common import Accepted, IsoTime, ObjectIdStr, Page
from crm.models.orders import MAX_BATCH, Order, OrderBatchIn, OrderIn
from crm.services import orders as service

# The queue message kind doubles as the batch key of the POST body: {"orders": [...]}.
INGEST = IngestRoute(service.QUEUE_KIND, OrderIn, MAX_BATCH, service.queue_records,
                     lambda settings: settings.sqs_order_queue_url)
router = APIRouter(prefix="/api/orders", tags=["orders"], dependencies=[Depends(current_user)])


@router.post("", status_code=202, response_model=Accepted, openapi_extra=body_of(OrderIn, OrderBatchIn))
def ingest_orders(payload: Annotated[Any, Body(include_in_schema=False)], settings: SettingsDep, db: DbDep,
                  user: CurrentUser, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Validates one order or a batch and queues them; the consumer applies each order_id once."""
    return INGEST.accept(payload, settings, db, user, idempotency_key)


@router.get("", response_model=Page[Order])
def list_orders(db: DbDep, customer_id: ObjectIdStr | None = None,
                date_from: Annotated[IsoTime | None, Query(alias="from")] = None,
                date_to: Annotated[IsoTime | None, Query(alias="to")] = None,
                limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Order]:
    filters = service.OrderFilters(customer_id, date_from, date_to)
    items, next_cursor = service.list_orders(db[ORDERS], filters, limit, cursor)
    return Page[Order](items=items, next_cursor=next_cursor)
