"""Users and roles: invitations, role changes and disablings that reach tokens already issued, the last admin."""
from __future__ import annotations

import threading
import time

import pytest

from crm.access import users
from crm.access.audit import Auditor
from crm.access.principals import Role
from tests.helpers import assert_error, token_for


def _user(api, email: str) -> dict:
    return next(u for u in api.get("/api/users?limit=200")[1]["items"] if u["email"] == email)


def _patch(api, user_id: str, body: dict, **kw):
    return api.request("PATCH", f"/api/users/{user_id}", body, **kw)


def test_an_invitation_is_a_user_with_a_role_and_a_second_one_is_409(api, db):
    status, user, _ = api.post("/api/users", {"email": "New@Example.com", "role": "analyst", "name": "New"})
    assert status == 201
    assert user["email"] == "new@example.com" and user["role"] == "analyst" and user["disabled"] is False
    assert set(user) == {"id", "email", "name", "role", "disabled", "created_at", "last_sign_in_at"}
    status, body, _ = api.post("/api/users", {"email": "new@example.com", "role": "admin"})
    assert status == 409
    assert_error(body, "user_exists")
    assert db.users.count_documents({"email": "new@example.com"}) == 1


@pytest.mark.parametrize("body, loc", [({"email": "a@example.com", "role": "owner"}, ["body", "role"]),
                                       ({"email": "a@example.com", "role": {"$ne": ""}}, ["body", "role"]),
                                       ({"email": "not-an-address", "role": "admin"}, ["body", "email"])])
def test_a_bad_invitation_is_422_and_writes_nothing(api, db, body, loc):
    status, reply, _ = api.post("/api/users", body)
    assert status == 422
    assert_error(reply, "validation_error", loc)
    assert db.users.count_documents({"email": body["email"]}) == 0


@pytest.mark.parametrize("body, loc", [({"disabled": "yes"}, ["body", "disabled"]),
                                       ({"role": "root"}, ["body", "role"]),
                                       ({"email": "x@example.com"}, ["body", "email"])])
def test_a_bad_change_is_422(api, body, loc):
    target = api.post("/api/users", {"email": "c@example.com", "role": "analyst"})[1]
    status, reply, _ = _patch(api, target["id"], body)
    assert status == 422
    assert_error(reply, "validation_error", loc)


def test_a_role_change_reaches_a_token_already_issued_within_the_cache_time(api, monkeypatch):
    from crm.config import get_settings

    monkeypatch.setenv("AUTH_CACHE_SECONDS", "1")
    get_settings.cache_clear()
    token = token_for(api, "mark@example.com", "marketer")
    segment = {"name": "Big", "rules": {"field": "spend", "op": ">", "value": 10}}
    assert api.post("/api/segments", segment, token=token)[0] == 201
    assert _patch(api, _user(api, "mark@example.com")["id"], {"role": "analyst"})[1]["role"] == "analyst"
    time.sleep(1.1)
    status, body, _ = api.post("/api/segments", segment, token=token)
    assert status == 403
    assert_error(body, "forbidden")
    assert api.get("/api/segments", token=token)[0] == 200


def test_a_disabled_user_is_401_within_the_cache_time_and_back_when_enabled(api, monkeypatch):
    from crm.config import get_settings

    monkeypatch.setenv("AUTH_CACHE_SECONDS", "1")
    get_settings.cache_clear()
    token = token_for(api, "dana@example.com", "analyst")
    assert api.get("/api/customers", token=token)[0] == 200
    dana = _user(api, "dana@example.com")["id"]
    assert _patch(api, dana, {"disabled": True})[1]["disabled"] is True
    # Cached for a second: the container's earlier read still stands, then the change reaches it.
    deadline = time.monotonic() + 3
    while api.get("/api/customers", token=token)[0] == 200:
        assert time.monotonic() < deadline, "a disabled user's token still worked 3 s later"
        time.sleep(0.2)
    assert api.get("/api/customers", token=token)[0] == 401
    assert _patch(api, dana, {"disabled": False})[0] == 200
    time.sleep(1.1)
    assert api.get("/api/customers", token=token)[0] == 200


def test_the_last_admin_cannot_be_demoted_or_disabled(api, db):
    me = _user(api, "tester@example.com")
    for change in ({"role": "marketer"}, {"disabled": True}):
        status, body, _ = _patch(api, me["id"], change)
        assert status == 409
        assert_error(body, "last_admin")
    assert _user(api, "tester@example.com")["role"] == "admin"
    other = api.post("/api/users", {"email": "second@example.com", "role": "admin"})[1]
    assert _patch(api, me["id"], {"role": "marketer"})[0] == 200
    assert _patch(api, other["id"], {"disabled": True}, token=token_for(api, "second@example.com", "admin"))[0] == 409
    assert db.audit_log.count_documents({"action": "user.update"}) == 1


def test_two_admins_removing_each_other_at_once_leave_one(api, db):
    """Each demotion alone would leave an admin; together they would leave none unless they conflict."""
    for attempt in range(5):
        a = users.invite(Auditor(db, _principal(api, db), "setup"), f"a{attempt}@example.com", Role.ADMIN, None)
        b = users.invite(Auditor(db, _principal(api, db), "setup"), f"b{attempt}@example.com", Role.ADMIN, None)
        me = db.users.find_one({"email": "tester@example.com"})
        db.users.update_one({"_id": me["_id"]}, {"$set": {"role": "marketer"}})
        barrier, outcomes = threading.Barrier(2), []

        def demote(actor: dict, target: dict) -> None:
            barrier.wait()
            try:
                users.update(Auditor(db, users.principal_of(actor), "race"), str(target["_id"]), Role.ANALYST, None)
                outcomes.append("demoted")
            except Exception as exc:  # noqa: BLE001 - the refusal is what the test looks for
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=demote, args=(a, b)), threading.Thread(target=demote, args=(b, a))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["Conflict", "demoted"], outcomes
        assert db.users.count_documents({"role": "admin", "disabled": False}) == 1
        db.users.update_one({"_id": me["_id"]}, {"$set": {"role": "admin"}})
        db.users.update_many({"email": {"$in": [a["email"], b["email"]]}}, {"$set": {"role": "analyst"}})


def _principal(api, db):
    return users.principal_of(db.users.find_one({"email": "tester@example.com"}))
