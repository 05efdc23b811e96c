"""Who may call what, how large a body may be, operator objects where values belong, and secrets kept out of
every log line."""
from __future__ import annotations

import json
import re
import time
from urllib.parse import urlencode

import pytest

from crm import signing
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


@pytest.mark.parametrize("credential", ["", "not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.e30.forged", "crm_short"])
def test_strangers_are_refused_without_the_database_also_while_it_is_down(api, monkeypatch, credential):
    """Review finding: every route reached the database before it checked the credential, so anonymous requests
    opened connections to Atlas (and got a 503 while it was down). Only a well-formed key is looked up."""
    from crm.config import get_settings
    from offline import services

    _, document, _ = api.get("/openapi.json", token="")
    monkeypatch.setenv("MONGO_URI", f"mongodb://127.0.0.1:{services.free_port()}/")
    get_settings.cache_clear()
    for path, operations in document["paths"].items():
        if _public(path) or path.startswith(("/api/mock-send", "/api/delivery-receipt")):
            continue
        for method in operations:
            status, body, _ = api.request(method.upper(), re.sub(r"\{[^}]+\}", SOME_ID, path),
                                          {} if method == "post" else None, token=credential)
            assert status == 401, f"{method.upper()} {path}: {status} {body}"
    assert api.post("/u/forged-token", {}, token="")[0] == 404, "an unsubscribe link no one signed"
    assert api.get("/c/" + "A" * 80, token="")[0] == 404, "a tracked link no one signed"
    assert api.get("/api/auth/google/callback?code=c&state=forged", token="")[0] in (400, 403), "a forged callback"
    assert api.get("/api/auth/google", token="")[0] == 403, "a sign-in this stack does not offer"
    assert api.get("/api/customers", token="crm_" + "A" * 43)[0] == 503, "a well-formed key is looked up"
    get_settings.cache_clear()


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


# Bad input is a 4xx naming the field, never a 500 (API.md, Errors): pymongo cannot encode an integer beyond 64
# bits, 1e400 parses as infinity, and a time whose offset carries it past year 1 or 9999 has no UTC instant.
BEYOND_64_BITS = "4019765646256189707044587883724"
OUT_OF_RANGE_NUMBERS = (BEYOND_64_BITS, "1e400", "inf", "nan", "-1")
OUT_OF_RANGE_TIMES = ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59")


def _query_parameters(api, *types: str) -> list[tuple[str, str]]:
    """(path, name) of every query parameter of a GET in the document whose schema allows one of types."""
    _, document, _ = api.get("/openapi.json", token="")
    found = []
    for path, operations in document["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            schema = parameter["schema"]
            allowed = {s.get("type") for s in schema.get("anyOf", [schema])} | {s.get("format")
                                                                               for s in schema.get("anyOf", [schema])}
            if parameter["in"] == "query" and allowed & set(types):
                found.append((re.sub(r"\{[^}]+\}", SOME_ID, path), parameter["name"]))
    return found


def test_every_number_in_a_query_is_bounded_and_out_of_range_is_422_naming_it(api, db):
    parameters = _query_parameters(api, "integer", "number")
    assert {"min_visits", "max_visits", "min_spend", "max_spend", "limit"} <= {name for _, name in parameters}
    for path, name in parameters:
        for value in OUT_OF_RANGE_NUMBERS:
            status, reply, _ = api.get(f"{path}?{urlencode({name: value})}")
            assert status == 422, (path, name, value, reply)
            assert_error(reply, "validation_error", ["query", name])


def test_every_time_in_a_query_without_a_utc_instant_is_422_naming_it(api, db):
    parameters = _query_parameters(api, "date-time")
    assert {"active_after", "active_before", "from", "to"} <= {name for _, name in parameters}
    for path, name in parameters:
        for value in OUT_OF_RANGE_TIMES:
            status, reply, _ = api.get(f"{path}?{urlencode({name: value})}")
            assert status == 422, (path, name, value, reply)
            assert_error(reply, "validation_error", ["query", name])


@pytest.mark.parametrize("path, body, loc", [
    ("/api/customers", {"name": "Ada", "email": "ada@example.com", "last_active": OUT_OF_RANGE_TIMES[0]},
     ["body", "last_active"]),
    ("/api/orders", {"order_id": "o-1", "customer_email": "ada@example.com", "amount": 1, "date": OUT_OF_RANGE_TIMES[1],
                     "items": [{"sku": "s", "name": "n", "qty": 1, "price": 1}]}, ["body", "date"]),
])
def test_a_time_without_a_utc_instant_in_a_body_is_422_and_queues_nothing(api, db, consumers, path, body, loc):
    status, reply, _ = api.post(path, body)
    assert status == 422, reply
    assert_error(reply, "validation_error", loc)
    assert consumers.messages("CustomerIngestQueue") == [] and consumers.messages("OrderIngestQueue") == []


def _signed_receipt(env, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    return {"X-Vendor-Timestamp": timestamp, "X-Vendor-Signature": signing.sign(env["WEBHOOK_SECRET"], timestamp, body)}


RECEIPT = {"vendor_message_id": "v-1", "log_id": SOME_ID, "status": "SENT", "timestamp": "2026-11-25T10:00:00Z"}


@pytest.mark.parametrize("signature", ["é" * 64, "ü", "0" * 63 + "é", "\u2603" * 10])
def test_a_non_ascii_vendor_signature_is_401(api, db, env, signature):
    headers = {"X-Vendor-Timestamp": str(int(time.time())), "X-Vendor-Signature": signature}
    status, reply, _ = api.post("/api/delivery-receipt", RECEIPT, token="", headers=headers)
    assert status == 401, reply
    assert_error(reply, "invalid_signature")


@pytest.mark.parametrize("shape", ["arabic_indic_digits", "fullwidth_digits", "non_ascii_suffix", "underscores",
                                   "plus_sign"])
def test_a_vendor_timestamp_that_is_not_ascii_digits_is_401_even_when_signed(api, db, env, shape):
    now = str(int(time.time()))
    timestamp = {"arabic_indic_digits": "".join(chr(0x660 + int(d)) for d in now),
                 "fullwidth_digits": "".join(chr(0xFF10 + int(d)) for d in now),
                 "non_ascii_suffix": now + "é", "underscores": f"{now[:4]}_{now[4:]}", "plus_sign": f"+{now}"}[shape]
    raw = json.dumps(RECEIPT).encode()
    headers = _signed_receipt(env, raw, timestamp)
    status, reply, _ = api.post("/api/delivery-receipt", raw=raw, token="", headers=headers)
    assert status == 401, reply
    assert_error(reply, "invalid_signature")


def test_a_receipt_nested_past_the_parsers_depth_is_422(api, db, env):
    raw = b"[" * 100_000 + b"]" * 100_000
    status, reply, _ = api.post("/api/delivery-receipt", raw=raw, token="", headers=_signed_receipt(env, raw))
    assert status == 422, reply
    assert_error(reply, "validation_error", ["body"])


@pytest.mark.parametrize("key", ["é", "\u2603" * 40, "ключ"])
def test_a_non_ascii_vendor_key_is_401_and_sends_nothing(api, db, env, consumers, key):
    message = {"log_id": SOME_ID, "to": {"name": "Ada", "email": "ada@example.com"}, "message": "Hi"}
    status, reply, _ = api.post("/api/mock-send", message, token="", headers={"X-Vendor-Key": key})
    assert status == 401, reply
    assert_error(reply, "invalid_vendor_key")
    assert db.vendor_messages.count_documents({}) == 0 and consumers.messages("VendorReceiptQueue") == []


@pytest.mark.parametrize("credential", ["é", "Bearer é.é.é", "Bearer \u2603", "Bearer eyJhbGciOiJIUzI1NiJ9.é.é",
                                        "Bearer \x00", "Bearer a\x7fb.c.d", "Basic é", "Bearer " + "é" * 5000])
def test_odd_bytes_in_a_bearer_credential_are_401(api, db, credential):
    status, reply, _ = api.get("/api/customers", token="", headers={"authorization": credential})
    assert status == 401, reply
    assert_error(reply, "unauthorized")


@pytest.mark.parametrize("key", ["é", "ключ", "a\x01b", "\x7f", "tab\there", "\u2028", "a" * 256])
@pytest.mark.parametrize("path, body", [
    ("/api/customers", {"name": "Ada", "email": "ada@example.com"}),
    ("/api/orders", {"order_id": "o-1", "customer_email": "ada@example.com", "amount": 1,
                     "items": [{"sku": "s", "name": "n", "qty": 1, "price": 1}]}),
])
def test_an_idempotency_key_that_is_not_printable_ascii_is_422_and_queues_nothing(api, db, consumers, path, body,
                                                                                    key):
    status, reply, _ = api.post(path, body, headers={"Idempotency-Key": key})
    assert status == 422, reply
    assert_error(reply, "validation_error", ["header", "Idempotency-Key"])
    assert consumers.messages("CustomerIngestQueue") == [] and consumers.messages("OrderIngestQueue") == []


def test_non_ascii_bytes_in_every_header_the_api_reads_are_4xx_through_the_runner(stack, stack_env):
    """Raw bytes on the wire (read as latin-1 by the HTTP server), not only what an API Gateway event can carry."""
    client, _ = stack
    odd = "é\xff\u2603".encode() + b"\x80\xfe"
    token = client.post("/api/auth/dev-token", json={"email": "bytes@example.com"}).json()["token"]
    bearer = ("authorization", f"Bearer {token}".encode())
    customer = json.dumps({"name": "Ada", "email": "ada@example.com"}).encode()
    receipt = json.dumps(RECEIPT).encode()
    requests = [
        ("GET", "/api/customers", [("authorization", b"Bearer " + odd)], b"", 401),
        ("GET", "/api/customers", [("authorization", odd)], b"", 401),
        ("POST", "/api/customers", [bearer, ("idempotency-key", odd)], customer, 422),
        ("POST", "/api/mock-send", [("x-vendor-key", odd)], b"{}", 401),
        ("POST", "/api/delivery-receipt", [("x-vendor-timestamp", str(int(time.time())).encode()),
                                           ("x-vendor-signature", odd * 8)], receipt, 401),
        ("POST", "/api/delivery-receipt", [("x-vendor-timestamp", odd),
                                           ("x-vendor-signature", b"0" * 64)], receipt, 401),
    ]
    for method, path, headers, body, expected in requests:
        reply = client.request(method, path, headers=[("content-type", b"application/json"), *headers], content=body)
        assert reply.status_code == expected, (method, path, headers, reply.status_code, reply.text)
        assert reply.json()["error"]["code"], reply.text
