"""GET /health checks MongoDB and SQS for real; /openapi.json covers every route."""
from __future__ import annotations

import re
import time

from crm.config import get_settings
from offline import services
from tests.helpers import assert_error


def test_health_ok(api):
    status, body, _ = api.get("/health", token="")
    assert (status, body) == (200, {"status": "ok", "checks": {"mongo": "ok", "queues": "ok"}})


def test_health_is_503_quickly_when_mongo_is_down(api, monkeypatch):
    mongo = services.MongoServer(":memory:")
    monkeypatch.setenv("MONGO_URI", mongo.uri)
    get_settings.cache_clear()
    assert api.get("/health", token="")[0] == 200
    mongo.stop()
    started = time.monotonic()
    status, body, _ = api.get("/health", token="")
    assert time.monotonic() - started < 10
    assert status == 503
    assert_error(body, "dependency_unavailable", ["checks", "mongo"])
    assert body["checks"] == {"mongo": "unavailable", "queues": "ok"}


def test_health_is_503_when_sqs_is_down(api, monkeypatch):
    monkeypatch.setenv("SQS_ENDPOINT_URL", f"http://127.0.0.1:{services.free_port()}")
    monkeypatch.setenv("SQS_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    status, body, _ = api.get("/health", token="")
    assert status == 503
    assert body["checks"] == {"mongo": "ok", "queues": "unavailable"}


def test_data_routes_are_503_when_mongo_is_down(api, monkeypatch):
    monkeypatch.setenv("MONGO_URI", f"mongodb://127.0.0.1:{services.free_port()}/")
    get_settings.cache_clear()
    status, body, _ = api.get("/api/customers")
    assert status == 503
    assert_error(body, "dependency_unavailable")
    assert "mongodb://" not in body["error"]["message"]


def test_openapi_covers_every_route_of_the_template(api):
    from offline import template
    from tests.conftest import TEMPLATE

    status, document, _ = api.get("/openapi.json", token="")
    assert status == 200 and document["openapi"].startswith("3.")
    paths = set(document["paths"])
    assert {"/health", "/api/auth/dev-token", "/api/customers", "/api/orders"} <= paths
    routed = {r.path for f in template.load(TEMPLATE).functions.values() for r in f.routes}
    from crm.api.routes.clicks import PAGES as LINKS
    from crm.api.routes.unsubscribe import PAGES

    for route in routed - {"/docs", "/docs/{proxy+}", "/openapi.json", *PAGES, *LINKS}:
        base = route.removesuffix("/{proxy+}")
        assert any(path == base or path.startswith(base + "/") for path in paths), f"{route} is not documented"
    for path in paths:
        assert any(path == r or (r.endswith("{proxy+}") and path.startswith(r[: -len("{proxy+}")]))
                   for r in routed), path
    body = document["paths"]["/api/customers"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in body["anyOf"]} == {"CustomerIn", "CustomerBatchIn"}
    assert "CustomerIn" in document["components"]["schemas"]


def test_openapi_documents_how_each_caller_authenticates(api):
    _, document, _ = api.get("/openapi.json", token="")
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                     "description": "A person's JWT from /api/auth/*"}
    assert schemes["apiKeyAuth"]["type"] == "http" and schemes["apiKeyAuth"]["scheme"] == "bearer"
    assert schemes["vendorKey"]["name"] == "X-Vendor-Key"
    assert schemes["vendorSignature"]["name"] == "X-Vendor-Signature"
    assert "HMAC-SHA256" in schemes["vendorSignature"]["description"]
    paths = document["paths"]
    assert paths["/api/customers"]["get"]["security"] == [{"bearerAuth": ["admin", "marketer", "analyst"]},
                                                          {"apiKeyAuth": ["customers:read"]}]
    assert paths["/api/mock-send"]["post"]["security"] == [{"vendorKey": []}]
    assert paths["/api/delivery-receipt"]["post"]["security"] == [{"vendorSignature": []}]
    assert "security" not in paths["/health"]["get"] and "security" not in paths["/api/auth/dev-token"]["post"]


def test_docs_page_and_its_assets_are_served_by_the_function(api):
    status, page, headers = api.get("/docs", token="")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "swagger-ui" in page and "/openapi.json" in page and "cdn." not in page
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        status, body, headers = api.get(asset, token="")
        assert status == 200 and len(body) > 1000, asset
