"""The runner throttles as AWS does, from the template's parameters: each HTTP API route's token bucket, and each
function's reserved concurrency (for the HTTP API and a Function URL alike); a throttled call never reaches the
function, and is a 429, but for API Gateway's 500 when Lambda throttles a function behind it."""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from offline import services, template
from offline.runner import OfflineRunner
from offline.template import Throttle
from offline.throttling import RouteThrottles, TokenBucket
from tests.conftest import TEMPLATE

# Small enough to exceed with a handful of calls; the template's MinValues allow them all.
PARAMETERS = {"PublicRateLimit": "1", "PublicBurstLimit": "2", "ApiReservedConcurrency": "2",
              "ReceiptReservedConcurrency": "1"}
API_THROTTLED = {"message": "Too Many Requests"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_its_burst_through_at_once_then_refills_at_its_rate_up_to_the_burst():
    clock = Clock()
    bucket = TokenBucket(Throttle(rate=2, burst=3), clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 60
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert TokenBucket(Throttle(rate=5, burst=0), clock).take() is False, "API Gateway: a burst of 0 lets nothing in"
    assert all(TokenBucket(Throttle(None, None), clock).take() for _ in range(1000))


def test_each_route_has_its_own_bucket_with_its_own_settings_or_the_default():
    throttles = RouteThrottles(Throttle(1, 2), {"GET /u/{token}": Throttle(1, 1)}, Clock())
    assert [throttles.allows("GET /u/{token}") for _ in range(2)] == [True, False]
    assert [throttles.allows("POST /u/{token}") for _ in range(3)] == [True, True, False]
    assert [throttles.allows("ANY /api/customers") for _ in range(3)] == [True, True, False]


@pytest.fixture
def throttled(stack_env, queues):
    """The runner over the real template with PARAMETERS, counting each function's invocations."""
    stack = template.load(TEMPLATE, {**services.LOCAL_PARAMETERS, **PARAMETERS}, queues)
    runner = OfflineRunner(stack, queues, stack_env, port=0, retry_delay_seconds=0, reload=False, out=io.StringIO(),
                           count=True).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{runner.port}", timeout=60) as http:
        yield http, runner
    runner.stop()


def at_once(send, n: int) -> list[httpx.Response]:
    """n calls released together, so that all arrive before any of them is answered."""
    start = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        start.wait()
        return send()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def invocations(runner: OfflineRunner, function: str) -> int:
    return runner.counts()["functions"].get(function, {}).get("invocations", 0)


def test_a_public_route_past_its_burst_is_429_before_its_function_runs(throttled):
    http, runner = throttled
    replies = at_once(lambda: http.get("/u/not-a-token"), 8)
    passed = [r for r in replies if r.status_code != 429]
    # The burst at once, and at most one more token refilled (1 a second) while they arrived; a third call let through
    # while the first two still run meets the function's reserved concurrency of 2 (API Gateway's 500).
    answered = [r for r in passed if r.status_code == 404]
    assert 2 <= len(passed) <= 3 and len(answered) >= 2, [r.status_code for r in replies]
    assert all(r.json() == {"message": "Internal Server Error"} for r in passed if r.status_code != 404)
    assert all(r.json() == API_THROTTLED for r in replies if r.status_code == 429)
    assert invocations(runner, "UnsubscribeFunction") == len(answered)
    # POST is another route, with a bucket of its own; other routes have the (larger) default.
    assert http.post("/u/not-a-token").status_code == 404
    assert [http.get("/openapi.json").status_code for _ in range(5)] == [200] * 5


def test_calls_beyond_an_api_functions_reserved_concurrency_never_invoke_it_and_are_api_gateways_500(throttled):
    """Review finding: API Gateway answers a Lambda throttle behind a proxy integration with its own 500, not a 429
    (AWS Lambda docs, "Handling Lambda errors with an API Gateway API")."""
    http, runner = throttled
    # A cold function: its first two executions start their containers while the others arrive.
    replies = at_once(lambda: http.get("/openapi.json"), 8)
    passed = [r for r in replies if r.status_code != 500]
    assert len(passed) >= 2 and all(r.status_code == 200 for r in passed), [r.status_code for r in replies]
    assert len(passed) < len(replies)
    assert all(r.json() == {"message": "Internal Server Error"} for r in replies if r.status_code == 500)
    assert invocations(runner, "MetaFunction") == len(passed)


def test_the_receipt_function_url_is_throttled_by_its_reserved_concurrency_alone(throttled):
    http, runner = throttled
    url = "/_url/ReceiptsFunction/api/delivery-receipt"
    replies = at_once(lambda: http.post(url, json={"receipts": []}), 6)
    passed = [r for r in replies if r.status_code != 429]
    # Unsigned: the function answers 401; the calls it had no room for are Lambda's throttling error.
    assert len(passed) >= 1 and all(r.status_code == 401 for r in passed), [r.status_code for r in replies]
    throttled_replies = [r for r in replies if r.status_code == 429]
    assert throttled_replies and all(r.json()["message"] == "Rate Exceeded." for r in throttled_replies)
    assert invocations(runner, "ReceiptsFunction") == len(passed)
