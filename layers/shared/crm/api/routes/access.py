"""Who is calling (any credential), and the admins' routes: users, API keys, the audit trail."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from crm.access import api_keys, users
from crm.access import audit as audit_trail
from crm.access.policy import ADMINS, EVERY_ROLE, Policy
from crm.access.principals import USER, Scope
from crm.api.access import Audit, Caller, guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, Limit
from crm.api.storage import DbDep
from crm.models.access import ApiKey, ApiKeyCreated, ApiKeyIn, AuditEntry, Me, User, UserIn, UserPatch
from crm.models.common import IsoTime, ObjectIdStr, Page

ADMINS_ONLY = Policy(read_roles=ADMINS, write_roles=ADMINS)

me_router = APIRouter(prefix="/api/me", tags=["access"], dependencies=[guarded_by(Policy(
    read_roles=EVERY_ROLE, write_roles=frozenset(), read_scopes=frozenset(Scope)))])
users_router = APIRouter(prefix="/api/users", tags=["access"], dependencies=[guarded_by(ADMINS_ONLY)])
keys_router = APIRouter(prefix="/api/api-keys", tags=["access"], dependencies=[guarded_by(ADMINS_ONLY)])
audit_router = APIRouter(prefix="/api/audit", tags=["access"], dependencies=[guarded_by(ADMINS_ONLY)])


@me_router.get("", response_model=Me, response_model_exclude_none=True)
def me(caller: Caller) -> Me:
    if caller.type == USER:
        return Me(type="user", email=caller.email, name=caller.name, role=caller.role)
    return Me(type="api_key", id=caller.id, name=caller.name, scopes=sorted(caller.scopes, key=list(Scope).index))


@users_router.get("", response_model=Page[User])
def list_users(db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[User]:
    items, next_cursor = users.list_page(db, limit, cursor)
    return Page[User](items=items, next_cursor=next_cursor)


@users_router.post("", status_code=201, response_model=User)
def invite_user(body: UserIn, audit: Audit) -> User:
    """Invites a person with a role; they sign in with Google. 409 when the e-mail is a user already."""
    return User(**users.to_user(users.invite(audit, body.email, body.role, body.name)))


@users_router.patch("/{user_id:objectid}", response_model=User)
def update_user(user_id: ObjectIdStr, body: UserPatch, audit: Audit) -> User:
    """Changes a role or disables a person; credentials already issued follow within 60 s. The last admin stays."""
    return User(**users.to_user(users.update(audit, user_id, body.role, body.disabled)))


@keys_router.get("", response_model=Page[ApiKey])
def list_keys(db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[ApiKey]:
    items, next_cursor = api_keys.list_page(db, limit, cursor)
    return Page[ApiKey](items=items, next_cursor=next_cursor)


@keys_router.post("", status_code=201, response_model=ApiKeyCreated)
def create_key(body: ApiKeyIn, audit: Audit) -> ApiKeyCreated:
    """A key for a system, with scopes; `key` is in this reply only."""
    doc, secret = api_keys.create(audit, body.name, body.scopes)
    return ApiKeyCreated(**api_keys.to_key(doc), key=secret)


@keys_router.delete("/{key_id:objectid}", status_code=204, response_class=Response)
def revoke_key(key_id: ObjectIdStr, audit: Audit) -> Response:
    """Revokes a key: it answers 401 within 60 s."""
    api_keys.revoke(audit, key_id)
    return Response(status_code=204)


@audit_router.get("", response_model=Page[AuditEntry])
def list_audit(db: DbDep, actor: Annotated[str | None, Query(min_length=1, max_length=254)] = None,
               action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
               after: Annotated[IsoTime | None, Query(alias="from")] = None,
               before: Annotated[IsoTime | None, Query(alias="to")] = None,
               limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[AuditEntry]:
    """Newest first; `actor` is a person's e-mail or a user's or key's id, `action` such as campaign.create."""
    items, next_cursor = audit_trail.list_page(db, actor, action, after, before, limit, cursor)
    return Page[AuditEntry](items=items, next_cursor=next_cursor)


routers = [me_router, users_router, keys_router, audit_router]
