"""What every HTML page we serve (the unsubscribe pages, /docs) is sent with: a Content-Security-Policy that lets
the page run only its own files and the inline scripts and styles it was served with (by their hashes), shown in
no one else's frame, telling no one where it was, and never sniffed as another type."""
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
