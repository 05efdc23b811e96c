"""The offline runner over real HTTP: API Gateway v2 events, SQS event sources, timeouts, errors, reload."""
from __future__ import annotations

import http.client as http_client
import io
import json
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from offline import services, template
from offline.runner import OfflineRunner
from tests.conftest import TEMPLATE
from tests.helpers import assert_error


def _wait_for(check, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def test_ingest_end_to_end_through_the_runner(stack):
    http, _ = stack
    assert http.get("/health").json() == {"status": "ok", "checks": {"mongo": "ok", "queues": "ok"}}
    token = http.post("/api/auth/dev-token", json={"email": "ops@example.com"}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}

    reply = http.post("/api/customers", headers=auth, json={"customers": [
        {"name": "Ada", "email": "ada@example.com"}, {"name": "Bob", "email": "bob@example.com"}]})
    assert (reply.status_code, reply.json()) == (202, {"accepted": 2})
    items = _wait_for(lambda: len(http.get("/api/customers", headers=auth).json()["items"]) == 2 and
                      http.get("/api/customers", headers=auth).json()["items"])
    assert {c["email"] for c in items} == {"ada@example.com", "bob@example.com"}

    reply = http.post("/api/orders", headers=auth, json={"order_id": "o-1", "customer_email": "ada@example.com",
                                                          "amount": 12.5, "items": [{"sku": "s", "name": "n", "qty": 1,
                                                                                     "price": 12.5}]})
    assert reply.status_code == 202
    _wait_for(lambda: http.get("/api/customers?email=ada@example.com",
                               headers=auth).json()["items"][0]["spend"] == 12.5)

    unauthorized = http.get("/api/orders")
    assert unauthorized.status_code == 401
    assert_error(unauthorized.json(), "unauthorized")
    missing = http.get("/api/nothing-here")
    assert missing.status_code == 404
    assert_error(missing.json(), "not_found")


def test_google_sign_in_through_the_runner(stack_env, queues, oidc_server, tmp_path):
    port = services.free_port()
    # The template declares only the secret's name: locally the secret itself comes from the config file.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"GOOGLE_CLIENT_SECRET": "local-secret"}))
    env = {**stack_env, "GOOGLE_CLIENT_ID": "crm-local", "CRM_CONFIG_FILE": str(config),
           "GOOGLE_CALLBACK_URL": f"http://127.0.0.1:{port}/api/auth/google/callback",
           "GOOGLE_OIDC_ISSUER": oidc_server, "ADMIN_EMAILS": "ada@example.com"}
    runner = OfflineRunner(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues), queues, env, port=port,
                           reload=False, out=io.StringIO()).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
            to_provider = browser.get("/api/auth/google")
            assert to_provider.status_code == 302 and "crm_oauth" in browser.cookies
            back = browser.post(to_provider.headers["location"], data={"sub": "ada@example.com"})
            assert back.status_code == 302
            signed_in = browser.get(back.headers["location"])
            assert signed_in.status_code == 200, signed_in.text
            token = signed_in.json()["token"]
            assert browser.get("/api/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert browser.get(back.headers["location"]).status_code == 400, "a replayed callback is refused"
    finally:
        runner.stop()


def test_failed_messages_go_back_to_the_queue_then_to_the_dlq(stack, sqs, queues):
    sqs.send_message(QueueUrl=queues["CustomerIngestQueue"].url, MessageBody="poison")
    dead = _wait_for(lambda: sqs.receive_message(QueueUrl=queues["CustomerIngestDLQ"].url,
                                                 MessageSystemAttributeNames=["All"]).get("Messages"))
    assert dead[0]["Body"] == "poison"


FUNCTIONS = {
    "echo": '''
        import json
        def handler(event, context):
            print("echo called")
            return {"statusCode": 200, "headers": {"content-type": "application/json"},
                    "body": json.dumps({"version": "v1", "route": event["routeKey"], "path": event["rawPath"],
                                        "params": event.get("pathParameters"),
                                        "query": event.get("queryStringParameters"),
                                        "body": event.get("body"), "method": event["requestContext"]["http"]["method"],
                                        "remaining": context.get_remaining_time_in_millis()})}
    ''',
    "boom": '''
        def handler(event, context):
            raise ValueError("the handler broke")
    ''',
    "slow": '''
        import time
        def handler(event, context):
            time.sleep(5)
    ''',
}

SMALL_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 5
Resources:
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Events:
        Item: {Type: HttpApi, Properties: {Path: "/items/{item_id}", Method: ANY}}
        Proxy: {Type: HttpApi, Properties: {Path: "/files/{proxy+}", Method: GET}}
  Boom:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: boom/
      Handler: app.handler
      Events:
        Root: {Type: HttpApi, Properties: {Path: /boom, Method: GET}}
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: slow/
      Handler: app.handler
      Timeout: 1
      Events:
        Root: {Type: HttpApi, Properties: {Path: /slow, Method: GET}}
"""


@pytest.fixture
def small_stack(tmp_path: Path):
    for name, source in FUNCTIONS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(textwrap.dedent(source))
    (tmp_path / "template.yaml").write_text(SMALL_TEMPLATE)
    log = io.StringIO()
    runner = OfflineRunner(template.load(tmp_path / "template.yaml"), {}, {}, port=0, out=log).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{runner.port}", timeout=30) as client:
        yield client, tmp_path, log
    runner.stop()


def test_requests_become_http_api_v2_events(small_stack):
    http, _, log = small_stack
    reply = http.post("/items/42?a=1&a=2&b=x", content=b'{"k": 1}')
    event = reply.json()
    assert event["route"] == "ANY /items/{item_id}" and event["path"] == "/items/42"
    assert event["params"] == {"item_id": "42"} and event["query"] == {"a": "1,2", "b": "x"}
    assert event["body"] == '{"k": 1}' and event["method"] == "POST"
    assert 0 < event["remaining"] <= 5000
    assert http.get("/files/a/b/c.txt").json()["params"] == {"proxy": "a/b/c.txt"}
    assert http.post("/files/a").status_code == 404
    lines = log.getvalue().splitlines()
    assert any(line.strip().startswith("Echo | echo called") for line in lines), lines
    assert any("gateway | POST /items/42?a=1&a=2&b=x -> Echo 200" in line for line in lines), lines


def test_a_request_line_too_long_for_the_server_is_refused_with_the_error_envelope(small_stack):
    http, _, log = small_stack
    # Longer than httpx will send; http.client sends it as it is.
    connection = http_client.HTTPConnection(http.base_url.host, http.base_url.port, timeout=10)
    connection.request("GET", "/items/42?q=" + "%C3%A9" * 20_000)  # 120 KB
    reply = connection.getresponse()
    assert reply.status == 414 and reply.getheader("content-type") == "application/json"
    assert_error(json.loads(reply.read()), "uri_too_long")
    connection.close()
    # The line is logged after the reply is written: on a loaded machine the client can read the reply first.
    _wait_for(lambda: "refused before routing: 414" in log.getvalue(), timeout=5)
    assert http.get("/items/42").status_code == 200  # and the server serves on


def test_a_raising_handler_gets_an_error_page_with_its_trace(small_stack):
    http, _, _ = small_stack
    reply = http.get("/boom")
    assert reply.status_code == 502
    body = reply.json()
    assert_error(body, "function_error")
    assert "the handler broke" in body["error"]["message"]
    assert "ValueError" in body["error"]["details"][0]["msg"]


def test_the_function_timeout_is_honoured(small_stack):
    http, _, _ = small_stack
    started = time.monotonic()
    reply = http.get("/slow")
    assert reply.status_code == 504
    assert 1 <= time.monotonic() - started < 4


def test_code_changes_are_picked_up_without_a_restart(small_stack):
    http, folder, log = small_stack
    assert http.get("/items/1").json()["version"] == "v1"
    source = (folder / "echo" / "app.py").read_text().replace('"v1"', '"v2"')
    (folder / "echo" / "app.py").write_text(source)
    _wait_for(lambda: http.get("/items/1").json()["version"] == "v2", timeout=10)
    assert "source changed" in log.getvalue()


def test_the_gateway_sends_each_reply_without_waiting_for_the_clients_ack():
    """A reply is written as headers then body: with Nagle's algorithm on, the body waited for the client's delayed
    ACK (40 ms a request on loopback), which made every function look 40 ms slower than API Gateway would."""
    from offline.gateway import make_server

    server = make_server("127.0.0.1", 0, lambda method, path: None, lambda match, event: {}, lambda *args: None)
    try:
        assert server.RequestHandlerClass.disable_nagle_algorithm is True
    finally:
        server.server_close()
