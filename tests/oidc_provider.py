"""A real OpenID Connect provider for the tests: oidc-provider-mock, run as its own process.

`python -m tests.oidc_provider --port N`. Besides the provider's own endpoints it serves two
for tests: `POST /_test/fault {"mode": ...}` makes the token endpoint hand out a bad ID token
of that kind (re-signed the way an attacker or a broken provider would), and
`POST /_test/rotate-key` replaces the signing key, as providers rotate keys, and
`GET /_test/requests` counts the requests each path has had.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

from authlib.jose import RSAKey
from jose import jwt
from werkzeug.serving import run_simple

USERS = {
    "ada@example.com": {"email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace",
                        "picture": "https://example.com/ada.png"},
    "eve@blocked.example": {"email": "eve@blocked.example", "email_verified": True, "name": "Eve"},
    "unverified@example.com": {"email": "unverified@example.com", "email_verified": False, "name": "Unverified"},
    # Google Workspace accounts carry their organisation's domain in `hd`; a personal account does not.
    "grace@corp.example": {"email": "grace@corp.example", "email_verified": True, "name": "Grace Hopper",
                           "hd": "corp.example"},
    "mallory@corp.example": {"email": "mallory@corp.example", "email_verified": True, "name": "Mallory"},
    # The same address as Grace's Workspace account, on a personal Google account (no `hd`).
    "grace-personal": {"email": "grace@corp.example", "email_verified": True, "name": "Grace Hopper"},
    "trudy@corp.example": {"email": "trudy@corp.example", "email_verified": True, "name": "Trudy",
                           "hd": "other.example"},
}


def _bad_id_token(mode: str, id_token: str, signing_key: dict[str, Any]) -> str:
    claims = jwt.get_unverified_claims(id_token)
    kid = jwt.get_unverified_header(id_token).get("kid")
    other_key = RSAKey.generate_key(is_private=True).as_dict(is_private=True)
    now = int(time.time())
    if mode == "wrong_audience":
        return jwt.encode({**claims, "aud": "some-other-client"}, signing_key, algorithm="RS256", headers={"kid": kid})
    if mode == "wrong_issuer":
        return jwt.encode({**claims, "iss": "https://evil.example"}, signing_key, algorithm="RS256",
                          headers={"kid": kid})
    if mode == "expired":
        return jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, signing_key, algorithm="RS256",
                          headers={"kid": kid})
    if mode == "wrong_nonce":
        return jwt.encode({**claims, "nonce": "not-yours"}, signing_key, algorithm="RS256", headers={"kid": kid})
    if mode == "bad_signature":
        return jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": kid})
    if mode == "unknown_kid":
        return jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "not-published"})
    if mode == "hs256_with_public_key":
        # The classic confusion: an HMAC "signed" with the provider's public key, which anyone has.
        public_pem = RSAKey.import_key(signing_key).as_pem(is_private=False)
        signing_input = f"{_b64_json({'alg': 'HS256', 'kid': kid})}.{_b64_json(claims)}"
        signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"
    if mode == "alg_none":
        return f"{_b64_json({'alg': 'none', 'kid': kid})}.{_b64_json(claims)}."
    raise ValueError(mode)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64_json(value: dict) -> str:
    return _b64(json.dumps(value).encode())


class FaultyProvider:
    """WSGI middleware around the provider: the test endpoints, and bad ID tokens on demand."""

    def __init__(self, app, storage_holder: dict):
        self.app = app
        self.storage = storage_holder
        self.mode = ""
        self.requests: dict[str, int] = {}

    def __call__(self, environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/_test/requests":
            body = json.dumps(self.requests).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        self.requests[path] = self.requests.get(path, 0) + 1
        if path == "/_test/fault" and method == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            self.mode = json.loads(body or b"{}").get("mode", "")
            start_response("204 No Content", [])
            return [b""]
        if path == "/_test/rotate-key" and method == "POST":
            self.storage["storage"].jwk = RSAKey.generate_key(is_private=True)
            start_response("204 No Content", [])
            return [b""]
        if path != "/oauth2/token" or not self.mode:
            return self.app(environ, start_response)

        captured: dict[str, Any] = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        if captured["status"].startswith("200"):
            tokens = json.loads(body)
            signing_key = self.storage["storage"].jwk.as_dict(is_private=True)
            tokens["id_token"] = _bad_id_token(self.mode, tokens["id_token"], signing_key)
            body = json.dumps(tokens).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(body)))])
        return [body]


def build(users: dict[str, dict] | None = None):
    import flask
    import oidc_provider_mock
    from oidc_provider_mock._storage import User

    app = oidc_provider_mock.app(require_nonce=True, user_claims=[
        User(sub=sub, claims=claims) for sub, claims in (users or USERS).items()])
    holder: dict = {}

    @app.before_request
    def keep_storage():
        holder["storage"] = flask.g.oidc_provider_mock_storage

    app.wsgi_app = FaultyProvider(app.wsgi_app, holder)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    run_simple("127.0.0.1", args.port, build(), threaded=True)


if __name__ == "__main__":
    main()
