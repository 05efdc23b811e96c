"""Real parts for every test: a SecantusDB server and a moto SQS server, one of each per session.

Each test gets its own database name and its own queues, so tests never see each other's data.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest

from offline import services, template
from offline.event_source import SqsPoller, sqs_event
from offline.gateway import http_api_event
from offline.lambda_worker import LambdaContext
from offline.template import HttpRoute, LocalQueue

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="session")
def mongo_server():
    server = services.MongoServer(":memory:")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqs_server():
    server = services.SqsServer()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _local_aws():
    """boto3 needs credentials even for moto; never real ones in tests."""
    saved = {k: os.environ.get(k) for k in services.LOCAL_AWS_ENV}
    os.environ.update(services.LOCAL_AWS_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def oidc_server():
    """tests/oidc_provider.py: a real OpenID Connect provider, as its own process."""
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/.well-known/openid-configuration", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    server = services.ChildProcess("oidc-provider", [sys.executable, "-m", "tests.oidc_provider", "--port", str(port)],
                                   ready, None, cwd=ROOT)
    yield url
    server.stop()


@pytest.fixture
def sqs(sqs_server):
    return boto3.client("sqs", endpoint_url=sqs_server.url, region_name="us-east-1")


@pytest.fixture
def queues(sqs) -> dict[str, LocalQueue]:
    """The template's queues, created afresh for this test."""
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    return services.create_queues(sqs, template.load(TEMPLATE).queues, prefix)


@pytest.fixture
def stack_env(mongo_server, sqs_server, queues) -> dict[str, str]:
    """The environment a deployed function would see, pointing at this test's database and queues."""
    return local_function_env(mongo_server, sqs_server, queues)


def local_function_env(mongo_server, sqs_server, queues: dict[str, LocalQueue]) -> dict[str, str]:
    """A function's environment over these servers and queues, with a database and keys of its own."""
    return {
        **services.queue_env(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues)),
        **services.LOCAL_AWS_ENV,
        "ENV": "development",
        "MONGO_URI": mongo_server.uri,
        "MONGO_DB": f"t_{uuid.uuid4().hex[:12]}",
        "MONGO_TIMEOUT_MS": "1500",
        "SQS_ENDPOINT_URL": sqs_server.url,
        "VENDOR_API_KEY": "test-vendor-key-" + uuid.uuid4().hex,
        "WEBHOOK_SECRET": "test-webhook-secret-" + uuid.uuid4().hex,
        "MOCK_VENDOR_DELAY_SECONDS": "0",
        # In-process tests read the fan-out job at once; through the runner the template's setting holds.
        "FANOUT_START_DELAY_SECONDS": "0",
        "VENDOR_MAX_PER_SECOND": "0",
        # In-process tests read the counters right after a consumer ran: every batch rolls its campaigns up.
        "ROLL_UP_SECONDS": "0",
        "JWT_SECRET": "test-secret-" + uuid.uuid4().hex,
        "MONGO_URI_SECRET_NAME": "",
        "JWT_SECRET_NAME": "",
    }


@pytest.fixture
def env(stack_env, monkeypatch) -> dict[str, str]:
    """stack_env applied to this process, for functions called in-process."""
    from crm.config import get_settings

    monkeypatch.delenv("CRM_CONFIG_FILE", raising=False)
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield stack_env
    get_settings.cache_clear()


@pytest.fixture
def db(env):
    """This test's database, indexed as the migration indexes it at deploy."""
    from crm.db import ensure_indexes, get_db

    database = get_db()
    ensure_indexes(database)
    yield database
    database.client.drop_database(env["MONGO_DB"])


_modules: dict[str, ModuleType] = {}


def load_function(group: str) -> ModuleType:
    """A function's handler module, imported once per test session as Lambda imports it once per container."""
    if group not in _modules:
        path = ROOT / "functions" / group / "app.py"
        spec = importlib.util.spec_from_file_location(f"function_{group}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[group] = module
    return _modules[group]


class Api:
    """Calls the API functions' real handlers with the API Gateway v2 events the offline runner builds."""

    ROUTES = {"/api/auth": "auth", "/api/me": "access", "/api/users": "access", "/api/api-keys": "access",
              "/api/audit": "access", "/api/suppressions": "access", "/api/customers": "customers",
              "/api/orders": "orders",
              "/api/segments": "segments", "/api/ai": "ai",
              # Before /api/campaigns: the first prefix a path starts with names its function, as the template routes.
              "/api/campaigns/test-send": "test_send", "/api/campaigns": "campaigns", "/api/mock-send": "vendor",
              "/api/delivery-receipt": "receipts", "/u/": "unsubscribe", "/c/": "click_redirect"}

    def __init__(self, token: str | None = None):
        self.token = token
        self.last_cookies: list[str] = []

    def request(self, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None, token: str | None = None,
                seconds_left: float = 2e9) -> tuple[int, Any, dict[str, str]]:
        """seconds_left: the function's remaining time when the request arrives."""
        path = target.split("?")[0]
        group = next((g for prefix, g in self.ROUTES.items() if path.startswith(prefix)), "meta")
        all_headers = {"content-type": "application/json", **(headers or {})}
        bearer = token if token is not None else self.token
        if bearer:
            all_headers.setdefault("authorization", f"Bearer {bearer}")
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        event = http_api_event(method, target, list(all_headers.items()), payload, "127.0.0.1",
                               HttpRoute("ANY", path), {})
        import time

        deadline = time.time() + seconds_left
        reply = load_function(group).handler(event, LambdaContext(group, 512, str(uuid.uuid4()), deadline))
        self.last_cookies = reply.get("cookies") or []
        text = reply.get("body") or ""
        headers = reply.get("headers", {})
        is_json = headers.get("content-type", "").startswith("application/json")
        return reply["statusCode"], (json.loads(text) if text and is_json else text), headers

    def get(self, target: str, **kw):
        return self.request("GET", target, **kw)

    def post(self, target: str, body: Any = None, **kw):
        return self.request("POST", target, body, **kw)


@pytest.fixture
def api(env) -> Api:
    client = Api()
    status, body, _ = client.post("/api/auth/dev-token", {"email": "tester@example.com", "name": "Tester"})
    assert status == 200, body
    client.token = body["token"]
    return client


class Consumers:
    """Drains this test's queues through the consumer functions' real handlers, as the runner's pollers do."""

    def __init__(self, sqs, queues: dict[str, LocalQueue]):
        self.sqs = sqs
        self.queues = queues
        spec = template.load(TEMPLATE, local_queues=queues)
        self.pollers = {
            source.queue: SqsPoller(sqs, name, queues[source.queue], source, self._invoke, lambda *_: None,
                                    stop=None, retry_delay_seconds=0)
            for name, fn in spec.functions.items() for source in fn.sqs_sources
        }
        self.groups = {name: Path(fn.code_uri).name for name, fn in spec.functions.items()}
        self.timeouts = {name: fn.timeout for name, fn in spec.functions.items()}

    def _invoke(self, function: str, event: dict[str, Any]) -> Any:
        """The handler with the time its function's timeout gives it, as Lambda would."""
        import time

        context = LambdaContext(function, 512, str(uuid.uuid4()), time.time() + self.timeouts[function])
        return load_function(self.groups[function]).handler(event, context)

    def drain(self, queue: str, max_polls: int = 50) -> int:
        """Polls until the queue answers empty; returns how many messages were handled (retries included)."""
        handled = 0
        for _ in range(max_polls):
            got = self.pollers[queue].poll_once(wait_seconds=0)
            if got == 0:
                return handled
            handled += got
        raise AssertionError(f"{queue} did not drain in {max_polls} polls")

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """Takes every message now visible in a queue (for inspecting queues nothing consumes)."""
        found = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queues[queue].url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return found
            found.extend(got)

    def deliver(self, queue: str, bodies: list[str]) -> dict[str, Any]:
        """One SQS event of these bodies to the queue's consumer, as a redelivery would bring them."""
        function = next(p.function for q, p in self.pollers.items() if q == queue)
        return self._invoke(function, self.event_for(queue, bodies))

    def send_raw(self, queue: str, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queues[queue].url, MessageBody=body)

    def event_for(self, queue: str, bodies: list[str]) -> dict[str, Any]:
        messages = [{"MessageId": str(uuid.uuid4()), "ReceiptHandle": "h", "Body": b} for b in bodies]
        return sqs_event(messages, self.queues[queue])


@pytest.fixture
def consumers(env, sqs, queues) -> Consumers:
    return Consumers(sqs, queues)


@pytest.fixture
def stack(stack_env, queues):
    """The offline runner over this test's database and queues: an HTTP client on it, and the runner."""
    from offline.runner import OfflineRunner

    runner = OfflineRunner(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues),
                           queues, stack_env, port=0, retry_delay_seconds=0, reload=False, out=io.StringIO()).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{runner.port}", timeout=30) as client:
        yield client, runner
    runner.stop()


@contextlib.contextmanager
def signed_in_system(env: dict[str, str], queues, port: int, faults=None, time_scale: float = 1.0):
    """The offline runner over these queues with this environment, on this port (in fault mode with `faults`, an
    offline.faults.Faults; schedules and delays `time_scale` times faster); an admin's HTTP client on it."""
    from offline.runner import OfflineRunner

    runner = OfflineRunner(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues), queues, env, port=port,
                           retry_delay_seconds=0, reload=False, out=sys.stdout, faults=faults,
                           time_scale=time_scale).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            signed_in = http.post("/api/auth/dev-token", json={"email": "ops@example.com"})
            assert signed_in.status_code == 200, signed_in.text
            http.headers["Authorization"] = f"Bearer {signed_in.json()['token']}"
            yield http
    finally:
        runner.stop()
