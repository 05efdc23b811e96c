"""Schemathesis against the running local stack's /openapi.json: generated requests, valid and not, to every
operation, signed in; no 5xx, and every response as the document describes it."""
from __future__ import annotations

import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from offline import services, template
from offline.runner import OfflineRunner
from tests.conftest import TEMPLATE, load_function, local_function_env

EXAMPLES_PER_OPERATION = 30
# Not every rule fits in a schema: a cursor is opaque, an order names exactly one of customer_id and
# customer_email, rule groups nest at most five deep, a prompt must make sense and a sign-in callback needs a
# real state. So a schema-valid request may still be a 422 (or a 400); every other check runs.


@pytest.fixture(scope="module")
def fuzzed_stack(mongo_server, sqs_server, _local_aws, tmp_path_factory):
    """One runner for every operation, over its own database and queues; its log (with the stack trace of any
    5xx) is runner.log in this module's temporary folder."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=sqs_server.url, region_name="us-east-1")
    queues = services.create_queues(sqs, template.load(TEMPLATE).queues, f"f{uuid.uuid4().hex[:10]}-")
    env = local_function_env(mongo_server, sqs_server, queues)
    log = open(tmp_path_factory.mktemp("fuzz") / "runner.log", "w")  # noqa: SIM115 - closed with the runner
    runner = OfflineRunner(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues), queues, env, port=0,
                           retry_delay_seconds=0, reload=False, out=log).start()
    url = f"http://127.0.0.1:{runner.port}"
    token = httpx.post(f"{url}/api/auth/dev-token", json={"email": "fuzz@example.com"}).json()["token"]
    yield url, {"Authorization": f"Bearer {token}", "X-Vendor-Key": env["VENDOR_API_KEY"]}
    runner.stop()
    log.close()


# The document the runner serves at /openapi.json, read from the meta function itself at collection time.
schema = schemathesis.openapi.from_dict(load_function("meta").app.openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_answers_as_documented(case, fuzzed_stack):
    url, headers = fuzzed_stack
    case.call_and_validate(base_url=url, headers=headers, timeout=60, excluded_checks=[positive_data_acceptance])
