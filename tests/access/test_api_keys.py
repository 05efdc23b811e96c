"""API keys: created with scopes, the secret shown once and stored as a hash, used with the same Bearer header,
last use noted at most once a minute, revoked within the cache time; the secret in no log line."""
from __future__ import annotations

import hashlib
import json
import re
import time

from crm.access.api_keys import LAST_USED_RESOLUTION
from tests.helpers import assert_error, new_key, token_for

ORDER = {"order_id": "o-1", "customer_email": "ada@example.com", "amount": 5,
         "items": [{"sku": "TEA", "name": "Tea", "qty": 1, "price": 5}]}


def _listed(api, key_id: str) -> dict:
    return next(k for k in api.get("/api/api-keys")[1]["items"] if k["id"] == key_id)


def test_a_key_is_shown_once_and_stored_as_its_hash(api, db, capsys):
    created = new_key(api, "customers:write", "customers:read", name="Shopify store")
    secret = created["key"]
    assert re.fullmatch(r"crm_[A-Za-z0-9_-]{43}", secret)
    assert created["prefix"] == secret[:12] and created["scopes"] == ["customers:write", "customers:read"]
    assert created["created_by"] == "tester@example.com" and created["last_used_at"] is None
    listed = _listed(api, created["id"])
    assert "key" not in listed and "hash" not in listed and listed["prefix"] == created["prefix"]
    stored = db.api_keys.find_one({})
    assert stored["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    everything = json.dumps([list(db[name].find({}, {"_id": 0})) for name in db.list_collection_names()], default=str)
    assert secret not in everything and secret[12:] not in everything
    assert secret not in json.dumps(api.get("/api/audit")[1])
    assert api.get("/api/me", token=secret)[1] == {"type": "api_key", "id": created["id"], "name": "Shopify store",
                                                   "scopes": ["customers:write", "customers:read"]}
    logged = capsys.readouterr()
    assert secret[4:] not in logged.out + logged.err


def test_a_key_reaches_only_what_its_scopes_name(api, db):
    secret = new_key(api, "orders:write")["key"]
    assert api.get("/api/me", token=secret)[0] == 200
    assert api.post("/api/orders", ORDER, token=secret)[0] == 202
    for method, path, body in [("GET", "/api/orders", None), ("GET", "/api/customers", None),
                               ("POST", "/api/customers", {"name": "A", "email": "a@example.com"}),
                               ("GET", "/api/segments", None), ("GET", "/api/campaigns", None),
                               ("GET", "/api/users", None),
                               ("POST", "/api/api-keys", {"name": "x", "scopes": ["orders:write"]}),
                               ("GET", "/api/audit", None), ("POST", "/api/ai/rules", {"prompt": "spend > 5"})]:
        status, reply, _ = api.request(method, path, body, token=secret)
        assert status == 403, (method, path, status)
        assert_error(reply, "forbidden")
    assert db.api_keys.count_documents({}) == 1


def test_last_used_moves_at_most_once_a_minute(api, db):
    created = new_key(api, "customers:read")
    assert api.get("/api/customers", token=created["key"])[0] == 200
    first = _listed(api, created["id"])["last_used_at"]
    assert first is not None
    assert api.get("/api/customers", token=created["key"])[0] == 200
    assert _listed(api, created["id"])["last_used_at"] == first
    # A minute on (as if): the next use moves it again.
    db.api_keys.update_one({}, {"$set": {"last_used_at": db.api_keys.find_one({})["last_used_at"]
                                         - LAST_USED_RESOLUTION}})
    from crm.access.credentials import forget_all

    forget_all()
    assert api.get("/api/customers", token=created["key"])[0] == 200
    assert _listed(api, created["id"])["last_used_at"] > first


def test_a_revoked_key_is_401_within_the_cache_time(api, monkeypatch):
    from crm.config import get_settings

    monkeypatch.setenv("AUTH_CACHE_SECONDS", "1")
    get_settings.cache_clear()
    created = new_key(api, "customers:read")
    assert api.get("/api/customers", token=created["key"])[0] == 200
    assert api.request("DELETE", f"/api/api-keys/{created['id']}")[0] == 204
    deadline = time.monotonic() + 3
    while api.get("/api/customers", token=created["key"])[0] == 200:
        assert time.monotonic() < deadline, "a revoked key still worked 3 s later"
        time.sleep(0.2)
    status, body, headers = api.get("/api/customers", token=created["key"])
    assert status == 401 and headers.get("www-authenticate") == "Bearer"
    assert_error(body, "unauthorized")
    assert api.request("DELETE", f"/api/api-keys/{created['id']}")[0] == 404
    assert all(k["id"] != created["id"] for k in api.get("/api/api-keys")[1]["items"])


def test_made_up_and_malformed_keys_are_401(api):
    for credential in ("crm_" + "A" * 43, "crm_short", "crm_" + "é" * 43, "crm_" + "A" * 500):
        status, body, _ = api.get("/api/customers", token=credential)
        assert status == 401, credential[:20]
        assert_error(body, "unauthorized")


def test_bad_key_requests_are_422(api, db):
    for body, loc in [({"name": "x", "scopes": []}, ["body", "scopes"]),
                      ({"name": "x", "scopes": ["campaigns:write"]}, ["body", "scopes", 0]),
                      ({"name": "", "scopes": ["orders:read"]}, ["body", "name"]),
                      ({"name": "x", "scopes": ["orders:read"], "admin": True}, ["body", "admin"])]:
        status, reply, _ = api.post("/api/api-keys", body)
        assert status == 422, body
        assert_error(reply, "validation_error", loc)
    assert db.api_keys.count_documents({}) == 0


def test_only_admins_manage_keys(api):
    marketer = token_for(api, "m@example.com", "marketer")
    assert api.post("/api/api-keys", {"name": "x", "scopes": ["orders:read"]}, token=marketer)[0] == 403


def test_a_shop_ingests_with_its_key_through_the_running_system(stack):
    """The key is made by one function and used by two others; the consumer applies what it queued."""
    client, runner = stack
    admin = client.post("/api/auth/dev-token", json={"email": "owner@example.com"}).json()["token"]
    as_admin = {"Authorization": f"Bearer {admin}"}
    write = client.post("/api/api-keys", json={"name": "shop", "scopes": ["customers:write", "orders:write"]},
                        headers=as_admin).json()["key"]
    read = client.post("/api/api-keys", json={"name": "reports", "scopes": ["customers:read"]},
                       headers=as_admin).json()["key"]
    reply = client.post("/api/customers", json={"name": "Ada", "email": "ada@example.com", "spend": 10},
                        headers={"Authorization": f"Bearer {write}", "Idempotency-Key": "shop-1"})
    assert reply.status_code == 202, reply.text
    assert client.post("/api/orders", json=ORDER, headers={"Authorization": f"Bearer {write}"}).status_code == 202
    deadline = time.monotonic() + 30
    while True:
        items = client.get("/api/customers", headers={"Authorization": f"Bearer {read}"}).json()["items"]
        if items and items[0]["spend"] == 15:
            break
        assert time.monotonic() < deadline, items
        time.sleep(0.3)
    assert client.get("/api/orders", headers={"Authorization": f"Bearer {read}"}).status_code == 403
    entries = client.get("/api/audit?action=customers.ingest", headers=as_admin).json()["items"]
    assert [e["actor"]["type"] for e in entries] == ["api_key"]
    logged = runner.log.out.getvalue()
    assert "/api/customers" in logged
    assert write[4:] not in logged and read[4:] not in logged and admin not in logged
