"""Schedules tick at their scaled rate with EventBridge's Scheduled Event; a custom resource's function is sent
CloudFormation's Create request once at start, and the runner starts only if it answers SUCCESS."""
from __future__ import annotations

from datetime import datetime

import pytest

from offline.cloudformation import CustomResourceFailed
from offline.schedule import rate_seconds
from tests.offline.conftest import records, wait_for

SCHEDULE_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  TickRate: {Type: String, Default: rate(1 minute)}
Globals:
  Function:
    Runtime: python3.11
    Environment:
      Variables:
        RECORDS: "{dir}"
Resources:
  Ticker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ticker/
      Handler: app.handler
      Events:
        Every: {Type: Schedule, Properties: {Schedule: !Ref TickRate}}
        Nightly: {Type: Schedule, Properties: {Schedule: "cron(0 3 * * ? *)"}}
  Breaker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: breaker/
      Handler: app.handler
      Events:
        Every: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(2 minutes)}}
        Paused: {Type: Schedule, Properties: {Schedule: rate(1 minute), Enabled: false}}
"""

SCHEDULE_FUNCTIONS = {
    "ticker": '''
        def handler(event, context):
            record(os.environ["RECORDS"] + "/ticker.jsonl", event=event)
    ''',
    "breaker": '''
        def handler(event, context):
            record(os.environ["RECORDS"] + "/breaker.jsonl")
            raise RuntimeError("every run fails")
    ''',
}


@pytest.mark.parametrize("expression, seconds", [
    ("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 172_800),
    ("cron(0 3 * * ? *)", None), ("rate(0 minutes)", None), ("rate(1 fortnight)", None),
])
def test_rate_expressions(expression, seconds):
    assert rate_seconds(expression) == seconds


def test_a_schedule_invokes_its_function_at_the_scaled_rate_and_a_failure_stops_no_tick(small):
    small.write(SCHEDULE_TEMPLATE, SCHEDULE_FUNCTIONS)
    small.start(time_scale=120)  # rate(1 minute) every 0.5 s, rate(2 minutes) every 1 s
    ticks = wait_for(lambda: len(got := records(small.record_file("ticker"))) >= 4 and got, 15, what="four ticks")
    gaps = [b["at"] - a["at"] for a, b in zip(ticks, ticks[1:])]
    # Ticks keep to the rate: one started late on a loaded machine is followed by one on time, so a single gap
    # may shrink by the lateness; on average they are the rate's 0.5 s.
    assert all(0.15 <= gap <= 0.85 for gap in gaps), gaps
    assert 0.4 <= sum(gaps) / len(gaps) <= 0.65, gaps
    event = ticks[0]["event"]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["version"] == "0" and event["region"] == "us-east-1" and event["detail"] == {}
    assert event["account"] == "123456789012" and event["id"] != ticks[1]["event"]["id"]
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/mini-crm-local-TickerEvery"]
    datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")

    wait_for(lambda: len(records(small.record_file("breaker"))) >= 2, 10, what="a second run after a failed one")
    log = small.log.getvalue()
    assert "rate(2 minutes) #1 -> Breaker failed: Breaker: RuntimeError: every run fails" in log
    assert "cron(0 3 * * ? *) is not run locally" in log and "Breaker Paused: disabled in the template" in log


SLOW_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
Resources:
  Sleeper:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: sleeper/
      Handler: app.handler
      Events:
        Every: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}
  Napper:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: napper/
      Handler: app.handler
      Events:
        Nap: {Type: HttpApi, Properties: {Path: /nap, Method: POST}}
"""

SLOW_FUNCTIONS = {
    "sleeper": '''
        def handler(event, context):
            time.sleep(3)
    ''',
    "napper": '''
        def handler(event, context):
            time.sleep(2)
            return {"statusCode": 200, "body": ""}
    ''',
}


def test_in_flight_can_leave_out_the_functions_only_a_schedule_invokes(small):
    import threading

    small.write(SLOW_TEMPLATE, SLOW_FUNCTIONS)
    runner = small.start(time_scale=60)  # a tick every second, each run three seconds long
    wait_for(lambda: runner.in_flight() >= 1, 10, interval=0.05, what="a scheduled run under way")
    assert runner.in_flight(scheduled=False) == 0
    nap = threading.Thread(target=lambda: small.http.post("/nap"))
    nap.start()
    wait_for(lambda: runner.in_flight(scheduled=False) == 1, 10, interval=0.05, what="the request's run counted")
    assert runner.in_flight() >= 2
    nap.join()


CUSTOM_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 5
    Environment:
      Variables:
        RECORDS: "{dir}"
        ANSWER: "{answer}"
Resources:
  MigrationFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: migration/
      Handler: app.handler
      Timeout: {timeout}
  Migration:
    Type: Custom::Migration
    Properties:
      ServiceToken: !GetAtt MigrationFunction.Arn
      IndexesVersion: 2
      Nested: {Flag: true, Items: [1, two]}
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Events:
        Root: {Type: HttpApi, Properties: {Path: /echo, Method: GET}}
"""

# As crhelper sends it (http.client over TLS, verified, no content type), or as plain urllib does.
MIGRATION = {"migration": '''
    import http.client, ssl, urllib.request
    from urllib.parse import urlsplit

    def handler(event, context):
        record(os.environ["RECORDS"] + "/migration.jsonl", event=event)
        answer = os.environ["ANSWER"]
        if answer == "nothing":
            return
        if answer == "hang":
            time.sleep(60)
        body = json.dumps({"Status": "FAILED" if answer == "failed" else "SUCCESS", "Reason": "indexes: " + answer,
                           "PhysicalResourceId": "indexes", "StackId": event["StackId"],
                           "RequestId": event["RequestId"], "LogicalResourceId": event["LogicalResourceId"],
                           "Data": {}})
        headers = {"content-type": "", "content-length": str(len(body))}
        if answer == "urllib":
            request = urllib.request.Request(event["ResponseURL"], data=body.encode(), method="PUT", headers=headers)
            urllib.request.urlopen(request, timeout=5).read()
        else:
            url = urlsplit(event["ResponseURL"])
            connection = http.client.HTTPSConnection(url.netloc, context=ssl.create_default_context())
            connection.request("PUT", url.path, body=body, headers=headers)
            assert connection.getresponse().status == 200
''', "echo": '''
    def handler(event, context):
        return {"statusCode": 200, "body": "ok"}
'''}


def _custom(small, answer: str, timeout: int = 5) -> None:
    small.write(CUSTOM_TEMPLATE.replace("{answer}", answer).replace("{timeout}", str(timeout)), MIGRATION)


@pytest.mark.parametrize("client", ["crhelper", "urllib"])
def test_a_custom_resource_runs_once_at_start_and_its_success_lets_the_runner_start(small, client):
    _custom(small, client)
    small.start()
    assert small.http.get("/echo").text == "ok"
    calls = records(small.record_file("migration"))
    assert len(calls) == 1
    event = calls[0]["event"]
    token = "arn:aws:lambda:us-east-1:123456789012:function:MigrationFunction"
    assert event["RequestType"] == "Create" and event["ServiceToken"] == token
    assert event["ResponseURL"].startswith(f"https://127.0.0.1:{small.runner.port}/_offline/cfn-response/")
    assert event["ResponseURL"].endswith(event["RequestId"])
    assert event["StackId"].startswith("arn:aws:cloudformation:us-east-1:123456789012:stack/mini-crm-local/")
    assert event["LogicalResourceId"] == "Migration" and event["ResourceType"] == "Custom::Migration"
    assert event["ResourceProperties"] == {"ServiceToken": token, "IndexesVersion": "2",
                                           "Nested": {"Flag": "true", "Items": ["1", "two"]}}
    assert "custom resource Migration (Custom::Migration) -> MigrationFunction: SUCCESS (indexes)" in \
        small.log.getvalue()
    assert small.http.put(f"/_offline/cfn-response/{event['RequestId']}", content=b"{}").status_code == 404, \
        "a response URL takes one response"


@pytest.mark.parametrize("answer, timeout, reason", [
    ("failed", 5, "MigrationFunction: FAILED: indexes: failed"),
    ("nothing", 5, "MigrationFunction: it returned without sending a response to the ResponseURL"),
    ("hang", 1, "MigrationFunction: no response within its timeout (1 s)"),
])
def test_a_custom_resource_that_fails_or_does_not_answer_stops_the_runner(small, answer, timeout, reason):
    _custom(small, answer, timeout)
    with pytest.raises(CustomResourceFailed, match=reason.replace("(", r"\(").replace(")", r"\)")):
        small.start()
    assert len(records(small.record_file("migration"))) == 1
    small.runner = None  # stopped by start itself
