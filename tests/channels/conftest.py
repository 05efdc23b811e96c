"""The e-mail channel against moto's SES (the same moto server as SQS), with a verified sender."""
from __future__ import annotations

import boto3
import pytest

SENDER = "news@shop.example.com"
FANOUT, SEND = "CampaignFanoutQueue", "CampaignSendQueue"


@pytest.fixture
def ses_env(env, sqs_server, monkeypatch):
    from crm.config import get_settings

    for key, value in {"CHANNEL": "ses", "SES_ENDPOINT_URL": sqs_server.url, "SES_FROM_ADDRESS": SENDER,
                       "SES_CONFIGURATION_SET": "mini-crm-test", "SES_MAX_PER_SECOND": "0"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    boto3.client("ses", endpoint_url=sqs_server.url, region_name="us-east-1").verify_email_identity(
        EmailAddress=SENDER)
    yield
    get_settings.cache_clear()


@pytest.fixture
def ses_channel(ses_env):
    from crm.channels import get_channel
    from crm.config import get_settings

    return get_channel(get_settings())


@pytest.fixture
def email_campaign(api, consumers, ses_env):
    """Customers, a segment of them all and an e-mail campaign, fanned out (its sends queued, not sent)."""
    def make(count: int = 3, subject: str = "Hello {{name}}") -> str:
        api.post("/api/customers", {"customers": [
            {"name": f"Person {i}", "email": f"p{i}@example.com", "attributes": {"city": "Pune"}}
            for i in range(count)]})
        consumers.drain("CustomerIngestQueue")
        status, segment, _ = api.post("/api/segments", {"name": "All", "rules": {
            "field": "visits", "op": ">=", "value": 0}})
        assert status == 201, segment
        status, campaign, _ = api.post("/api/campaigns", {
            "name": "Sale", "segment_id": segment["id"], "subject": subject,
            "message": "Hi {{name}} in {{attributes.city}}.\nUnsubscribe: {{unsubscribe_url}}"})
        assert status == 202, campaign
        consumers.drain(FANOUT)
        return campaign["id"]
    return make
