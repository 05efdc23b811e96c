"""A campaign's report (`GET /api/campaigns/{id}/report`): its funnel, rates, revenue, links, variants and the
control group's lift, read from the counters the roll-up keeps on the campaign document: one read, whatever the
campaign's size (counting its logs inside a request would grow with the audience)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from crm.models.campaigns import Stats


class Funnel(BaseModel):
    audience: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    converted: int
    unsubscribed: int
    bounced: int
    complained: int


class Rates(BaseModel):
    """Fractions of `sent` (0 while nothing was sent)."""
    delivery: float
    open: float
    click: float
    conversion: float
    unsubscribe: float


class LinkResult(BaseModel):
    url: str
    clicks: int
    recipients: int


class VariantResult(BaseModel):
    name: str
    # The variant's messages sent (the rates a test compares are per sent message).
    recipients: int
    opened: int
    clicked: int
    converted: int
    revenue: float
    winner: bool


class ControlResult(BaseModel):
    recipients: int
    converted: int
    conversion_rate: float
    # The treatment's conversion rate ÷ the control's − 1; None when the control converted nobody.
    lift: float | None
    revenue: float


class CampaignReport(BaseModel):
    campaign_id: str
    funnel: Funnel
    rates: Rates
    revenue: float
    links: list[LinkResult]
    variants: list[VariantResult]
    control: ControlResult | None


def report(campaign: dict[str, Any], delivery_reported: bool) -> CampaignReport:
    """delivery_reported: the channel reports deliveries (e-mail); the mock vendor's SENT receipt is its delivery."""
    stats = Stats(**campaign["stats"])
    delivered = stats.delivered if delivery_reported else stats.sent
    funnel = Funnel(audience=stats.audience, sent=stats.sent, delivered=delivered, opened=stats.opened,
                    clicked=stats.clicked, converted=stats.converted, unsubscribed=stats.unsubscribed,
                    bounced=stats.bounced, complained=stats.complained)
    rates = Rates(**{name: _share(getattr(funnel, counter), stats.sent) for name, counter in (
        ("delivery", "delivered"), ("open", "opened"), ("click", "clicked"), ("conversion", "converted"),
        ("unsubscribe", "unsubscribed"))})
    return CampaignReport(campaign_id=str(campaign["_id"]), funnel=funnel, rates=rates, revenue=stats.revenue,
                          links=_links(campaign), variants=_variants(campaign),
                          control=_control(campaign, rates.conversion))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _links(campaign: dict[str, Any]) -> list[LinkResult]:
    counted = campaign.get("link_stats") or {}
    return [LinkResult(url=url, clicks=counted.get(str(place), {}).get("clicks", 0),
                       recipients=counted.get(str(place), {}).get("recipients", 0))
            for place, url in enumerate(campaign.get("links") or [])]


def _variants(campaign: dict[str, Any]) -> list[VariantResult]:
    counted = campaign.get("variant_stats") or {}
    results = []
    for place, variant in enumerate(campaign.get("variants") or []):
        row = counted.get(str(place), {})
        results.append(VariantResult(name=variant["name"], recipients=row.get("sent", 0), opened=row.get("opened", 0),
                                     clicked=row.get("clicked", 0), converted=row.get("converted", 0),
                                     revenue=round(row.get("revenue", 0.0), 2),
                                     winner=campaign.get("winner") == variant["name"]))
    return results


def _control(campaign: dict[str, Any], treatment_rate: float) -> ControlResult | None:
    if not campaign.get("control_percent"):
        return None
    control = campaign.get("control") or {}
    recipients, converted = control.get("recipients", 0), control.get("converted", 0)
    rate = _share(converted, recipients)
    return ControlResult(recipients=recipients, converted=converted, conversion_rate=rate,
                         lift=treatment_rate / rate - 1 if converted else None,
                         revenue=round(control.get("revenue", 0.0), 2))
