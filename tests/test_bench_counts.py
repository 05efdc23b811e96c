"""The benchmarks' counts are counted (a small campaign through the local stack), and bench.cost prices them right."""
from __future__ import annotations

import time

import httpx
import pytest
from bson import ObjectId
from pymongo import MongoClient

from bench import cost
from bench._stack import local_stack
from bench.fanout import MOCK_ENV, everyone_segment, seed_customers
from crm.db import ensure_indexes
from offline.counting import difference, totals

RECIPIENTS = 20


def test_a_campaign_through_the_local_stack_is_counted():
    with local_stack(extra_env=MOCK_ENV, count=True) as stack:
        runner = stack["runner"]
        db = MongoClient(stack["mongo_uri"], tz_aware=True)[stack["env"]["MONGO_DB"]]
        seed_customers(db, RECIPIENTS)
        ensure_indexes(db)
        with httpx.Client(base_url=stack["url"], timeout=60) as http:
            segment = everyone_segment(http)
            before = runner.counts()
            reply = http.post("/api/campaigns", json={"name": "Counted", "segment_id": segment["id"],
                                                      "message": "Hi {{name}}"})
            reply.raise_for_status()
        campaign_id = ObjectId(reply.json()["id"])
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            counts = difference(runner.counts(), before)
            sent = db.campaigns.find_one({"_id": campaign_id})["stats"]["sent"]
            if counts.get("functions", {}).get("CampaignSendFunction", {}).get("invocations") and sent:
                break
            time.sleep(0.5)
    figures = totals(counts)
    assert figures["mongo_commands"] > 0
    assert figures["campaign_writes"] > 0
    assert figures["sqs_requests"] > figures["sqs_empty_receives"] > 0  # the functions' sends and the polls
    assert figures["api_requests"] >= 1 and figures["lambda_gb_seconds"] > 0
    functions = counts["functions"]
    assert functions["CampaignsFunction"]["invocations"] >= 1 and functions["CampaignsFunction"]["http.api"] >= 1
    assert sum(n for key, n in functions["CampaignFanoutFunction"].items() if key.startswith("aws.sqs.Send")) >= 1
    assert functions["CampaignSendFunction"]["invocations"] >= 1
    assert functions["CampaignSendFunction"]["gb_seconds"] == pytest.approx(
        (functions["CampaignSendFunction"]["seconds"] + functions["CampaignSendFunction"]["init_seconds"]) * 0.5,
        abs=0.01)  # MemorySize 512 (Globals)
    assert counts["runner"]["aws.sqs.ReceiveMessage"] > 0


def test_a_runner_that_was_not_asked_does_not_count():
    with local_stack() as stack:
        with pytest.raises(RuntimeError):
            stack["runner"].counts()
        assert not any("--count" in pool.worker_args for pool in stack["runner"].pools.values())


def test_difference_and_totals_are_plain_arithmetic():
    before = {"functions": {"F": {"invocations": 1, "mongo.find": 2}}, "runner": {"aws.sqs.ReceiveMessage": 5}}
    after = {"functions": {"F": {"invocations": 3, "mongo.find": 2, "mongo.update": 4, "campaign_writes": 4},
                           "G": {"invocations": 1}},
             "runner": {"aws.sqs.ReceiveMessage": 8, "sqs_billed": 3, "sqs_empty_receives": 2}}
    assert difference(after, before) == {
        "functions": {"F": {"invocations": 2, "mongo.update": 4, "campaign_writes": 4}, "G": {"invocations": 1}},
        "runner": {"aws.sqs.ReceiveMessage": 3, "sqs_billed": 3, "sqs_empty_receives": 2}}
    figures = totals(difference(after, before))
    assert (figures["mongo_commands"], figures["campaign_writes"], figures["lambda_invocations"]) == (4, 4, 3)
    assert (figures["sqs_requests"], figures["sqs_billed_requests"], figures["sqs_empty_receives"]) == (3, 1, 2)
    # A send SES refused (throttled, say) was a call, not an e-mail.
    assert totals({"functions": {"S": {"aws.sesv2.SendEmail": 5, "aws_errors.sesv2.SendEmail": 1}}})["ses_emails"] == 4


def test_cost_prices_counts_per_million_recipients_and_names_the_largest_line():
    # 1,000 recipients: 100 GB-s, 50 invocations, 10 API requests, 300 SQS chunks (+ 7 empty receives), 950 e-mails.
    counts = {"functions": {"CampaignSendFunction": {"invocations": 50, "gb_seconds": 100.0, "http.api": 10,
                                                     "aws.sesv2.SendEmail": 950, "mongo.find": 200}},
              "runner": {"aws.sqs.ReceiveMessage": 307, "sqs_billed": 307, "sqs_empty_receives": 7}}
    lines = cost.dollars(totals(counts), 1000)
    assert lines == pytest.approx({
        cost.LAMBDA_COMPUTE: 100_000 * 0.0000133334,  # 1.33
        "Lambda requests (and Function URL calls)": 50_000 * 0.20 / 1e6,  # 0.01
        "API Gateway HTTP API requests": 10_000 * 1.00 / 1e6,  # 0.01
        "SQS requests (64 KB chunks)": 300_000 * 0.40 / 1e6,  # 0.12
        "SES e-mails": 950_000 * 0.10 / 1000})  # 95.00
    assert cost.largest(lines) == "SES e-mails"
    run = {"recipients": 1000, "seconds": 10.0, "send_seconds": 5.0, "counts": counts}
    assert cost.report({"ses": run})["ses"] == lines


def test_atlas_tier_follows_the_rule_of_thumb():
    assert cost.atlas_tier(1).name == "M10"
    assert cost.atlas_tier(501).name == "M30"  # M20 has the M10's shared vCPUs: more memory, no more commands
    assert cost.atlas_tier(1001).name == "M40"
    assert cost.atlas_tier(1_000_000) is None
