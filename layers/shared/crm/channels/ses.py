"""E-mail through Amazon SES (API v2): one raw message per recipient with RFC 8058 one-click unsubscribe headers,
plain text and a minimal HTML part, the configuration set named (its events come back through EventBridge) and
the log id as a message tag. The account's send rate is kept; throttling is waited out, never a failure."""
from __future__ import annotations

import html
import random
import time
from email import policy
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.parsers import ResponseParserError

from crm.channels import (
    BATCH,
    CALL_BUDGET_SECONDS,
    SES_CONNECT_SECONDS,
    UNCONFIRMED,
    Accepted,
    ChannelUnavailable,
    Deferred,
    HandingOver,
    Rejected,
    per_second,
    ses_answer_seconds,
)
from crm.channels.rate import RateLimiter, SharedRateLimiter
from crm.config import Settings
from crm.db import CHANNEL_RATES, get_db

ATTEMPTS = 4
BACKOFF_SECONDS = 0.5
THROTTLED = {"TooManyRequestsException", "Throttling", "ThrottlingException"}
# The account cannot send now (daily quota, sending paused, identity not ready): the messages wait, not fail.
CANNOT_SEND_NOW = {"LimitExceededException", "SendingPausedException", "AccountSuspendedException",
                   "MailFromDomainNotVerifiedException", "NotFoundException",
                   "ServiceUnavailable", "AccessDeniedException", "ConfigurationSetDoesNotExistException",
                   "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"}
SMTP_POLICY = policy.SMTP.clone(max_line_length=998)
# Answers of the endpoint's front (bad gateway, unavailable, gateway timeout): SES did not take the request.
NOT_PROCESSED_STATUSES = {502, 503, 504}
# Errors raised before a request left this container: sending again is safe.
NOT_SENT_ERRORS = (ConnectTimeoutError, EndpointConnectionError)
# Errors after a request left, with no answer (a read timeout, a connection closed mid-reply) or one that could not be
# read: it may have been sent.
UNANSWERED_ERRORS = (HTTPClientError, ResponseParserError)
# A message the sender no longer holds: left out of the answer, not sent.
NOT_HANDED_OVER = object()


class SesChannel:
    def __init__(self, settings: Settings, client: Any = None, limiter: RateLimiter | SharedRateLimiter | None = None):
        self.timeout = ses_answer_seconds(settings)
        self.client = client or boto3.client(
            "sesv2", region_name=settings.aws_region, endpoint_url=settings.ses_endpoint_url,
            # Retries are ours: a throttled message waits for the rate, a timed-out one is never sent twice.
            config=Config(connect_timeout=SES_CONNECT_SECONDS, read_timeout=self.timeout,
                          retries={"total_max_attempts": 1}))
        self.sender = settings.ses_from_address
        self.configuration_set = settings.ses_configuration_set
        # The account's rate, shared with every other sender through the database.
        self.limiter = limiter or SharedRateLimiter(get_db(settings)[CHANNEL_RATES], "ses", settings.ses_max_per_second)
        # This container's fair share of it, for what a call can count on.
        share = per_second(settings)
        # SES takes no idempotency key: a message it is handed twice is delivered twice.
        self.repeats_safely = False
        self.checked_every = max(1, min(BATCH, int(share) if share > 0 else BATCH))
        # A batch is sent one message at a time and stops at this budget (what it did not reach comes back), so a
        # slow account rate never makes a call longer than the send function can wait for.
        self.attempt_seconds = SES_CONNECT_SECONDS + self.timeout
        self.longest_call_seconds = min((BATCH / share if share > 0 else 0) + ATTEMPTS * self.timeout
                                        + BACKOFF_SECONDS * 2 ** ATTEMPTS, CALL_BUDGET_SECONDS)

    def send(self, messages: list[dict[str, Any]], deadline: float | None = None,
             handing_over: HandingOver | None = None) -> dict[str, Accepted | Rejected | Deferred]:
        """Each message on its own; stops where the deadline (or the batch's own time) would be passed, and the
        messages not reached are left out. A message SES failed, or an account that cannot send now, ends the batch:
        that message and the rest are Deferred. A message handing_over refuses is left out."""
        outcomes: dict[str, Accepted | Rejected] = {}
        stop_at = time.time() + self.longest_call_seconds
        if deadline is not None:
            stop_at = min(stop_at, deadline)
        for index, message in enumerate(messages):
            try:
                outcome = self._send_one(message, stop_at, handing_over)
            except ChannelUnavailable as exc:
                # This message failed (or waits, when SES cannot send now); the rest wait without an attempt.
                outcomes[message["log_id"]] = Deferred(attempted=not exc.waiting, waiting=exc.waiting)
                for rest in messages[index + 1:]:
                    outcomes[rest["log_id"]] = Deferred(attempted=False, waiting=exc.waiting)
                break
            if outcome is None:
                break
            if outcome is not NOT_HANDED_OVER:
                outcomes[message["log_id"]] = outcome
        return outcomes

    def status(self, vendor_message_id: str) -> str | None:
        # SES answers no questions about a message; with no event by now, it has no outcome (no_receipt).
        return "ACCEPTED"

    def _send_one(self, message: dict[str, Any], stop_at: float,
                  handing_over: HandingOver | None) -> Accepted | Rejected | object | None:
        try:
            raw = raw_message(self.sender, message)
        except ValueError as exc:  # a header that cannot be written (a line break in a name)
            return Rejected(f"invalid_message: {exc}"[:200])
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311 - jitter
            # The longest this attempt can take: its wait for the rate, a connection, and SES's answer.
            if not self.limiter.wait(until=stop_at - self.attempt_seconds):
                return None
            if handing_over is not None and not handing_over(message["log_id"]):
                return NOT_HANDED_OVER
            try:
                reply = self.client.send_email(**self._request(message, raw))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in THROTTLED:
                    continue
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in CANNOT_SEND_NOW:
                    raise ChannelUnavailable(f"SES cannot send now ({code})", waiting=True) from exc
                if status in NOT_PROCESSED_STATUSES:
                    raise ChannelUnavailable(f"SES did not take the message ({status})") from exc
                if status >= 500:  # SES failed while it had the message: it may have sent it
                    return Accepted(f"{UNCONFIRMED}{message['log_id']}")
                # The code only: SES's message may quote the address, which an erasure must not leave behind.
                return Rejected(code or "rejected")
            except NOT_SENT_ERRORS:
                continue
            except UNANSWERED_ERRORS:
                # It may have been sent: recorded as sent without SES's id, so it is never sent again; its events
                # (found by the log id tag) or, failing them, the reconciler settle it.
                return Accepted(f"{UNCONFIRMED}{message['log_id']}")
            except BotoCoreError as exc:  # credentials, parameters: nothing left this container
                raise ChannelUnavailable(f"SES could not be called ({type(exc).__name__})", waiting=True) from exc
            return Accepted(reply["MessageId"])
        raise ChannelUnavailable("SES kept throttling", waiting=True)

    def _request(self, message: dict[str, Any], raw: bytes) -> dict[str, Any]:
        request: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [message["to"]["email"]]},
            "Content": {"Raw": {"Data": raw}},
            "EmailTags": [{"Name": "log_id", "Value": message["log_id"]}],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        return request


def raw_message(sender: str, message: dict[str, Any]) -> bytes:
    """The MIME message: plain text and a minimal HTML part, with the one-click unsubscribe headers."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = formataddr((message["to"].get("name") or "", message["to"]["email"]))
    mail["Subject"] = message.get("subject") or ""
    unsubscribe_url = message.get("unsubscribe_url")
    if unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = message["message"]
    mail.set_content(text)
    body = "<br>\n".join(html.escape(line) for line in text.splitlines())
    # ses:no-track: SES's own click tracking (a configuration set publishing clicks) leaves the link as it is, so a
    # click on it is never counted as a click on the message.
    footer = (f'<p style="font-size:small"><a ses:no-track href="{html.escape(unsubscribe_url)}">Unsubscribe</a></p>'
              if unsubscribe_url else "")
    mail.add_alternative(f'<!doctype html><html><body><p>{body}</p>{footer}</body></html>', subtype="html")
    # CRLF line ends, and headers unfolded up to SMTP's limit: a List-Unsubscribe URL stays on its header's line.
    return mail.as_bytes(policy=SMTP_POLICY)
