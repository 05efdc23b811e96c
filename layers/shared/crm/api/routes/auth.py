"""Sign-in routes that issue the CRM's own JWT: Google (OpenID Connect) and, in development, dev tokens."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Cookie, Depends, Query
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from crm.access import users
from crm.access.principals import Role
from crm.api.access import RequestId
from crm.api.deps import SettingsDep, takes_other_query_parameters
from crm.api.storage import DbDep, database
from crm.auth import issue_token
from crm.config import Settings
from crm.db import OAUTH_STATES
from crm.errors import BadRequest, Forbidden
from crm.models.common import Email, InputModel
from crm.services import google_sign_in

router = APIRouter(prefix="/api/auth", tags=["auth"])

STATE_COOKIE = "crm_oauth"
STATE_COOKIE_PATH = "/api/auth/google"


class DevTokenIn(InputModel):
    email: Email
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role = Role.ADMIN


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(BaseModel):
    email: str
    name: str | None
    picture: str | None
    role: Role


class SignInOut(TokenOut):
    user: UserOut


def development_tokens_allowed(settings: SettingsDep) -> None:
    """Checked before anything else (a staging database is never written by a refused request)."""
    if not settings.is_development:
        raise Forbidden("Development tokens exist only in development; sign in with Google")
    if settings.google_oauth_configured:
        raise Forbidden("Development tokens are disabled because Google sign-in is configured; use /api/auth/google")


@router.post("/dev-token", response_model=TokenOut, dependencies=[Depends(development_tokens_allowed)])
def dev_token(body: DevTokenIn, settings: SettingsDep, db: DbDep, request_id: RequestId) -> TokenOut:
    """A token for local development, for a user with `role` (default admin) from then on; refused unless ENV is
    development, and wherever Google sign-in is configured."""
    users.sign_in(db, settings, users.Identity(body.email, body.name), request_id, role=body.role)
    token, expires_in = issue_token(settings, body.email, body.name)
    return TokenOut(token=token, expires_in=expires_in)


def google_configured(settings: SettingsDep) -> None:
    """Checked before the database is reached: a stack without Google sign-in costs a stranger's call nothing."""
    google_sign_in.require_configured(settings)


@router.get("/google", status_code=302, response_class=RedirectResponse,
            dependencies=[Depends(google_configured)])
def google_sign_in_start(settings: SettingsDep, db: DbDep) -> RedirectResponse:
    """Redirects to Google with a signed, single-use state and a PKCE challenge."""
    started = google_sign_in.start(settings, db[OAUTH_STATES])
    response = RedirectResponse(started.redirect_url, status_code=302)
    response.set_cookie(STATE_COOKIE, started.browser_binding, max_age=int(google_sign_in.STATE_TTL.total_seconds()),
                        path=STATE_COOKIE_PATH, httponly=True, secure=_is_https(settings), samesite="lax")
    return response


@router.get("/google/callback", response_model=SignInOut,
            responses={302: {"description": "To FRONTEND_URL, with the token in the URL fragment"}})
@takes_other_query_parameters
def google_sign_in_callback(settings: SettingsDep, request_id: RequestId,
                            code: Annotated[str | None, Query(max_length=4096)] = None,
                            state: Annotated[str | None, Query(max_length=4096)] = None,
                            error: Annotated[str | None, Query(max_length=200)] = None,
                            binding: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None):
    """Checks the state, exchanges the code, verifies the ID token, admits the person (invited, or by the
    allow-lists) and issues the CRM's token; anyone else is 403 sign_in_denied."""
    if error:
        raise BadRequest("Sign-in was cancelled or refused at the provider", code="sign_in_denied")
    identity = google_sign_in.finish(settings, lambda: database()[OAUTH_STATES], code, state, binding)
    user = users.sign_in(database(), settings, identity, request_id)
    token, expires_in = issue_token(settings, user["email"], user.get("name"))
    reply = SignInOut(token=token, expires_in=expires_in,
                      user=UserOut(email=user["email"], name=user.get("name"), picture=user.get("picture"),
                                   role=user["role"]))
    if settings.frontend_url:
        fragment = urlencode({"token": token, "token_type": "bearer", "expires_in": expires_in})
        response = RedirectResponse(f"{settings.frontend_url}#{fragment}", status_code=302)
    else:
        response = JSONResponse(reply.model_dump())
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, httponly=True, secure=_is_https(settings),
                           samesite="lax")
    return response


def _is_https(settings: Settings) -> bool:
    return urlsplit(settings.google_callback_url).scheme == "https"
