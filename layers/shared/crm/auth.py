"""The CRM's own bearer tokens for people: HS256 JWTs, algorithm pinned, expiry and issuer enforced. What the
person may do is read from the users collection on each use (crm.access.credentials), not from the token."""
from __future__ import annotations

import time

from jose import JWTError, jwt

from crm.config import Settings
from crm.errors import Unauthorized

ALGORITHM = "HS256"


def issue_token(settings: Settings, email: str, name: str | None = None) -> tuple[str, int]:
    now = int(time.time())
    claims = {
        "sub": email,
        "name": name,
        "iss": settings.jwt_issuer,
        "iat": now,
        "nbf": now,
        "exp": now + settings.jwt_ttl_seconds,
    }
    token = jwt.encode(claims, settings.secret("jwt_secret"), algorithm=ALGORITHM)
    return token, settings.jwt_ttl_seconds


def verify_token(settings: Settings, token: str) -> str:
    """The e-mail a token was issued to. Rejects forged, expired, `alg: none` and other-algorithm tokens alike,
    without saying which."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise JWTError("unexpected algorithm")
        claims = jwt.decode(
            token,
            settings.secret("jwt_secret"),
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require_exp": True, "require_sub": True, "require_iat": True},
        )
    except JWTError as exc:
        raise Unauthorized("Invalid or expired token") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("Invalid or expired token")
    return subject
