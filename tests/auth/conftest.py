"""Google sign-in against a real OpenID Connect provider process (tests/oidc_provider.py): the provider, and a
person's browser going through the flow."""
from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crm.config import get_settings

CLIENT_ID = "crm-test-client"
CALLBACK = "http://localhost:4000/api/auth/google/callback"


class Provider:
    def __init__(self, url: str):
        self.url = url

    def fault(self, mode: str) -> None:
        httpx.post(f"{self.url}/_test/fault", json={"mode": mode}).raise_for_status()

    def rotate_key(self) -> None:
        httpx.post(f"{self.url}/_test/rotate-key").raise_for_status()

    def requests(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_test/requests").json()


@pytest.fixture
def provider(oidc_server, api, monkeypatch):
    """Google configured against the test provider; a fresh provider cache, as in a new container."""
    from crm import oidc

    for key, value in {"GOOGLE_CLIENT_ID": CLIENT_ID, "GOOGLE_CLIENT_SECRET": "test-client-secret",
                       "GOOGLE_CALLBACK_URL": CALLBACK, "GOOGLE_OIDC_ISSUER": oidc_server,
                       "ADMIN_EMAILS": "ada@example.com"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    monkeypatch.setattr(oidc, "_providers", {})
    handle = Provider(oidc_server)
    handle.fault("")
    yield handle
    handle.fault("")


class Browser:
    """What a person's browser does: follow our redirect, consent at the provider, come back with the code."""

    def __init__(self, api):
        self.api = api
        self.cookie: str | None = None

    def start(self) -> str:
        status, _, headers = self.api.get("/api/auth/google", token="")
        assert status == 302, status
        cookie = SimpleCookie()
        for header in self.api.last_cookies:
            cookie.load(header)
        self.cookie = cookie["crm_oauth"].value
        return headers["location"]

    def consent(self, authorize_url: str, user: str = "ada@example.com") -> dict[str, str]:
        reply = httpx.post(authorize_url, data={"sub": user}, follow_redirects=False)
        assert reply.status_code == 302, reply.text[:300]
        location = reply.headers["location"]
        assert location.startswith(CALLBACK)
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def callback(self, params: dict[str, str], cookie: str | None = ...) -> tuple[int, dict]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        cookie = self.cookie if cookie is ... else cookie
        headers = {"cookie": f"crm_oauth={cookie}"} if cookie else {}
        status, body, _ = self.api.get(f"/api/auth/google/callback?{query}", token="", headers=headers)
        return status, body

    def sign_in(self, user: str = "ada@example.com") -> tuple[int, dict]:
        return self.callback(self.consent(self.start(), user))


@pytest.fixture
def browser(api, provider) -> Browser:
    return Browser(api)


