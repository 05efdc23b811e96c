"""Order ingestion (queued) and listing."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crm.access.policy import EDITORS, EVERY_ROLE, Policy
from crm.access.principals import Scope
from crm.api.access import guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, Limit
from crm.api.ingest import IngestRoute
from crm.api.storage import DbDep
from crm.db import ORDERS
from crm.models.common import IsoTime, ObjectIdStr, Page
from crm.models.orders import MAX_BATCH, Order, OrderBatchIn, OrderIn
from crm.services import orders as service

POLICY = Policy(read_roles=EVERY_ROLE, write_roles=EDITORS, read_scopes=frozenset({Scope.ORDERS_READ}),
                write_scopes=frozenset({Scope.ORDERS_WRITE}))
router = APIRouter(prefix="/api/orders", tags=["orders"], dependencies=[guarded_by(POLICY)])
IngestRoute(service.QUEUE_KIND, OrderIn, OrderBatchIn, MAX_BATCH, service.queue_records,
            lambda settings: settings.sqs_order_queue_url).add_to(
    router, "Validates one order or a batch and queues them; the consumer applies each order_id once.")


@router.get("", response_model=Page[Order])
def list_orders(db: DbDep, customer_id: ObjectIdStr | None = None,
                date_from: Annotated[IsoTime | None, Query(alias="from")] = None,
                date_to: Annotated[IsoTime | None, Query(alias="to")] = None,
                limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Order]:
    filters = service.OrderFilters(customer_id, date_from, date_to)
    items, next_cursor = service.list_orders(db[ORDERS], filters, limit, cursor)
    return Page[Order](items=items, next_cursor=next_cursor)
