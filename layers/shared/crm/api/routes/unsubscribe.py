"""The unsubscribe page of every e-mail's link: GET shows one button, POST unsubscribes at once (RFC 8058
one-click: mailbox providers POST `List-Unsubscribe=One-Click` with no credentials). A link no one signed is a
404 page that says nothing about why."""
from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from crm.api.access import RequestId
from crm.api.deps import SettingsDep
from crm.api.pages import link_not_valid, person_page
from crm.api.storage import database
from crm.consent.links import customer_of
from crm.consent.unsubscribe import unsubscribe

# Public by design: the signed token is the credential. Pages for people, not API: not in the API's document.
router = APIRouter(prefix="/u", tags=["unsubscribe"], include_in_schema=False)
# The template routes that serve pages for people rather than the API.
PAGES = ("/u/{token}",)

ASK = """<p>You will no longer receive these e-mails.</p>
<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form>"""
DONE = "<p>You are unsubscribed. You will not receive these e-mails any more.</p>"


@router.get("/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, settings: SettingsDep) -> HTMLResponse:
    if customer_of(settings.secret("unsubscribe_secret"), token) is None:
        return link_not_valid()
    return person_page("Unsubscribe", ASK.format(action=html.escape(f"/u/{token}")))


@router.post("/{token}", response_class=HTMLResponse)
def unsubscribe_now(token: str, settings: SettingsDep, request_id: RequestId) -> HTMLResponse:
    """Whatever the body (a one-click POST or the page's button); 200 however often. The database is reached only
    for a link we signed (not a DbDep: dependencies are resolved before this body runs)."""
    customer_id = customer_of(settings.secret("unsubscribe_secret"), token)
    if customer_id is None:
        return link_not_valid()
    unsubscribe(database(), customer_id, request_id)
    return person_page("Unsubscribed", DONE)
