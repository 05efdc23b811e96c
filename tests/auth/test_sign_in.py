"""Who may sign in with Google: invited users, the allowed domains (with Google's `hd` claim), ADMIN_EMAILS; nobody
else. And a deployed stack with no allow-list does not start its sign-in function."""
from __future__ import annotations

import importlib.util
import logging

import pytest

from crm.config import ConfigError, get_settings
from tests.conftest import ROOT
from tests.helpers import assert_error


def _configure(monkeypatch, **settings: str) -> None:
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def _me(api, token: str) -> dict:
    status, body, _ = api.get("/api/me", token=token)
    assert status == 200, body
    return body


def test_an_invited_user_signs_in_with_the_role_they_were_given(browser, api, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="", ALLOWED_EMAIL_DOMAINS="")
    assert_error(browser.sign_in("eve@blocked.example")[1], "sign_in_denied")
    status, invited, _ = api.post("/api/users", {"email": "Eve@Blocked.example", "role": "marketer"})
    assert status == 201 and invited["email"] == "eve@blocked.example" and invited["last_sign_in_at"] is None
    status, body = browser.sign_in("eve@blocked.example")
    assert status == 200 and body["user"]["role"] == "marketer"
    assert _me(api, body["token"])["role"] == "marketer"
    users = {u["email"]: u for u in api.get("/api/users")[1]["items"]}
    assert users["eve@blocked.example"]["last_sign_in_at"] is not None
    assert users["eve@blocked.example"]["name"] == "Eve"


def test_a_workspace_domain_admits_its_people_with_the_default_role(browser, api, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="", ALLOWED_EMAIL_DOMAINS="corp.example")
    status, body = browser.sign_in("grace@corp.example")
    assert status == 200 and body["user"]["role"] == "analyst"
    _configure(monkeypatch, DEFAULT_ROLE="marketer")
    # Created once: a later sign-in keeps the role the first one gave, whatever DEFAULT_ROLE says now.
    assert browser.sign_in("grace@corp.example")[1]["user"]["role"] == "analyst"


def test_a_person_admitted_by_their_domain_stays_admitted_only_through_its_accounts(browser, api, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="", ALLOWED_EMAIL_DOMAINS="corp.example")
    assert browser.sign_in("grace@corp.example")[0] == 200
    status, body = browser.sign_in("grace-personal")
    assert status == 403 and "token" not in body, "the same address on a personal account is not the domain's"
    assert_error(body, "sign_in_denied")
    grace = next(u for u in api.get("/api/users")[1]["items"] if u["email"] == "grace@corp.example")
    assert api.request("PATCH", f"/api/users/{grace['id']}", {"role": "marketer"})[0] == 200
    assert browser.sign_in("grace-personal")[0] == 403
    assert browser.sign_in("grace@corp.example")[1]["user"]["role"] == "marketer"


def test_taking_a_domain_off_the_allow_list_shuts_out_the_people_it_admitted(browser, api, monkeypatch):
    """Review finding: they still signed in, and their tokens still worked."""
    _configure(monkeypatch, ADMIN_EMAILS="", ALLOWED_EMAIL_DOMAINS="corp.example,other.example", AUTH_CACHE_SECONDS="0")
    status, body = browser.sign_in("grace@corp.example")
    assert status == 200 and _me(api, body["token"])["email"] == "grace@corp.example"
    _configure(monkeypatch, ALLOWED_EMAIL_DOMAINS="other.example")
    assert api.get("/api/me", token=body["token"])[0] == 401, "the token they hold"
    assert_error(browser.sign_in("grace@corp.example")[1], "sign_in_denied")
    _configure(monkeypatch, ALLOWED_EMAIL_DOMAINS="corp.example")
    assert browser.sign_in("grace@corp.example")[0] == 200, "the domain back on the list lets them in again"
    grace = next(u for u in api.get("/api/users")[1]["items"] if u["email"] == "grace@corp.example")
    assert api.request("PATCH", f"/api/users/{grace['id']}", {"role": "marketer"})[0] == 200
    _configure(monkeypatch, ALLOWED_EMAIL_DOMAINS="other.example")
    assert browser.sign_in("grace@corp.example")[0] == 200, "an admin who chose their role keeps them"


def test_concurrent_first_sign_ins_make_one_user_and_name_it_in_the_audit_trail(db, env, monkeypatch):
    import threading

    from crm.access import users

    _configure(monkeypatch, ALLOWED_EMAIL_DOMAINS="corp.example")
    barrier = threading.Barrier(4)

    def sign_in() -> None:
        barrier.wait()
        users.sign_in(db, get_settings(), users.Identity("new@corp.example", "New", None, "corp.example"), "r")

    threads = [threading.Thread(target=sign_in) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = list(db.users.find({"email": "new@corp.example"}))
    assert len(stored) == 1
    entries = list(db.audit_log.find({"action": "user.sign_in"}))
    assert len(entries) == 4
    assert {e["actor"]["id"] for e in entries} == {e["target"]["id"] for e in entries} == {str(stored[0]["_id"])}


def test_an_hd_claim_naming_another_organisation_is_403(browser, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="", ALLOWED_EMAIL_DOMAINS="corp.example")
    status, body = browser.sign_in("trudy@corp.example")
    assert status == 403 and "token" not in body
    assert_error(body, "sign_in_denied")
    _configure(monkeypatch, REQUIRE_HOSTED_DOMAIN="false")
    assert browser.sign_in("trudy@corp.example")[0] == 403, "a mismatched hd is refused even when hd is not required"


def test_a_personal_account_with_the_domains_address_needs_require_hosted_domain_off(browser, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="", ALLOWED_EMAIL_DOMAINS="corp.example")
    assert_error(browser.sign_in("mallory@corp.example")[1], "sign_in_denied")
    _configure(monkeypatch, REQUIRE_HOSTED_DOMAIN="false")
    status, body = browser.sign_in("mallory@corp.example")
    assert status == 200 and body["user"]["role"] == "analyst"


def test_an_outsider_is_403_and_becomes_no_user(browser, api, monkeypatch, db):
    _configure(monkeypatch, ADMIN_EMAILS="ada@example.com", ALLOWED_EMAIL_DOMAINS="corp.example")
    status, body = browser.sign_in("eve@blocked.example")
    assert status == 403 and "token" not in body
    assert_error(body, "sign_in_denied")
    assert db.users.count_documents({"email": "eve@blocked.example"}) == 0
    assert db.audit_log.count_documents({"actor.email": "eve@blocked.example"}) == 0


def test_admin_emails_are_admins_from_their_first_sign_in(browser, api, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="someone@else.example, ADA@example.com", ALLOWED_EMAIL_DOMAINS="")
    status, body = browser.sign_in("ada@example.com")
    assert status == 200 and body["user"]["role"] == "admin"
    assert api.get("/api/users", token=body["token"])[0] == 200
    entries = api.get("/api/audit?action=user.sign_in&actor=ada@example.com")[1]["items"]
    assert len(entries) == 1 and entries[0]["actor"]["email"] == "ada@example.com"


def test_a_disabled_user_cannot_sign_in_and_their_tokens_stop_working(browser, api, monkeypatch):
    _configure(monkeypatch, ADMIN_EMAILS="ada@example.com", AUTH_CACHE_SECONDS="0")
    status, body = browser.sign_in("ada@example.com")
    token = body["token"]
    ada = next(u for u in api.get("/api/users")[1]["items"] if u["email"] == "ada@example.com")
    assert api.request("PATCH", f"/api/users/{ada['id']}", {"disabled": True})[0] == 200
    assert api.get("/api/customers", token=token)[0] == 401
    assert_error(browser.sign_in("ada@example.com")[1], "sign_in_denied")


def _load_auth_function():
    spec = importlib.util.spec_from_file_location("auth_function_fresh", ROOT / "functions" / "auth" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PRODUCTION = {"ENV": "production", "JWT_SECRET": "p" * 40, "MONGO_URI": "mongodb://db.example:27017/"}


def test_production_with_no_allow_list_refuses_to_start_the_sign_in_function(env, monkeypatch, caplog):
    _configure(monkeypatch, **PRODUCTION, ALLOWED_EMAIL_DOMAINS="", ADMIN_EMAILS="")
    with caplog.at_level(logging.ERROR), pytest.raises(ConfigError, match="ALLOWED_EMAIL_DOMAINS or ADMIN_EMAILS"):
        _load_auth_function()
    assert any("refusing to start" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("allow", [{"ALLOWED_EMAIL_DOMAINS": "corp.example"}, {"ADMIN_EMAILS": "ada@example.com"}])
def test_production_with_an_allow_list_starts(env, monkeypatch, allow):
    _configure(monkeypatch, **PRODUCTION, ALLOWED_EMAIL_DOMAINS="", ADMIN_EMAILS="")
    _configure(monkeypatch, **allow)
    assert _load_auth_function().handler is not None
