"""Fault mode: each fault, at probability 1 and a fixed seed, does what it says and is counted in
GET /_offline/faults."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import pytest

from offline import http_faults
from offline.faults import KNOWN, Faults
from offline.invoker import WorkerKilled
from tests.offline.conftest import records, wait_for

SECRET = "fault-mode-webhook-secret"
SEED = "20261126"

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    Environment:
      Variables:
        RECORDS: "{dir}"
        WEBHOOK_SECRET: ""
Resources:
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 60}
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: consumer/
      Handler: app.handler
      Events:
        Queue:
          Type: SQS
          Properties: {Queue: !GetAtt WorkQueue.Arn, BatchSize: 1, FunctionResponseTypes: [ReportBatchItemFailures]}
  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: api/
      Handler: app.handler
      Events:
        Things: {Type: HttpApi, Properties: {Path: /api/things, Method: POST}}
  VendorFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: api/
      Handler: app.handler
      Events:
        Send: {Type: HttpApi, Properties: {Path: /api/mock-send, Method: POST}}
  ReceiptsFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: receipts/
      Handler: app.handler
      FunctionUrlConfig: {AuthType: NONE}
      Events:
        Root: {Type: HttpApi, Properties: {Path: /api/delivery-receipt, Method: POST}}
"""

FUNCTIONS = {
    "consumer": '''
        def handler(event, context):
            for r in event["Records"]:
                fields = dict(body=r["body"], message_id=r["messageId"],
                              receives=r["attributes"]["ApproximateReceiveCount"])
                record(os.environ["RECORDS"] + "/consumer.jsonl", phase="start", **fields)
                time.sleep(json.loads(r["body"]).get("sleep", 0))
                record(os.environ["RECORDS"] + "/consumer.jsonl", phase="end", **fields)
    ''',
    "api": '''
        def handler(event, context):
            name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
            record(os.environ["RECORDS"] + "/" + name + ".jsonl", body=event.get("body"))
            return {"statusCode": 202, "headers": {"content-type": "application/json"},
                    "body": json.dumps({"pid": os.getpid()})}
    ''',
    "receipts": '''
        import hashlib, hmac

        def handler(event, context):
            headers, body = event["headers"], event.get("body") or ""
            timestamp = headers.get("x-vendor-timestamp", "")
            expected = hmac.new(os.environ["WEBHOOK_SECRET"].encode(), f"{timestamp}.{body}".encode(),
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, headers.get("x-vendor-signature", "")) \\
                    or abs(time.time() - int(timestamp)) > 300:
                return {"statusCode": 401, "body": json.dumps({"error": {"code": "invalid_signature"}})}
            receipts = json.loads(body)["receipts"]
            for receipt in receipts:
                record(os.environ["RECORDS"] + "/receipts.jsonl", log_id=receipt["log_id"], timestamp=timestamp)
            return {"statusCode": 202, "headers": {"content-type": "application/json"},
                    "body": json.dumps({"accepted": len(receipts), "ignored": 0})}
    ''',
}


@pytest.fixture
def stack(small):
    small.write(TEMPLATE, FUNCTIONS)

    def start(spec: str, time_scale: float = 30, **options):
        small.start({"WEBHOOK_SECRET": SECRET}, time_scale=time_scale, faults=Faults.parse(spec, SEED), **options)
        return small

    return start


def _signed_report(log_ids: list[str], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"receipts": [{"vendor_message_id": f"vm_{i}", "log_id": i, "status": "SENT",
                                     "timestamp": "2026-11-26T10:00:00Z"} for i in log_ids]}).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Vendor-Timestamp": timestamp, "X-Vendor-Signature": signature,
                  "Content-Type": "application/json"}


def _only(injected: dict[str, int], name: str) -> int:
    assert set(injected) == set(KNOWN), injected
    assert all(n == 0 for other, n in injected.items() if other != name), injected
    return injected[name]


def test_without_faults_every_count_is_zero(stack):
    small = stack("")
    assert small.http.get("/_offline/faults").json() == {"injected": dict.fromkeys(KNOWN, 0)}
    assert small.http.post("/api/things", content=b"{}").status_code == 202


def test_sqs_dup_delivers_to_a_second_worker_at_once_or_again_after_success(stack):
    small = stack("sqs_dup=1", max_consumers=1)
    for i in range(3):
        small.send("WorkQueue", json.dumps({"n": i, "sleep": 0.5}))

    def both_kinds():
        ends = [r for r in records(small.record_file("consumer")) if r["phase"] == "end"]
        by_id: dict[str, list] = {}
        by_body: dict[str, set] = {}
        for r in ends:
            by_id.setdefault(r["message_id"], []).append(r)
            by_body.setdefault(r["body"], set()).add(r["message_id"])
        concurrent = [rs for rs in by_id.values() if len({r["pid"] for r in rs}) >= 2]
        again = [ids for ids in by_body.values() if len(ids) >= 2]
        return len(by_body) == 3 and concurrent and again and (concurrent, again)

    concurrent, again = wait_for(both_kinds, 20, what="a concurrent and a later duplicate")
    first, second = sorted(concurrent[0], key=lambda r: r["at"])[:2]
    assert second["at"] - first["at"] < 0.5, "the two deliveries ran side by side"
    assert _only(small.injected(), "sqs_dup") >= 3
    assert "also to a second Consumer" in small.log.getvalue() and "delivered again in" in small.log.getvalue()


def test_sqs_kill_kills_the_consumer_mid_batch_and_the_batch_returns_after_the_visibility_timeout(stack):
    small = stack("sqs_kill=1")  # the kill comes within 2 s; this handler takes 4
    small.send("WorkQueue", json.dumps({"sleep": 4}))
    starts = wait_for(lambda: len(got := [r for r in records(small.record_file("consumer"))
                                          if r["phase"] == "start"]) >= 2 and got, 20, what="a redelivery")
    # A kill may also land before the handler's first write (while the worker starts): the receive count tells.
    receives = [int(r["receives"]) for r in starts[:2]]
    assert receives[0] < receives[1] and starts[0]["message_id"] == starts[1]["message_id"]
    assert starts[1]["at"] - starts[0]["at"] >= 1.5, "not visible again before the (scaled, 2 s) visibility timeout"
    with pytest.raises(ProcessLookupError):
        os.kill(starts[0]["pid"], 0)
    assert not [r for r in records(small.record_file("consumer")) if r["phase"] == "end"]
    assert _only(small.injected(), "sqs_kill") >= receives[1] - 1
    small.runner.stop()  # no more kills while counting them
    killed = small.runner.faults.injected()["sqs_kill"]
    assert killed == small.log.getvalue().count("sqs_kill: Consumer killed")
    assert f"faults injected: sqs_dup=0, sqs_kill={killed}, api_kill=0" in small.log.getvalue()


def test_a_kill_that_comes_after_the_invocation_ended_is_no_kill(stack):
    small = stack("")
    event = {"Records": []}
    assert small.runner.invoke("Consumer", event, kill_after=3) is None
    with pytest.raises(WorkerKilled):
        small.runner.invoke("Consumer", {"Records": [{"body": json.dumps({"sleep": 3}), "messageId": "m",
                                                      "attributes": {"ApproximateReceiveCount": "1"}}]},
                            kill_after=0.5)


def test_api_kill_answers_502_after_the_handler_wrote_and_kills_its_worker(stack):
    small = stack("api_kill=1")
    reply = small.http.post("/api/things", content=b'{"thing": 1}')
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["code"] == "function_error" and error["details"] == [] and "exited" in error["message"]
    written = records(small.record_file("Api"))
    assert [r["body"] for r in written] == ['{"thing": 1}'], "the write happened before the reply was lost"
    with pytest.raises(ProcessLookupError):
        os.kill(written[0]["pid"], 0)
    assert _only(small.injected(), "api_kill") == 1
    # Neither the vendor's route nor a Function URL is an API reply to lose.
    assert small.http.post("/api/mock-send", content=b"{}").status_code == 202
    body, headers = _signed_report(["a"])
    assert small.http.post("/_url/ReceiptsFunction/api/delivery-receipt", content=body,
                           headers=headers).status_code == 202
    assert _only(small.injected(), "api_kill") == 1


def test_vendor_error_refuses_or_fails_or_hangs_after_accepting(stack, monkeypatch):
    monkeypatch.setattr(http_faults, "VENDOR_HOLD_SECONDS", 0.3)
    small = stack("vendor_error=1")
    statuses = []
    for i in range(9):
        started = time.monotonic()
        reply = small.http.post("/api/mock-send", content=json.dumps({"n": i}).encode())
        statuses.append(reply.status_code)
        assert set(reply.json()["error"]) == {"code", "message", "details"}
        if reply.status_code == 504:
            assert time.monotonic() - started >= 0.3
    assert set(statuses) == {503, 500, 504}, statuses
    accepted = [json.loads(r["body"])["n"] for r in records(small.record_file("VendorFunction"))]
    assert accepted == [i for i, status in enumerate(statuses) if status != 503], "503 alone never reached it"
    assert _only(small.injected(), "vendor_error") == 9


def _report(small, log_ids: list[str]):
    body, headers = _signed_report(log_ids)
    return small.http.post("/_url/ReceiptsFunction/api/delivery-receipt", content=body, headers=headers)


def test_receipt_drop_loses_each_receipt_yet_the_vendor_hears_accepted(stack):
    small = stack("receipt_drop=1")
    reply = _report(small, ["a", "b", "c"])
    assert (reply.status_code, reply.json()) == (202, {"accepted": 3, "ignored": 0})
    time.sleep(0.5)
    assert records(small.record_file("receipts")) == []
    assert _only(small.injected(), "receipt_drop") == 3


def test_receipt_dup_delivers_each_receipt_twice(stack):
    small = stack("receipt_dup=1")
    reply = _report(small, ["a", "b"])
    assert (reply.status_code, reply.json()) == (202, {"accepted": 2, "ignored": 0})
    assert sorted(r["log_id"] for r in records(small.record_file("receipts"))) == ["a", "a", "b", "b"]
    assert _only(small.injected(), "receipt_dup") == 2


def test_receipt_late_comes_later_signed_afresh(stack):
    small = stack("receipt_late=1", time_scale=60)  # 30-120 s late becomes 0.5-2 s
    sent = time.time()
    reply = _report(small, ["a", "b"])
    assert (reply.status_code, reply.json()) == (202, {"accepted": 2, "ignored": 0})
    assert records(small.record_file("receipts")) == []
    late = wait_for(lambda: len(got := records(small.record_file("receipts"))) >= 2 and got, 10, what="late receipts")
    assert sorted(r["log_id"] for r in late) == ["a", "b"]
    assert all(0.4 <= r["at"] - sent <= 3 for r in late), [r["at"] - sent for r in late]
    assert _only(small.injected(), "receipt_late") == 2


def test_a_report_that_is_not_validly_signed_reaches_the_function_untouched(stack):
    small = stack("receipt_drop=1,receipt_dup=1,receipt_late=1")
    body, headers = _signed_report(["a"], secret="not-the-secret")
    reply = small.http.post("/_url/ReceiptsFunction/api/delivery-receipt", content=body, headers=headers)
    assert reply.status_code == 401
    assert small.injected() == dict.fromkeys(KNOWN, 0)


def test_the_webhook_secret_comes_from_the_env_then_the_config_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"WEBHOOK_SECRET": "from-config"}))
    assert http_faults.webhook_secret({"WEBHOOK_SECRET": "from-env", "CRM_CONFIG_FILE": str(config)}) == "from-env"
    assert http_faults.webhook_secret({"WEBHOOK_SECRET": "", "CRM_CONFIG_FILE": str(config)}) == "from-config"
    assert http_faults.webhook_secret({"CRM_CONFIG_FILE": str(tmp_path / "missing.json")}) is None
