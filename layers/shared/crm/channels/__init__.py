"""Where a campaign's messages go: the mock vendor (the local default) or Amazon SES e-mail. The send step talks
to one Channel; each implementation says what became of every message it was given."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from crm.config import Settings

# The most messages one send call carries: one queue message of the send step.
BATCH = 100
# The vendor message id of a send that may have been made with no answer to say so: sending it again could deliver
# it twice, so it is recorded as sent, and its events (found by the log id) or the reconciler settle it.
UNCONFIRMED = "unconfirmed:"


def is_unconfirmed(vendor_message_id: str | None) -> bool:
    """Whether a log's vendor message id is the mark of a send made with no id from the vendor."""
    return isinstance(vendor_message_id, str) and vendor_message_id.startswith(UNCONFIRMED)


@dataclass(frozen=True)
class Accepted:
    vendor_message_id: str


@dataclass(frozen=True)
class Rejected:
    """Refused for good: sending again would fail the same way."""
    reason: str


@dataclass(frozen=True)
class Deferred:
    """Not sent now; its message comes back later. attempted: the channel was asked and failed it (5xx, timeouts:
    it counts toward send_failed); waiting: the channel cannot send now (throttling, a quota, sending paused), so
    the message waits without counting."""
    attempted: bool
    waiting: bool


# Called with a log id just before its message is handed over; False: it is no longer the sender's to send.
HandingOver = Callable[[str], bool]
# Seconds one send call may take, waits for the rate included: a send message carries what one call can send.
CALL_BUDGET_SECONDS = 30
# SES: an attempt starts only if a connection and SES's answer still fit in the call (seconds for each).
SES_CONNECT_SECONDS = 3
SES_MAX_READ_SECONDS = 10


class ChannelUnavailable(Exception):
    """5xx, throttling or timeouts outlasted the retries; the send is tried again later. waiting: the channel only
    cannot send now (throttling, a quota, sending paused), which is no failure of the message."""

    def __init__(self, message: str, waiting: bool = False):
        super().__init__(message)
        self.waiting = waiting


class Channel(Protocol):
    # One send() of BATCH messages at the worst: the send step claims logs for this long.
    longest_call_seconds: float
    # What one attempt to hand a message over may take: a call starts no attempt with less time left before its
    # deadline (a campaign's rate waits leave it this much).
    attempt_seconds: float
    # Messages handed over between two consent checks: a channel that sends one message at a time checks again
    # about every second, so that someone who unsubscribes meanwhile is not messaged after that.
    checked_every: int
    # Whether a message handed over twice is sent once (the vendor takes the log id as its idempotency key). A
    # channel that cannot tell a repeat from a new message is handed one message at a time, each marked first.
    repeats_safely: bool

    def send(self, messages: list[dict[str, Any]], deadline: float | None = None,
             handing_over: HandingOver | None = None) -> dict[str, Accepted | Rejected | Deferred]:
        """Messages ({log_id, to, message, subject?, unsubscribe_url?}); the outcome of each by log_id. A log the
        answer leaves out was not reached (its message comes back at once); ChannelUnavailable means none was sent.
        No attempt starts that could outlast the deadline
        (seconds since the epoch). A channel that does not repeat safely calls handing_over just before each
        attempt to hand a message over, and skips the message if it answers False."""

    def status(self, vendor_message_id: str) -> str | None:
        """What the channel says became of a message (SENT, FAILED, or still ACCEPTED); None when it cannot say."""


def per_second(settings: Settings) -> float:
    """This container's share of the channel's rate (0: unlimited)."""
    if settings.channel == "ses":
        return settings.ses_max_per_second / max(1, settings.send_concurrency)
    return settings.vendor_max_per_second


def ses_answer_seconds(settings: Settings) -> float:
    """How long an SES send waits for SES's answer: SES answers in well under a second, and a longer wait (the mock
    vendor's VENDOR_TIMEOUT_SECONDS, whose call carries a hundred messages) would leave no room for an attempt."""
    return min(settings.vendor_timeout_seconds, SES_MAX_READ_SECONDS)


def sends_per_message(settings: Settings) -> int:
    """What one send call can send at the channel's rate within its budget: a send message carries no more, so that
    nothing it carries waits for a call that cannot reach it."""
    rate = per_second(settings)
    sending_seconds = CALL_BUDGET_SECONDS
    if settings.channel == "ses":  # the last attempt must leave room for its connection and SES's answer
        sending_seconds -= SES_CONNECT_SECONDS + ses_answer_seconds(settings)
    return BATCH if rate <= 0 else max(1, min(BATCH, int(rate * sending_seconds)))


_channels: dict[tuple[Any, ...], Channel] = {}


def get_channel(settings: Settings) -> Channel:
    """The configured channel, one per container (each keeps its connections and its rate)."""
    if settings.channel == "ses":
        from crm.channels.ses import SesChannel  # boto3's SES client only where e-mail is sent

        key: tuple[Any, ...] = ("ses", settings.ses_from_address, settings.ses_configuration_set,
                                settings.ses_max_per_second, settings.ses_endpoint_url)
        factory: Any = SesChannel
    else:
        from crm.channels.mock import MockChannel

        key, factory = ("mock", settings.vendor_url, settings.vendor_max_per_second), MockChannel
    if key not in _channels:
        _channels[key] = factory(settings)
    return _channels[key]
