"""Tracked links: every http(s) link of a campaign message but its unsubscribe link is sent as
`<public URL>/c/<token>`, a per-recipient link whose token names the log and the link.

A campaign's `links` are the ordered distinct URLs of its messages (each variant's too) as the marketer wrote them,
stored on the campaign at creation; a link's place in that list is its index, under which its counters are kept.

The rewrite happens at send, on the copy handed to the channel (crm.services.sending), not at the fan-out: the stored
log keeps the message as written (what the campaign's page shows, and no per-recipient token in a million logs),
TRACK_CLICKS takes effect for every message not sent yet, and a send repeated after a lost answer is rewritten
alike (the token depends only on the log, the link and its URL), so the vendor's idempotency key still covers one
message. A link whose tracked form would take the message past what the vendor takes is sent as written. Test sends
are not tracked: they name no log, so a click on one would record nothing, and their reader gets the page itself.

Only where the marketer wrote a link is it tracked: a link of a campaign with a placeholder is tracked only if its
scheme and host (userinfo and port too) are written out before the first placeholder, and a recipient's URL only if
its scheme and host are exactly those. A customer's name or attribute chooses no destination for a link we sign
(`https://shop.example.com{{attributes.landing}}` with `@evil.example/x` leads to evil.example: it is sent as
written, untracked).

The token carries the log id, the link's index and the URL itself, with an HMAC of the three: the redirect reads no
database, and only a token we signed can redirect anywhere (never an open redirect). It is signed with the secret
of the unsubscribe links (every stack has it; the "click:" prefix of what is signed keeps a click token from ever
being an unsubscribe MAC, and the other way round), and its format is pinned by a test: links in e-mails already
sent must keep working."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable
from urllib.parse import urlsplit

from bson import ObjectId

from crm.config import Settings
from crm.models.campaigns import MAX_MESSAGE_LENGTH, PLACEHOLDERS

PATH = "/c/"
MAC_BYTES = 16
LOG_BYTES = 12
LINK_BYTES = 2
# The longest URL a token carries; a longer link is sent as written.
MAX_URL_BYTES = 2000
SHORTEST_URL = len("http://x")
MIN_TOKEN_LENGTH = (LOG_BYTES + LINK_BYTES + SHORTEST_URL + MAC_BYTES) * 4 // 3
MAX_TOKEN_LENGTH = -(-(LOG_BYTES + LINK_BYTES + MAX_URL_BYTES + MAC_BYTES) * 4 // 3)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
# A link in an HTML attribute (its value HTML-unescaped), or in text (ending before trailing punctuation).
_LINK = re.compile(r"""\bhref\s*=\s*(?P<q>["'])(?P<quoted>https?://[^"'<>\s]+)(?P=q)"""
                   r"""|(?P<bare>https?://[^\s<>"']+)""", re.IGNORECASE)
_TRAILING = ".,;:!?"
_CLOSING = {")": "(", "]": "["}
# Where urlsplit ends a URL's authority (its userinfo, host and port). A browser ends it there or sooner (at a
# backslash too), so an authority written out up to one of these is the whole of it for both.
_AUTHORITY_ENDS = "/?#"
_WEB_SCHEMES = ("http", "https")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Click:
    """What a token names: the log, the link's index in its campaign's links, and where it leads."""
    log_id: ObjectId
    link: int
    url: str


def _mac(secret: str, signed: bytes) -> bytes:
    return hmac.new(secret.encode(), b"click:" + signed, hashlib.sha256).digest()[:MAC_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_for(secret: str, log_id: ObjectId, link: int, url: str) -> str:
    signed = log_id.binary + link.to_bytes(LINK_BYTES, "big") + url.encode()
    return _encode(signed + _mac(secret, signed))


def read_token(secret: str, token: str) -> Click | None:
    """What a token names, or None for anything token_for did not make with this secret (garbled, cut, padded,
    re-encoded: only the one canonical spelling of a signed token is read)."""
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if _encode(raw) != token:
        return None
    signed, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, signed)):
        return None
    try:
        url = signed[LOG_BYTES + LINK_BYTES:].decode()
    except UnicodeDecodeError:
        return None
    if _web_origin(url) is None:  # we sign none, but the redirect goes nowhere else whatever was signed
        return None
    return Click(ObjectId(signed[:LOG_BYTES]), int.from_bytes(signed[LOG_BYTES:LOG_BYTES + LINK_BYTES], "big"), url)


def _web_origin(url: str) -> tuple[str, str] | None:
    """An http(s) URL's scheme and netloc (userinfo, host, port), as urlsplit reads them; None for any other URL."""
    if _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is no number is no web URL
    except ValueError:
        return None
    if parts.scheme not in _WEB_SCHEMES or not url.lower().startswith(parts.scheme + "://") or not parts.hostname:
        return None
    return parts.scheme, parts.netloc


def _links_in(text: str) -> Iterable[tuple[int, int, str]]:
    """Each link of a text: where its written form starts and ends, and the URL it leads to."""
    for match in _LINK.finditer(text):
        if match["quoted"]:
            yield match.start("quoted"), match.end("quoted"), html.unescape(match["quoted"])
            continue
        url = _trimmed(match["bare"])
        yield match.start("bare"), match.start("bare") + len(url), url


def _trimmed(url: str) -> str:
    """A link in text without the punctuation that ends its sentence, or the bracket that closes around it."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSING and url.count(_CLOSING[last]) < url.count(last)):
            url = url[:-1]
        else:
            break
    return url


def campaign_links(messages: Iterable[str]) -> list[str]:
    """The ordered distinct links of a campaign's messages, as written (placeholders and all)."""
    found: dict[str, None] = {}
    for message in messages:
        for _, _, url in _links_in(message):
            found.setdefault(url)
    return list(found)


_Pattern = tuple[re.Pattern[str], int, tuple[str, str]]


@lru_cache(maxsize=256)
def _places(links: tuple[str, ...]) -> tuple[dict[str, int], tuple[_Pattern, ...]]:
    """A campaign's links by URL, and for each link that holds a placeholder (its recipients' URLs differ) a pattern
    and the scheme and netloc written before its first placeholder. A link with a placeholder before the end of its
    host is left out: what follows `https://shop.example.com` (`@evil.example`, `.evil.example`, `:1@x`) may change
    where it leads."""
    exact = {}
    personalised = []
    for place, link in enumerate(links):
        first = PLACEHOLDERS.search(link)
        if first is None:
            exact.setdefault(link, place)
            continue
        written = link[:first.start()]
        after_scheme = written.partition("://")[2]
        origin = _web_origin(written)
        if origin is None or not any(end in after_scheme for end in _AUTHORITY_ENDS):
            continue
        pattern, start = "", 0
        for match in PLACEHOLDERS.finditer(link):
            pattern += re.escape(link[start:match.start()]) + ".*"
            start = match.end()
        personalised.append((re.compile(pattern + re.escape(link[start:])), place, origin))
    return exact, tuple(personalised)


def place_of(url: str, links: tuple[str, ...]) -> int | None:
    """A recipient's URL's index among the campaign's links; None for a URL no link of the message made (one a
    customer's name or attribute brought in is not ours to track), or one leading elsewhere than its link's written
    scheme and host."""
    exact, personalised = _places(links)
    if url in exact:
        return exact[url]
    origin = _web_origin(url)
    return next((place for pattern, place, written in personalised if written == origin and pattern.fullmatch(url)),
                None)


class LinkTracker:
    """Rewrites the links of the messages handed to the channel."""

    def __init__(self, public_url: str, secret: str):
        self.base = public_url.rstrip("/")
        self.secret = secret
        self._ours = (f"{self.base}/u/", f"{self.base}{PATH}")

    @classmethod
    def of(cls, settings: Settings) -> LinkTracker:
        return cls(settings.public_url, settings.secret("unsubscribe_secret"))

    def url_for(self, log_id: ObjectId, link: int, url: str) -> str:
        return f"{self.base}{PATH}{token_for(self.secret, log_id, link, url)}"

    def tracked(self, message: dict[str, Any], links: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """A send record ({log_id, message, unsubscribe_url?, ...}) with each link of its campaign's `links` in its
        message replaced by its tracked URL, as long as the message stays within what the vendor takes."""
        text = message["message"]
        if not links:
            return message
        links = tuple(links)
        log_id = ObjectId(message["log_id"])
        unsubscribe = message.get("unsubscribe_url")
        room = MAX_MESSAGE_LENGTH - len(text)
        pieces, written = [], 0
        for start, end, url in _links_in(text):
            if url == unsubscribe or url.startswith(self._ours) or len(url.encode()) > MAX_URL_BYTES:
                continue
            place = place_of(url, links)
            if place is None or _web_origin(url) is None:
                continue
            tracked = self.url_for(log_id, place, url)
            if len(tracked) - (end - start) > room:
                continue  # sent as written: the message must still reach the vendor whole
            room -= len(tracked) - (end - start)
            pieces += [text[written:start], tracked]
            written = end
        if not pieces:
            return message
        return {**message, "message": "".join(pieces) + text[written:]}
