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


# Called with a log id just before its message is handed over; False: it is no longer the sender's to send.
HandingOver = Callable[[str], bool]


class ChannelUnavailable(Exception):
    """5xx, throttling or timeouts outlasted the retries; the send is tried again later."""


class Channel(Protocol):
    # One send() of BATCH messages at the worst: the send step claims logs for this long.
    longest_call_seconds: float
    # Messages handed over between two consent checks: a channel that sends one message at a time checks again
    # about every second, so that someone who unsubscribes meanwhile is not messaged after that.
    checked_every: int
    # Whether a message handed over twice is sent once (the vendor takes the log id as its idempotency key). A
    # channel that cannot tell a repeat from a new message is handed one message at a time, each marked first.
    repeats_safely: bool

    def send(self, messages: list[dict[str, Any]], deadline: float | None = None,
             handing_over: HandingOver | None = None) -> dict[str, Accepted | Rejected]:
        """Messages ({log_id, to, message, subject?, unsubscribe_url?}); the outcome of each by log_id. A log the
        answer leaves out was not sent (its message comes back). No attempt starts that could outlast the deadline
        (seconds since the epoch). A channel that does not repeat safely calls handing_over just before each
        attempt to hand a message over, and skips the message if it answers False."""

    def status(self, vendor_message_id: str) -> str | None:
        """What the channel says became of a message (SENT, FAILED, or still ACCEPTED); None when it cannot say."""


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
