"""Moves every message of a local dead-letter queue back to the queue it came from, once its cause is fixed:
the local form of `aws sqs start-message-move-task --source-arn <DLQ arn>` (moto has no move tasks).

    python -m offline.redrive OrderIngestDLQ      # with SQS_ENDPOINT_URL pointing at the local SQS
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import boto3

from offline import template

ROOT = Path(__file__).resolve().parent.parent


def source_of(dead_letter_queue: str) -> str:
    """The template's queue whose redrive policy names this dead-letter queue."""
    for spec in template.load(ROOT / "template.yaml").queues.values():
        if spec.dead_letter_queue == dead_letter_queue:
            return spec.name
    raise SystemExit(f"{dead_letter_queue} is no queue's dead-letter queue in template.yaml")


def redrive(sqs, dead_letter_url: str, source_url: str) -> int:
    """Sends each message to the source queue before deleting it here, so a crash between the two can only
    repeat a message (every consumer is idempotent), never lose one. Returns how many moved."""
    moved = 0
    while True:
        messages = sqs.receive_message(QueueUrl=dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=60).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.redrive", description=__doc__.splitlines()[0])
    parser.add_argument("dead_letter_queue", help="its name in template.yaml, e.g. OrderIngestDLQ")
    args = parser.parse_args(argv)
    sqs = boto3.client("sqs", endpoint_url=os.environ.get("SQS_ENDPOINT_URL"),
                       region_name=os.environ.get("AWS_REGION", "us-east-1"))
    source = source_of(args.dead_letter_queue)
    dead_letter_url = sqs.get_queue_url(QueueName=args.dead_letter_queue)["QueueUrl"]
    source_url = sqs.get_queue_url(QueueName=source)["QueueUrl"]
    print(f"{redrive(sqs, dead_letter_url, source_url)} message(s) moved to {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
