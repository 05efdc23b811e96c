"""Dev tokens, and the 401s of API.md for every way a token can be wrong."""
from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from crm.auth import ALGORITHM

_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(**overrides) -> dict:
    now = int(time.time())
    return {"sub": "x@example.com", "iss": "mini-crm", "iat": now, "nbf": now, "exp": now + 600, **overrides}


def test_dev_token_opens_protected_routes(api):
    status, body, _ = api.post("/api/auth/dev-token", {"email": "Someone@Example.com"}, token="")
    assert status == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    claims = jwt.get_unverified_claims(body["token"])
    assert claims["sub"] == "someone@example.com"
    status, page, _ = api.get("/api/customers", token=body["token"])
    assert status == 200 and page == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("setting", [{"ENV": "staging"},
                                     {"ENV": "production", "JWT_SECRET": "p" * 40, "MONGO_URI": "mongodb://db.example:27017/",
                                      "VENDOR_API_KEY": "v" * 40, "WEBHOOK_SECRET": "w" * 40},
                                     {"GOOGLE_CLIENT_ID": "id", "GOOGLE_CLIENT_SECRET": "secret"}])
def test_dev_token_refused_in_staging_production_or_with_google(api, monkeypatch, setting):
    from crm.config import get_settings

    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    status, body, _ = api.post("/api/auth/dev-token", {"email": "a@example.com"}, token="")
    assert status == 403
    assert body["error"]["code"] == "forbidden"


def test_dev_token_validates_email(api):
    status, body, _ = api.post("/api/auth/dev-token", {"email": "not-an-email"}, token="")
    assert status == 422
    assert body["error"]["details"][0]["loc"] == ["body", "email"]


def _bad_tokens(secret: str) -> dict[str, str]:
    header_none = _b64({"alg": "none", "typ": "JWT"})
    return {
        "missing": "",
        "malformed": "not.a.jwt",
        "forged": jwt.encode(_claims(), "some-other-secret", algorithm=ALGORITHM),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 5), secret, algorithm=ALGORITHM),
        "alg_none": f"{header_none}.{_b64(_claims())}.",
        "other_alg": jwt.encode(_claims(), secret, algorithm="HS512"),
        "wrong_issuer": jwt.encode(_claims(iss="someone-else"), secret, algorithm=ALGORITHM),
        "no_subject": jwt.encode({k: v for k, v in _claims().items() if k != "sub"}, secret, algorithm=ALGORITHM),
        "not_yet_valid": jwt.encode(_claims(nbf=int(time.time()) + 600), secret, algorithm=ALGORITHM),
        "rs256": jwt.encode(_claims(), _RSA_KEY, algorithm="RS256"),
    }


@pytest.mark.parametrize("kind", ["missing", "malformed", "forged", "expired", "alg_none", "other_alg",
                                  "wrong_issuer", "no_subject", "not_yet_valid", "rs256"])
@pytest.mark.parametrize("route", [("GET", "/api/customers"), ("POST", "/api/customers"),
                                   ("GET", "/api/orders"), ("POST", "/api/orders")])
def test_bad_tokens_get_401(api, env, kind, route):
    token = _bad_tokens(env["JWT_SECRET"])[kind]
    method, path = route
    headers = {"authorization": "Bearer"} if kind == "missing" else {}
    status, body, reply_headers = api.request(method, path, {"name": "A", "email": "a@example.com"},
                                              headers=headers, token=token or "")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert reply_headers.get("www-authenticate") == "Bearer"


def test_valid_token_with_matching_secret_is_accepted_for_a_user(api, env):
    token = jwt.encode(_claims(), env["JWT_SECRET"], algorithm=ALGORITHM)
    status, body, _ = api.get("/api/orders", token=token)
    assert status == 401, "a well-signed token of someone who is not a user opens nothing"
    assert api.post("/api/auth/dev-token", {"email": "x@example.com", "role": "analyst"}, token="")[0] == 200
    status, _, _ = api.get("/api/orders", token=token)
    assert status == 200


@pytest.mark.parametrize("role", ["admin", "marketer", "analyst"])
def test_a_dev_token_carries_its_role_and_makes_a_user(api, role):
    status, body, _ = api.post("/api/auth/dev-token", {"email": "dev@example.com", "name": "Dev", "role": role},
                               token="")
    assert status == 200
    assert api.get("/api/me", token=body["token"])[1] == {"type": "user", "email": "dev@example.com", "name": "Dev",
                                                         "role": role}
    users = api.get("/api/users")[1]["items"]
    assert [u["role"] for u in users if u["email"] == "dev@example.com"] == [role]


def test_a_dev_token_with_an_unknown_role_is_422(api):
    status, body, _ = api.post("/api/auth/dev-token", {"email": "dev@example.com", "role": "owner"}, token="")
    assert status == 422 and body["error"]["details"][0]["loc"] == ["body", "role"]
