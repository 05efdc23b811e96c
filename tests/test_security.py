"""Who may call what, how large a body may be, operator objects where values belong, and secrets kept out of
every log line."""
from __future__ import annotations

import re

import pytest

from crm.api.app import MAX_BODY_BYTES
from tests.helpers import assert_error

SOME_ID = "0123456789abcdef01234567"


def _public(path: str) -> bool:
    """What API.md lets anyone call: the meta routes and sign-in. The vendor's two routes have their own key."""
    return path in ("/health", "/docs", "/openapi.json") or path.startswith("/api/auth/")


def test_no_route_answers_without_credentials_except_those_api_md_names(api):
    _, document, _ = api.get("/openapi.json", token="")
    checked = []
    for path, operations in document["paths"].items():
        for method in operations:
            status, body, _ = api.request(method.upper(), re.sub(r"\{[^}]+\}", SOME_ID, path),
                                          {} if method == "post" else None, token="")
            checked.append(path)
            if _public(path):
                assert status != 401, path
            else:
                assert status == 401, f"{method.upper()} {path} answered {status} without credentials"
                assert body["error"]["code"] in ("unauthorized", "invalid_vendor_key", "invalid_signature")
    assert len(checked) >= 20 and any(_public(p) for p in checked)


@pytest.mark.parametrize("path", ["/api/customers", "/api/orders", "/api/segments", "/api/segments/preview",
                                  "/api/campaigns", "/api/ai/rules", "/api/mock-send", "/api/delivery-receipt",
                                  "/api/auth/dev-token"])
def test_oversized_bodies_are_413_and_write_nothing(api, db, consumers, path):
    body = b'{"customers": [' + b" " * MAX_BODY_BYTES + b"]}"
    status, reply, _ = api.post(path, raw=body)
    assert status == 413
    assert_error(reply, "payload_too_large")
    assert consumers.messages("CustomerIngestQueue") == [] and db.segments.count_documents({}) == 0


OPERATOR = {"$gt": ""}


@pytest.mark.parametrize("path, body, field", [
    ("/api/customers", {"name": OPERATOR, "email": "ada@example.com"}, "name"),
    ("/api/customers", {"name": "Ada", "email": OPERATOR}, "email"),
    ("/api/customers", {"customers": [{"name": "Ada", "email": "ada@example.com", "spend": OPERATOR}]}, "spend"),
    ("/api/orders", {"order_id": OPERATOR, "customer_email": "ada@example.com", "amount": 1, "items": []},
     "order_id"),
    ("/api/orders", {"order_id": "o-1", "customer_id": OPERATOR, "amount": 1, "items": []}, "customer_id"),
    ("/api/segments", {"name": "x", "rules": {"field": "spend", "op": ">", "value": OPERATOR}}, "value"),
    ("/api/segments", {"name": "x", "rules": {"$where": "sleep(1000)"}}, "$where"),
    ("/api/segments/preview", {"rules": {"field": OPERATOR, "op": ">", "value": 1}}, "field"),
    ("/api/campaigns", {"name": "x", "segment_id": OPERATOR, "message": "m"}, "segment_id"),
    ("/api/ai/summary", {"campaign_id": OPERATOR}, "campaign_id"),
    ("/api/ai/rules", {"prompt": OPERATOR}, "prompt"),
])
def test_an_operator_object_where_a_value_belongs_is_422_and_writes_nothing(api, db, consumers, path, body, field):
    status, reply, _ = api.post(path, body)
    assert status == 422, reply
    assert any(field in map(str, detail["loc"]) for detail in reply["error"]["details"]), reply
    assert db.segments.count_documents({}) == db.campaigns.count_documents({}) == 0
    assert consumers.messages("CustomerIngestQueue") == [] and consumers.messages("OrderIngestQueue") == []


@pytest.mark.parametrize("query, field", [("email[$gt]=", "email[$gt]"), ("email=%7B%22%24gt%22%3A%22%22%7D", "email"),
                                          ("min_spend[$ne]=1", "min_spend[$ne]")])
def test_operators_in_query_strings_are_422(api, db, query, field):
    status, reply, _ = api.get(f"/api/customers?{query}")
    assert status == 422
    assert any(field in map(str, detail["loc"]) for detail in reply["error"]["details"]), reply


def test_secrets_never_reach_the_logs(api, env, db, consumers, caplog, monkeypatch):
    from crm.config import get_settings
    from crm.observability import logger

    token = api.token
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com"})
    consumers.drain("CustomerIngestQueue")
    api.get("/api/customers", token=token[:-4] + "AAAA")  # a forged token
    api.post("/api/mock-send", {"log_id": SOME_ID, "to": {"name": "A", "email": "a@example.com"}, "message": "m"},
             token="", headers={"X-Vendor-Key": env["VENDOR_API_KEY"][:-1]})
    api.post("/api/delivery-receipt", {"log_id": SOME_ID, "vendor_message_id": "v", "status": "SENT",
                                       "timestamp": "2026-11-25T10:00:00Z"},
             token="", headers={"X-Vendor-Timestamp": "1", "X-Vendor-Signature": "0" * 64})
    monkeypatch.setenv("MONGO_URI", "mongodb://crm-user:hunter2-mongo-password@127.0.0.1:1/")
    get_settings.cache_clear()
    status, _, _ = api.get("/api/customers")
    assert status == 503
    # Each record as the function's log stream has it: the JSON line, extra fields and traceback included.
    logged = "\n".join(logger.registered_formatter.format(record) for record in caplog.records)
    assert '"path":"/api/customers"' in logged.replace(" ", ""), "the requests were logged"
    for secret in (env["JWT_SECRET"], env["VENDOR_API_KEY"], env["WEBHOOK_SECRET"], token,
                   "hunter2-mongo-password"):
        assert secret not in logged


def test_an_identity_providers_own_parameters_on_the_callback_are_not_refused(api):
    status, reply, _ = api.get("/api/auth/google/callback?error=access_denied&scope=email+openid&authuser=0"
                               "&prompt=consent", token="")
    assert status == 400
    assert_error(reply, "sign_in_denied")
    status, reply, _ = api.get("/api/auth/google?scope=email", token="")
    assert status == 422, "other routes still name a parameter they do not take"
