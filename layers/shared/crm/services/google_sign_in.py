"""Google sign-in: the authorization-code flow with PKCE, a signed single-use state bound to the browser."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable
from urllib.parse import urlencode

from jose import JWTError, jwt
from pymongo.collection import Collection

from crm.access.users import Identity
from crm.auth import ALGORITHM
from crm.config import Settings
from crm.errors import BadRequest, Forbidden
from crm.models.common import utcnow
from crm.oidc import OidcProvider, get_provider

STATE_TTL = timedelta(minutes=10)
STATE_TYPE = "oauth_state"
SCOPES = "openid email profile"


@dataclass(frozen=True)
class SignInStart:
    redirect_url: str
    browser_binding: str  # goes into a cookie; the state carries only its hash


def require_configured(settings: Settings) -> None:
    if not settings.google_oauth_configured:
        raise Forbidden("Google sign-in is not configured here", code="sign_in_not_configured")


def provider_for(settings: Settings) -> OidcProvider:
    require_configured(settings)
    return get_provider(settings.google_oidc_issuer, settings.oidc_timeout_seconds)


def start(settings: Settings, states: Collection) -> SignInStart:
    provider = provider_for(settings)
    metadata = provider.metadata()
    state_id, binding = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(64)
    now = utcnow()
    states.insert_one({"_id": state_id, "nonce": nonce, "verifier": verifier, "expires_at": now + STATE_TTL})
    state = jwt.encode({"typ": STATE_TYPE, "jti": state_id, "bnd": _digest(binding), "iss": settings.jwt_issuer,
                        "iat": int(now.timestamp()), "exp": int((now + STATE_TTL).timestamp())},
                       settings.secret("jwt_secret"), algorithm=ALGORITHM)
    query = urlencode({
        "response_type": "code", "client_id": settings.google_client_id, "redirect_uri": settings.google_callback_url,
        "scope": SCOPES, "state": state, "nonce": nonce, "code_challenge": _digest(verifier),
        "code_challenge_method": "S256", "prompt": "select_account",
    })
    separator = "&" if "?" in metadata.authorization_endpoint else "?"
    return SignInStart(f"{metadata.authorization_endpoint}{separator}{query}", binding)


def finish(settings: Settings, states: Callable[[], Collection], code: str | None, state: str | None,
           browser_binding: str | None) -> Identity:
    """Who the provider says signed in; whether they may is crm.access.users.sign_in's decision. states: called
    only for a state we signed, bound to this browser (a forged callback reaches no database)."""
    provider = provider_for(settings)
    if not code or not state:
        raise BadRequest("The callback needs both code and state", code="invalid_request")
    state_id = _verify_state(settings, state, browser_binding)
    # Taken and removed in one step: a replayed or concurrent second use finds nothing.
    record = states().find_one_and_delete({"_id": state_id})
    if record is None or record["expires_at"] < utcnow():
        raise BadRequest("This sign-in was already used or has expired; start again", code="invalid_state")
    tokens = provider.exchange_code(code, settings.google_callback_url, settings.google_client_id,
                                    settings.secret("google_client_secret"), record["verifier"])
    claims = provider.verify_id_token(tokens["id_token"], settings.google_client_id, record["nonce"],
                                      tokens.get("access_token"))
    return _user_from(claims)


def _verify_state(settings: Settings, state: str, browser_binding: str | None) -> str:
    try:
        claims = jwt.decode(state, settings.secret("jwt_secret"), algorithms=[ALGORITHM],
                            issuer=settings.jwt_issuer, options={"require_exp": True, "require_jti": True})
    except JWTError as exc:
        raise BadRequest("The sign-in state is invalid or has expired", code="invalid_state") from exc
    if claims.get("typ") != STATE_TYPE:
        raise BadRequest("The sign-in state is invalid or has expired", code="invalid_state")
    if not browser_binding or not hmac.compare_digest(_digest(browser_binding), str(claims.get("bnd", ""))):
        raise BadRequest("This sign-in was started in another browser", code="invalid_state")
    return str(claims["jti"])


def _user_from(claims: dict) -> Identity:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden("The account has no e-mail address", code="email_required")
    if claims.get("email_verified") not in (True, "true"):
        raise Forbidden("The account's e-mail address is not verified", code="email_unverified")
    hosted_domain = claims.get("hd")
    return Identity(email=email.lower(), name=claims.get("name"), picture=claims.get("picture"),
                    hosted_domain=hosted_domain if isinstance(hosted_domain, str) else None)


def _digest(value: str) -> str:
    """base64url(SHA-256(value)) unpadded: PKCE's S256, and the browser binding's hash."""
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).decode().rstrip("=")
