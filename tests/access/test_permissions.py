"""The permission matrix of API.md's Conventions: every operation of the OpenAPI document, called by each kind of
caller, answers what API.md says. Built from the document, so a new route cannot be left out; the expectations
are API.md's words, not the code's table."""
from __future__ import annotations

import re

import pytest

from tests.helpers import new_key, token_for

SOME_ID = "0123456789abcdef01234567"
SCOPES = ["customers:write", "customers:read", "orders:write", "orders:read"]
CALLERS = ["admin", "marketer", "analyst", *(f"key {s}" for s in SCOPES), "revoked key", "disabled user"]
# Reached without a person's or a key's credential: meta, sign-in, the vendor's routes with their own secrets, and the
# unsubscribe link (its signed token).
PUBLIC = re.compile(r"^(/health|/docs|/openapi\.json|/api/auth/.*|/api/mock-send.*|/api/delivery-receipt|/u/.*)$")
ADMIN_ONLY = re.compile(r"^/api/(users|api-keys|audit)(/.*)?$")
# "analyst: every GET, previews, and POST /api/ai/summary; no other write."
ANALYST_POSTS = {"/api/segments/preview", "/api/ai/summary"}


def expected(caller: str, method: str, path: str) -> int | str:
    """401, 403, or "allowed" (any answer but those two: 200, 404 for a made-up id, 422 for an empty body...)."""
    if caller in ("revoked key", "disabled user"):
        return 401
    erasure = method == "DELETE" and path.startswith("/api/customers/")
    if caller == "admin":
        return "allowed"
    if caller == "marketer":
        return 403 if ADMIN_ONLY.match(path) or erasure else "allowed"
    if caller == "analyst":
        reads = method == "GET" or (method == "POST" and path in ANALYST_POSTS)
        return "allowed" if reads and not ADMIN_ONLY.match(path) else 403
    scope = caller.removeprefix("key ")
    if path == "/api/me" and method == "GET":
        return "allowed"
    resource = re.match(r"^/api/(customers|orders)(/|$)", path)
    if resource is None or erasure:
        return 403
    needed = f"{resource.group(1)}:{'read' if method == 'GET' else 'write'}"
    return "allowed" if scope == needed else 403


@pytest.fixture
def credentials(api) -> dict[str, str]:
    tokens = {role: token_for(api, f"{role}@example.com", role) for role in ("marketer", "analyst")}
    tokens["admin"] = api.token
    for scope in SCOPES:
        tokens[f"key {scope}"] = new_key(api, scope, name=scope)["key"]
    revoked = new_key(api, *SCOPES, name="revoked")
    assert api.request("DELETE", f"/api/api-keys/{revoked['id']}")[0] == 204
    tokens["revoked key"] = revoked["key"]
    tokens["disabled user"] = token_for(api, "gone@example.com", "admin")
    gone = next(u for u in api.get("/api/users")[1]["items"] if u["email"] == "gone@example.com")
    assert api.request("PATCH", f"/api/users/{gone['id']}", {"disabled": True})[0] == 200
    return tokens


def operations(api) -> list[tuple[str, str]]:
    _, document, _ = api.get("/openapi.json", token="")
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item
            if not PUBLIC.match(path)]


def test_every_operation_answers_each_caller_as_api_md_says(api, db, credentials):
    ops = operations(api)
    assert len(ops) >= 23 and ("GET", "/api/me") in ops and ("DELETE", "/api/api-keys/{key_id}") in ops
    wrong = []
    for method, path in ops:
        target = re.sub(r"\{[^}]+\}", SOME_ID, path)
        body = {} if method in ("POST", "PATCH", "PUT") else None
        for caller in CALLERS:
            status, reply, _ = api.request(method, target, body, token=credentials[caller])
            want = expected(caller, method, path)
            if want == "allowed":
                ok = status not in (401, 403)
            else:
                ok = status == want and reply["error"]["code"] == ("forbidden" if want == 403 else "unauthorized")
            if not ok:
                wrong.append(f"{caller:>22}  {method} {path}: {status}, API.md: {want}")
    assert not wrong, "\n".join(wrong)


def test_each_operation_of_the_document_names_who_may_call_it(api):
    _, document, _ = api.get("/openapi.json", token="")
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer" and schemes["apiKeyAuth"]["scheme"] == "bearer"
    for method, path in operations(api):
        operation = document["paths"][path][method.lower()]
        security = {name: roles for requirement in operation["security"] for name, roles in requirement.items()}
        allowed_roles = {c for c in ("admin", "marketer", "analyst") if expected(c, method, path) == "allowed"}
        allowed_scopes = {s for s in SCOPES if expected(f"key {s}", method, path) == "allowed"}
        assert set(security["bearerAuth"]) == allowed_roles, (method, path)
        assert set(security.get("apiKeyAuth", [])) == allowed_scopes, (method, path)
        assert operation["description"].startswith("**Who may call:**"), (method, path)


def test_the_readmes_permission_table_is_the_one_the_routers_declare():
    from crm.api.permissions import table
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    written = readme.split("<!-- permissions:start -->\n", 1)[1].split("\n<!-- permissions:end -->", 1)[0]
    assert written == table(), "README.md's table is stale: paste `python -m crm.api.permissions` into it"
