"""The runner behaves as AWS by default: failed batches wait out the queue's visibility timeout, delays hold,
both scaled by the time scale, and a function sees only the environment its template declares."""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import pytest

from offline.runner import OfflineRunner
from tests.offline.conftest import records, wait_for

# 12x: the template's 60 s visibility timeouts and delays become 5 s here (the old fixed retry was 2 s).
SCALE = 12
SCALED = 60 / SCALE

SQS_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    Environment:
      Variables:
        RECORDS: "{dir}"
Resources:
  FailQueue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 60}
  SlowQueue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 60}
  DelayedQueue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 60, DelaySeconds: 60}
  PlainQueue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 60}
  Failing:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: failing/
      Handler: app.handler
      Events:
        Queue: {Type: SQS, Properties: {Queue: !GetAtt FailQueue.Arn, BatchSize: 1}}
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: slow/
      Handler: app.handler
      Timeout: 1
      Events:
        Queue: {Type: SQS, Properties: {Queue: !GetAtt SlowQueue.Arn, BatchSize: 1}}
  Recorder:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: recorder/
      Handler: app.handler
      Events:
        Delayed: {Type: SQS, Properties: {Queue: !GetAtt DelayedQueue.Arn}}
        Plain: {Type: SQS, Properties: {Queue: !GetAtt PlainQueue.Arn}}
  Sender:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: sender/
      Handler: app.handler
      Environment:
        Variables:
          QUEUE_URL: !Ref PlainQueue
      Events:
        Send: {Type: HttpApi, Properties: {Path: /send, Method: POST}}
"""

SQS_FUNCTIONS = {
    "failing": '''
        def handler(event, context):
            for r in event["Records"]:
                record(os.environ["RECORDS"] + "/failing.jsonl", body=r["body"],
                       receives=r["attributes"]["ApproximateReceiveCount"])
                if r["attributes"]["ApproximateReceiveCount"] == "1":
                    raise RuntimeError("the first delivery fails")
    ''',
    "slow": '''
        def handler(event, context):
            r = event["Records"][0]
            record(os.environ["RECORDS"] + "/slow.jsonl", body=r["body"],
                   receives=r["attributes"]["ApproximateReceiveCount"])
            if r["attributes"]["ApproximateReceiveCount"] == "1":
                time.sleep(4)
    ''',
    "recorder": '''
        def handler(event, context):
            for r in event["Records"]:
                record(os.environ["RECORDS"] + "/recorder.jsonl", body=r["body"])
    ''',
    "sender": '''
        import boto3

        def handler(event, context):
            sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT_URL"])
            url = os.environ["QUEUE_URL"]
            sqs.send_message(QueueUrl=url, MessageBody="one", DelaySeconds=60)
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "batched", "DelaySeconds": 60}])
            record(os.environ["RECORDS"] + "/sender.jsonl", body="short")
            sqs.send_message(QueueUrl=url, MessageBody="short", DelaySeconds=2)
            return {"statusCode": 202, "body": ""}
    ''',
}


def test_failed_and_timed_out_batches_come_back_after_the_scaled_visibility_timeout(small):
    small.write(SQS_TEMPLATE, SQS_FUNCTIONS)
    small.start(time_scale=SCALE)
    attributes = small.sqs.get_queue_attributes(QueueUrl=small.queues["FailQueue"].url,
                                                AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(round(SCALED))
    small.send("FailQueue", "poison-once")
    small.send("SlowQueue", "slow-once")

    failing = wait_for(lambda: len(got := records(small.record_file("failing"))) >= 2 and got, 20, what="redelivery")
    assert [r["receives"] for r in failing[:2]] == ["1", "2"]
    waited = failing[1]["at"] - failing[0]["at"]
    assert SCALED - 1 <= waited <= SCALED + 2.5, f"redelivered after {waited:.1f} s"

    slow = wait_for(lambda: len(got := records(small.record_file("slow"))) >= 2 and got, 20,
                    what="timed-out redelivery")
    assert [r["receives"] for r in slow[:2]] == ["1", "2"], "the batch of the killed invocation was not deleted"
    waited = slow[1]["at"] - slow[0]["at"]
    assert SCALED - 1 <= waited <= SCALED + 2.5, f"redelivered after {waited:.1f} s, not when the timeout hit (1 s)"
    assert "Slow timed out after 1 s" in small.log.getvalue()
    time.sleep(1)
    assert len(records(small.record_file("failing"))) == 2 and len(records(small.record_file("slow"))) == 2


def test_each_queue_has_the_arn_sqs_gives_it(sqs):
    from offline import services, template
    from tests.conftest import TEMPLATE

    queues = services.create_queues(sqs, template.load(TEMPLATE).queues, f"a{uuid.uuid4().hex[:10]}-")
    for queue in queues.values():
        assert queue.arn == sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]


def test_queue_and_message_delays_are_scaled(small):
    small.write(SQS_TEMPLATE, SQS_FUNCTIONS)
    small.start(time_scale=SCALE)
    sent = time.time()
    small.send("DelayedQueue", "queue-delayed")
    assert small.http.post("/send").status_code == 202
    arrived = wait_for(lambda: len(got := records(small.record_file("recorder"))) >= 4 and got, 20,
                       what="four delayed messages")
    by_body = {r["body"]: r["at"] - sent for r in arrived}
    assert set(by_body) == {"queue-delayed", "one", "batched", "short"}
    for body in ("queue-delayed", "one", "batched"):
        after = by_body[body]
        assert SCALED - 1 <= after <= SCALED + 3, f"{body} arrived after {after:.1f} s, not ~{SCALED:g} s"
    # A delay shorter than the scale is not rounded away: a job queued just before its request's write still finds it.
    [short_sent] = [r["at"] for r in records(small.record_file("sender")) if r["body"] == "short"]
    short_after = next(r["at"] for r in arrived if r["body"] == "short") - short_sent
    assert short_after >= 0.9, f"a 2 s delay at {SCALE}x held {short_after:.2f} s, not the 1 s it keeps"


ENV_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Runtime: python3.11
    Environment:
      Variables:
        GLOBAL_SETTING: from-globals
        MONGO_URI: ""
Resources:
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Environment:
        Variables:
          OWN: !Ref Greeting
          DECLARED: from-template
          BLANK: ""
      Events:
        Env: {Type: HttpApi, Properties: {Path: /env, Method: GET}}
  Other:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Events:
        Env: {Type: HttpApi, Properties: {Path: /other/env, Method: GET}}
"""

ECHO = {"echo": '''
    def handler(event, context):
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps(dict(os.environ))}
'''}


def test_a_function_sees_only_its_declared_environment_and_the_local_plumbing(small, tmp_path):
    small.write(ENV_TEMPLATE, ECHO)
    config = tmp_path / "config.json"
    small.start({"DECLARED": "from-runner", "BLANK": "filled", "UNDECLARED": "must not leak",
                 "MOCK_VENDOR_DELAY_SECONDS": "0", "OFFLINE_FAULTS": "sqs_dup=1", "MONGO_URI": "mongodb://db:1/",
                 "CRM_CONFIG_FILE": str(config), "JWT_SECRET": "not declared here"})
    seen = small.http.get("/env").json()
    host = {key: value for key, value in os.environ.items()
            if key in ("PATH", "HOME", "LANG", "TMPDIR") or re.fullmatch(r"LC_[A-Z]+", key)}
    plumbing = {"MONGO_URI": "mongodb://db:1/", "SQS_ENDPOINT_URL": small.sqs_url, "CRM_CONFIG_FILE": str(config),
                "AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    declared = {"GLOBAL_SETTING": "from-globals", "OWN": "hello", "DECLARED": "from-runner", "BLANK": "filled"}
    lambda_names = {"AWS_LAMBDA_FUNCTION_NAME": "Echo", "POWERTOOLS_SERVICE_NAME": "Echo",
                    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11"}
    pythonpath = seen.pop("PYTHONPATH")
    assert seen == {**host, **plumbing, **declared, **lambda_names}
    assert os.path.isdir(os.path.join(pythonpath.split(os.pathsep)[-1], "offline"))

    other = small.http.get("/other/env").json()
    assert "OWN" not in other and "DECLARED" not in other and other["GLOBAL_SETTING"] == "from-globals"
    assert other["AWS_LAMBDA_FUNCTION_NAME"] == "Other"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_the_time_scale_must_be_a_positive_number(bad):
    with pytest.raises(ValueError, match="time_scale"):
        OfflineRunner(None, {}, {}, time_scale=bad)


def test_a_request_takes_the_most_specific_route_as_api_gateway_routes_it():
    """API Gateway's order: an exact path before one with a variable, a variable before a greedy {proxy+}; a route
    serves only its own method (ANY serves them all), so another method falls through to a less specific route."""
    from offline.template import FunctionSpec, HttpRoute, Template

    routes = {"Greedy": [HttpRoute("ANY", "/api/campaigns/{proxy+}"), HttpRoute("ANY", "/api/campaigns")],
              "Variable": [HttpRoute("GET", "/api/campaigns/{id}")],
              "Exact": [HttpRoute("POST", "/api/campaigns/test-send")]}
    functions = {name: FunctionSpec(name, Path(name), "app.handler", 15, 512, {}, routes=own)
                 for name, own in routes.items()}
    stack = Template(Path("."), {}, {}, functions, {}, [])
    assert stack.route("POST", "/api/campaigns/test-send")[0] == "Exact"
    assert stack.route("GET", "/api/campaigns/test-send")[:3] == ("Variable", routes["Variable"][0],
                                                                    {"id": "test-send"})
    assert stack.route("DELETE", "/api/campaigns/test-send")[0] == "Greedy"
    assert stack.route("POST", "/api/campaigns/test-send/x")[0] == "Greedy"
    assert stack.route("GET", "/api/campaigns")[0] == "Greedy"
