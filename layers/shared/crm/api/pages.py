"""What every HTML page we serve (the unsubscribe pages, a tracked link's refusal, /docs) is sent with: a
Content-Security-Policy that lets the page run only its own files and the inline scripts and styles it was served
with (by their hashes), shown in no one else's frame, telling no one where it was, and never sniffed as another
type."""
from __future__ import annotations

import base64
import hashlib
import re

from fastapi.responses import HTMLResponse

_INLINE = {kind: re.compile(rf"<{kind}(?![^>]*\bsrc=)[^>]*>(.*?)</{kind}>", re.S | re.I)
           for kind in ("script", "style")}


def _hashes(page: str, kind: str) -> str:
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                    for body in _INLINE[kind].findall(page))


def page_headers(page: str) -> dict[str, str]:
    policy = ("default-src 'none'; "
              f"script-src 'self' {_hashes(page, 'script')}; "
              # Swagger UI sets style attributes as it renders: a hash cannot name those.
              "style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff"}


def html_page(page: str, status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(page, status_code=status_code, headers={**page_headers(page), **(headers or {})})


# A page for the person who followed a link in a message (unsubscribe, a tracked link).
PERSON_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body>
</html>"""
NOT_VALID = "<p>This link is not valid.</p>"


def person_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return html_page(PERSON_PAGE.format(title=title, body=body), status, {"Cache-Control": "no-store"})


def link_not_valid() -> HTMLResponse:
    """A link no one signed: a 404 page that says nothing about why."""
    return person_page("Link not valid", NOT_VALID, 404)
