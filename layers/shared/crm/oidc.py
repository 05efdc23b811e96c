"""OpenID Connect relying party: discovery, the token endpoint and ID-token verification.

Discovery documents and JWKS are cached per container; the JWKS is fetched again when a token
names a key it does not hold (the provider rotated its keys), at most every few seconds.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from jose import JWTError, jwt

from crm.errors import BadRequest, DependencyUnavailable, Unauthorized

DISCOVERY_TTL_SECONDS = 3600
JWKS_TTL_SECONDS = 3600
# Bounds the fetches that tokens naming made-up keys can cause, while picking up a rotation soon.
JWKS_MIN_REFRESH_SECONDS = 5
# Asymmetric algorithms only: an HS* ID token would let anyone holding the public key forge one.
ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: frozenset[str]


class OidcProvider:
    """One provider, found by discovery at its issuer URL."""

    def __init__(self, issuer: str, timeout_seconds: float = 10.0):
        self.issuer = issuer.rstrip("/")
        self.http = httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, dict[str, dict[str, Any]]] | None = None

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < DISCOVERY_TTL_SECONDS:
                return self._metadata[1]
        doc = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if doc.get("issuer", "").rstrip("/") != self.issuer:
            raise DependencyUnavailable("The sign-in provider's discovery document names another issuer")
        algorithms = frozenset(doc.get("id_token_signing_alg_values_supported") or ["RS256"]) & ASYMMETRIC_ALGORITHMS
        metadata = ProviderMetadata(doc["issuer"], doc["authorization_endpoint"], doc["token_endpoint"],
                                    doc["jwks_uri"], algorithms)
        with self._lock:
            self._metadata = (time.monotonic(), metadata)
        return metadata

    def signing_key(self, kid: str | None) -> dict[str, Any]:
        keys = self._cached_keys()
        if keys is None or (kid not in keys and self._may_refresh()):
            keys = self._fetch_keys()
        if kid in keys:
            return keys[kid]
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        raise Unauthorized("The ID token was signed with a key the provider does not publish",
                           code="invalid_id_token")

    def exchange_code(self, code: str, redirect_uri: str, client_id: str, client_secret: str,
                      code_verifier: str) -> dict[str, Any]:
        try:
            reply = self.http.post(self.metadata().token_endpoint, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": client_id, "client_secret": client_secret, "code_verifier": code_verifier,
            }, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("The sign-in provider is unreachable") from exc
        if reply.status_code >= 500:
            raise DependencyUnavailable("The sign-in provider failed to answer")
        if reply.status_code != 200:
            raise BadRequest("The sign-in provider refused the authorization code", code="invalid_code")
        tokens = reply.json()
        if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise BadRequest("The sign-in provider returned no ID token", code="invalid_code")
        return tokens

    def verify_id_token(self, id_token: str, client_id: str, nonce: str, access_token: str | None) -> dict[str, Any]:
        metadata = self.metadata()
        try:
            header = jwt.get_unverified_header(id_token)
            algorithm = header.get("alg")
            if algorithm not in metadata.algorithms:
                raise JWTError(f"algorithm {algorithm!r} is not accepted")
            claims = jwt.decode(
                id_token, self.signing_key(header.get("kid")), algorithms=[algorithm], audience=client_id,
                issuer=metadata.issuer, access_token=access_token,
                options={"require_exp": True, "require_iat": True, "require_sub": True, "require_aud": True,
                         "require_iss": True, "leeway": CLOCK_SKEW_SECONDS},
            )
        except JWTError as exc:
            raise Unauthorized(f"The ID token is not valid: {exc}", code="invalid_id_token") from exc
        if claims.get("nonce") != nonce:
            raise Unauthorized("The ID token does not answer this sign-in", code="invalid_id_token")
        return claims

    def _cached_keys(self) -> dict[str, dict[str, Any]] | None:
        with self._lock:
            if self._jwks and time.monotonic() - self._jwks[0] < JWKS_TTL_SECONDS:
                return self._jwks[1]
        return None

    def _may_refresh(self) -> bool:
        with self._lock:
            return self._jwks is None or time.monotonic() - self._jwks[0] >= JWKS_MIN_REFRESH_SECONDS

    def _fetch_keys(self) -> dict[str, dict[str, Any]]:
        doc = self._get_json(self.metadata().jwks_uri)
        keys = {key.get("kid"): key for key in doc.get("keys", []) if key.get("use", "sig") == "sig"}
        with self._lock:
            self._jwks = (time.monotonic(), keys)
        return keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            reply = self.http.get(url)
            reply.raise_for_status()
            doc = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DependencyUnavailable("The sign-in provider is unreachable") from exc
        if not isinstance(doc, dict):
            raise DependencyUnavailable("The sign-in provider answered with something unexpected")
        return doc


_providers: dict[str, OidcProvider] = {}
_providers_lock = threading.Lock()


def get_provider(issuer: str, timeout_seconds: float = 10.0) -> OidcProvider:
    with _providers_lock:
        provider = _providers.get(issuer)
        if provider is None:
            provider = _providers[issuer] = OidcProvider(issuer, timeout_seconds)
        return provider
