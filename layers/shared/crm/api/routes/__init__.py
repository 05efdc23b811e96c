"""One router per endpoint group; each function serves its own group."""
from __future__ import annotations

from fastapi import APIRouter


def documented() -> list[APIRouter]:
    """Every group's router but meta's (whose function serves the document), in the order the document lists them."""
    from crm.api.routes import (
        access,
        ai,
        auth,
        campaigns,
        consent,
        customers,
        orders,
        receipts,
        segments,
        test_send,
        unsubscribe,
        vendor,
    )

    return [auth.router, *access.routers, consent.router, customers.router, customers.erasure_router,
            orders.router, segments.router, campaigns.router, test_send.router, ai.router, vendor.router,
            receipts.router, unsubscribe.router]
