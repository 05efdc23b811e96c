"""The request log names a request's route, never the address or the unsubscribe token its path may carry."""
from __future__ import annotations

import logging

import pytest

from crm.consent.links import token_for

ADDRESS = "ada.lovelace@example.com"


def _logged(caplog, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == message]


def _everything_logged(caplog) -> str:
    return "\n".join(str(record.__dict__) for record in caplog.records)


def test_a_path_with_an_address_is_logged_as_its_route(api, caplog):
    """Review finding: `DELETE /api/suppressions/{email}` wrote the address into the request log."""
    assert api.post("/api/suppressions", {"email": ADDRESS})[0] == 201
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert api.request("DELETE", f"/api/suppressions/{ADDRESS}")[0] == 204
        assert api.request("DELETE", "/api/suppressions/ada.lovelace%40example.com")[0] == 404
        assert api.request("GET", f"/api/suppressions/{ADDRESS}")[0] == 405
    logged = [(r.method, r.path, r.status) for r in _logged(caplog, "request")]
    assert logged == [("DELETE", "/api/suppressions/{email}", 204), ("DELETE", "/api/suppressions/{email}", 404),
                      ("GET", "/api/suppressions/{email}", 405)]
    assert "ada.lovelace" not in _everything_logged(caplog)


def test_an_unsubscribe_link_is_logged_as_its_route(api, db, caplog):
    from bson import ObjectId

    from crm.config import get_settings

    token = token_for(get_settings().secret("unsubscribe_secret"), ObjectId())
    with caplog.at_level(logging.INFO):
        api.request("GET", f"/u/{token}", token="")
    assert [r.path for r in _logged(caplog, "request")] == ["/u/{token}"]
    assert token not in _everything_logged(caplog)


@pytest.mark.parametrize("path", [f"/api/no-such-route/{ADDRESS}", "/api/customers/x/ada.lovelace%40example.com",
                                  "/api/customers/x/ada.lovelace%2540example.com"])
def test_an_unknown_path_is_logged_with_its_addresses_masked(api, caplog, path):
    with caplog.at_level(logging.INFO):
        assert api.request("GET", path)[0] == 404
    [record] = _logged(caplog, "request")
    assert record.path.endswith("/{redacted}") and record.path.startswith("/api/")
    assert "ada.lovelace" not in _everything_logged(caplog)


def test_an_unexpected_error_is_logged_with_the_route_too(api, caplog, monkeypatch):
    from crm.consent import suppressions

    def broken(*_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(suppressions, "remove", broken)
    with caplog.at_level(logging.INFO):
        assert api.request("DELETE", f"/api/suppressions/{ADDRESS}")[0] == 500
    assert [r.path for r in _logged(caplog, "unhandled error")] == ["/api/suppressions/{email}"]
    assert "ada.lovelace" not in _everything_logged(caplog)
