"""Sign-in routes that issue the CRM's own JWT."""
from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from crm.api.deps import SettingsDep
from crm.auth import issue_token
from crm.errors import Forbidden
from crm.models.common import Email, InputModel

router = APIRouter(prefix="/api/auth", tags=["auth"])


class DevTokenIn(InputModel):
    email: Email
    name: str | None = Field(default=None, min_length=1, max_length=200)


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/dev-token", response_model=TokenOut)
def dev_token(body: DevTokenIn, settings: SettingsDep) -> TokenOut:
    """A token for local development; refused in production and wherever Google sign-in is configured."""
    if settings.is_production or settings.google_oauth_configured:
        raise Forbidden("Development tokens are disabled here; sign in with Google")
    token, expires_in = issue_token(settings, body.email, body.name)
    return TokenOut(token=token, expires_in=expires_in)
