"""Customer ingestion (queued) and listing."""
from __future__ import annotations

from typing import Annotated

from bson import ObjectId
from fastapi import APIRouter, Query, Response

from crm.access.policy import ADMINS, EDITORS, EVERY_ROLE, Policy
from crm.access.principals import Scope
from crm.api.access import Audit, guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, Limit, SettingsDep
from crm.api.ingest import IngestRoute
from crm.api.storage import DbDep
from crm.consent import erasure
from crm.db import ATTRIBUTE_REGISTRY, CUSTOMERS
from crm.models.common import CountParam, Email, IsoTime, MoneyParam, ObjectIdStr, Page
from crm.models.customers import MAX_BATCH, TAG_ANY_CASE, Attributes, Customer, CustomerBatchIn, CustomerIn
from crm.services import attributes
from crm.services import customers as service

POLICY = Policy(read_roles=EVERY_ROLE, write_roles=EDITORS, read_scopes=frozenset({Scope.CUSTOMERS_READ}),
                write_scopes=frozenset({Scope.CUSTOMERS_WRITE}))
router = APIRouter(prefix="/api/customers", tags=["customers"], dependencies=[guarded_by(POLICY)])
# Erasing a person is an admin's decision; no key may do it.
erasure_router = APIRouter(prefix="/api/customers", tags=["customers"],
                           dependencies=[guarded_by(Policy(read_roles=ADMINS, write_roles=ADMINS))])
IngestRoute(service.QUEUE_KIND, CustomerIn, CustomerBatchIn, MAX_BATCH, service.queue_records,
            lambda settings: settings.sqs_customer_queue_url,
            lambda db, customers, batch: attributes.check_types(db[ATTRIBUTE_REGISTRY], customers, batch)).add_to(
    router, "Validates one customer or a batch and queues them; the consumer upserts by e-mail.")


@router.get("", response_model=Page[Customer])
def list_customers(db: DbDep, settings: SettingsDep, email: Email | None = None,
                   q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                   min_spend: MoneyParam | None = None, max_spend: MoneyParam | None = None,
                   min_visits: CountParam | None = None, max_visits: CountParam | None = None,
                   active_after: IsoTime | None = None, active_before: IsoTime | None = None,
                   tag: Annotated[str | None, Query(pattern=TAG_ANY_CASE)] = None,
                   limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Customer]:
    filters = service.CustomerFilters(email=email, q=q, min_spend=min_spend, max_spend=max_spend,
                                      min_visits=min_visits, max_visits=max_visits,
                                      active_after=active_after, active_before=active_before,
                                      tag=tag.lower() if tag else None)
    items, next_cursor = service.list_customers(db[CUSTOMERS], filters, limit, cursor, settings.consent_mode)
    return Page[Customer](items=items, next_cursor=next_cursor)


@router.get("/attributes", response_model=Attributes)
def list_attributes(db: DbDep) -> Attributes:
    """The attribute keys ingested so far: type, how many customers have each (counted at most a minute ago),
    a few values."""
    return Attributes(items=attributes.listed(db[ATTRIBUTE_REGISTRY]))


@erasure_router.delete("/{customer_id:objectid}", status_code=204, response_class=Response)
def erase_customer(customer_id: ObjectIdStr, audit: Audit) -> Response:
    """Erases the person: their customer record, the address and text of their logs; their address stays only as a
    hash on the suppression list, so a re-import is never messaged."""
    erasure.erase(audit, ObjectId(customer_id))
    return Response(status_code=204)
