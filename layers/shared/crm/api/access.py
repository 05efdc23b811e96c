"""The API's side of access: the credential on a request, the policy guarding each router, the request's auditor."""
from __future__ import annotations

import uuid
from typing import Annotated, Any, Iterator

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm.access.audit import Auditor
from crm.access.credentials import authenticate
from crm.access.policy import Policy, describe, is_read
from crm.access.principals import Principal
from crm.api.deps import SettingsDep
from crm.api.storage import DbDep, database
from crm.errors import Forbidden, Unauthorized

# Both kinds of credential come as `Authorization: Bearer`: a shop that has a key changes nothing else.
BEARER_JWT = "bearerAuth"
BEARER_API_KEY = "apiKeyAuth"
_bearer = HTTPBearer(auto_error=False, scheme_name=BEARER_JWT, bearerFormat="JWT",
                     description="A person's JWT from /api/auth/*")


def authenticated(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """Checked before the database is reached (not a DbDep here): a request without a valid credential opens no
    connection. Routers declare this (through their Guard) first, so it runs before their routes' own DbDep."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer credential")
    return authenticate(database, settings, credentials.credentials)


Caller = Annotated[Principal, Depends(authenticated)]


class Guard:
    """The one dependency each router declares: who may call its reads and its writes."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def __call__(self, request: Request, caller: Caller) -> Principal:
        route = request.scope.get("route")
        if not self.policy.allows(caller, is_read(request.method, getattr(route, "endpoint", None))):
            raise Forbidden("Your role or your key's scopes do not allow this")
        return caller


def guarded_by(policy: Policy) -> Any:
    return Depends(Guard(policy))


def request_id(request: Request) -> str:
    """API Gateway's id of this request (the one in its access log), or one of our own when called otherwise."""
    event = request.scope.get("aws.event") or {}
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)


RequestId = Annotated[str, Depends(request_id)]


def auditor(db: DbDep, caller: Caller, request_id: RequestId) -> Auditor:
    return Auditor(db, caller, request_id)


Audit = Annotated[Auditor, Depends(auditor)]


def policies(routes: list[Any]) -> Iterator[tuple[APIRoute, str, Policy]]:
    """(route, method, policy) for every guarded route and method."""
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        guard = next((d.dependency for d in route.dependencies if isinstance(d.dependency, Guard)), None)
        if guard is not None:
            for method in sorted(route.methods):
                yield route, method, guard.policy


def who_may(route: APIRoute, method: str, policy: Policy) -> str:
    reads = is_read(method, route.endpoint)
    return describe(policy.roles_for(reads), policy.scopes_for(reads))
