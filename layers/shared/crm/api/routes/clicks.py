"""The tracked links of campaign messages (`GET /c/{token}`): the person is redirected to the link's URL at once,
after their click is put on the clicks queue; the click is counted by its consumer, so the redirect waits on no
database and this function has none. A token we did not sign is a 404 page, never a redirect (no open redirect).
If the queue cannot be reached the person is still redirected, and the click goes uncounted with a warning in the
log: getting to the page matters more than the count."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from crm.api.deps import SettingsDep
from crm.api.pages import link_not_valid
from crm.engagement import clicks
from crm.engagement.links import read_token

# Public by design: the signed token is the credential. A redirect for people, not API: not in the API's document.
router = APIRouter(prefix="/c", tags=["clicks"], include_in_schema=False)
# The template routes that serve people rather than the API.
PAGES = ("/c/{token}",)


@router.get("/{token}", response_model=None)
def follow_link(token: str, settings: SettingsDep) -> RedirectResponse | HTMLResponse:
    click = read_token(settings.secret("unsubscribe_secret"), token)
    if click is None:
        return link_not_valid()
    clicks.queue(settings, click)
    # no-store: a browser that kept the redirect would go straight to the page next time, uncounted.
    return RedirectResponse(click.url, status_code=302, headers={"Cache-Control": "no-store"})
