"""The suppression list: addresses never messaged."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from crm.access.policy import EDITORS, EVERY_ROLE, Policy
from crm.api.access import Audit, guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, Limit
from crm.api.storage import DbDep
from crm.consent import suppressions
from crm.db import SUPPRESSIONS
from crm.models.common import Email, Page
from crm.models.consent import Suppression, SuppressionIn, SuppressionRemovalIn
from crm.pagination import newest_first_page

router = APIRouter(prefix="/api/suppressions", tags=["consent"],
                   dependencies=[guarded_by(Policy(read_roles=EVERY_ROLE, write_roles=EDITORS))])


def _suppression(doc: dict) -> Suppression:
    return Suppression(email=doc.get("email"), reason=doc["reason"], created_at=doc["created_at"])


@router.get("", response_model=Page[Suppression])
def list_suppressions(db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Suppression]:
    docs, next_cursor = newest_first_page(db[SUPPRESSIONS], [{}], limit, cursor)
    return Page[Suppression](items=[_suppression(d) for d in docs], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=Suppression)
def suppress(body: SuppressionIn, audit: Audit) -> Suppression:
    """The address is never messaged again; posting it again changes nothing (its first reason stays), but for an
    `unsubscribed` or `complained`, the person's own word, which replaces a `bounced` or `manual` one."""
    doc = audit.write("suppression.create", "suppression", suppressions.address_hash(body.email),
                      lambda session: suppressions.add(audit.db[SUPPRESSIONS], body.email, body.reason, session))
    return _suppression(doc)


@router.delete("/{email:path}", status_code=204, response_class=Response)
def unsuppress(email: Annotated[Email, Path()], audit: Audit, body: SuppressionRemovalIn | None = None) -> Response:
    """The address may be messaged again (if its customer is subscribed). An `unsubscribed` or `complained` entry
    (the person's own) is removed only by an admin, with a `reason` (403 for anyone else, 422 without one); 409 for
    an erased person's."""
    suppressions.remove(audit, email, body.reason if body else None)
    return Response(status_code=204)
