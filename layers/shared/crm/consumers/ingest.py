"""The ingest consumers' record appliers, bound to this container's database."""
from __future__ import annotations

from typing import Any

from crm.consumers import make_sqs_handler
from crm.db import get_db
from crm.services.customers import QUEUE_KIND as CUSTOMERS_KIND
from crm.services.customers import upsert_customers
from crm.services.orders import QUEUE_KIND as ORDERS_KIND
from crm.services.orders import apply_orders


def apply_customer_records(records: list[Any], _deadline: float | None = None) -> None:
    upsert_customers(get_db(), records)


def apply_order_records(records: list[Any], _deadline: float | None = None) -> None:
    apply_orders(get_db(), records)


customer_ingest_handler = make_sqs_handler(CUSTOMERS_KIND, apply_customer_records)
order_ingest_handler = make_sqs_handler(ORDERS_KIND, apply_order_records)
