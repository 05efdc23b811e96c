"""The unsubscribe page of every e-mail's link: GET shows one button, POST unsubscribes at once (RFC 8058
one-click: mailbox providers POST `List-Unsubscribe=One-Click` with no credentials). A link no one signed is a
404 page that says nothing about why."""
from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from crm.api.access import RequestId
from crm.api.deps import SettingsDep
from crm.api.pages import html_page
from crm.api.storage import database
from crm.consent.links import customer_of
from crm.consent.unsubscribe import unsubscribe

# Public by design: the signed token is the credential. Pages for people, not API: not in the API's document.
router = APIRouter(prefix="/u", tags=["unsubscribe"], include_in_schema=False)
# The template routes that serve pages for people rather than the API.
PAGES = ("/u/{token}",)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body>
</html>"""
ASK = """<p>You will no longer receive these e-mails.</p>
<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form>"""
DONE = "<p>You are unsubscribed. You will not receive these e-mails any more.</p>"
NOT_FOUND = "<p>This link is not valid.</p>"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return html_page(PAGE.format(title=title, body=body), status, {"Cache-Control": "no-store"})


@router.get("/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, settings: SettingsDep) -> HTMLResponse:
    if customer_of(settings.secret("unsubscribe_secret"), token) is None:
        return _page("Link not valid", NOT_FOUND, 404)
    return _page("Unsubscribe", ASK.format(action=html.escape(f"/u/{token}")))


@router.post("/{token}", response_class=HTMLResponse)
def unsubscribe_now(token: str, settings: SettingsDep, request_id: RequestId) -> HTMLResponse:
    """Whatever the body (a one-click POST or the page's button); 200 however often. The database is reached only
    for a link we signed (not a DbDep: dependencies are resolved before this body runs)."""
    customer_id = customer_of(settings.secret("unsubscribe_secret"), token)
    if customer_id is None:
        return _page("Link not valid", NOT_FOUND, 404)
    unsubscribe(database(), customer_id, request_id)
    return _page("Unsubscribed", DONE)
