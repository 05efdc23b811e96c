"""Dependencies declared once as Annotated aliases and reused in every route signature."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm.auth import Principal, verify_token
from crm.config import Settings, get_settings
from crm.errors import Unauthorized
from crm.pagination import DEFAULT_LIMIT, MAX_LIMIT

SettingsDep = Annotated[Settings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", bearerFormat="JWT",
                     description="The CRM's own JWT from /api/auth/*")


def current_user(settings: SettingsDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    return verify_token(settings, credentials.credentials)


CurrentUser = Annotated[Principal, Depends(current_user)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=64)]

__all__ = ["SettingsDep", "CurrentUser", "IdempotencyKey", "Limit", "Cursor", "DEFAULT_LIMIT", "current_user"]
