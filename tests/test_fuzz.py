"""Schemathesis against the running local stack's /openapi.json, every phase: the document's examples, coverage (each
boundary and negation its schemas define), fuzzing, and stateful sequences over the links it infers from responses to
parameters. Each request carries the credentials its operation's security scheme names; no 5xx, and every response
as the document describes it.

Every run draws a fresh seed and prints it; `FUZZ_SEED=<seed>` replays that run's inputs. `FUZZ_MAX_EXAMPLES` and
`FUZZ_SCENARIOS` scale the fuzzing and stateful phases (the defaults keep the module to a few minutes on 2 cores)."""
from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis.errors import FlakyReplay, FlakyStrategyDefinition, HypothesisException

from crm import signing
from crm.api.openapi import VENDOR_KEY, VENDOR_SIGNATURE
from offline import services, template
from offline.runner import OfflineRunner
from tests.conftest import TEMPLATE, load_function, local_function_env

SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbits(64))
# Per operation in the fuzzing phase; examples and coverage run every case they derive from the document.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
SCENARIOS = int(os.environ.get("FUZZ_SCENARIOS", "25"))
MAX_STEPS = 8
# Runs of the stateful phase a replay's inconsistent draw may end before its scenarios are all done.
REPLAY_RUNS = 5
# Not every rule fits in a schema: a cursor is opaque, an order names exactly one of customer_id and customer_email,
# rule groups nest at most five deep, a prompt must make sense, a sign-in callback needs a real state, and a receipt
# names logs that exist. So a schema-valid request may still be a 4xx: every check runs but positive_data_acceptance.
CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    # Credentials are the stack's own (call_kwargs); the checks' probes drop and forge them.
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "with-security-parameters": False},
    "checks": {"positive_data_acceptance": {"enabled": False},
               # The gateway refuses a request line or headers too long for it before any function runs.
               "negative_data_rejection": {"expected-statuses": [
                   400, 401, 403, 404, 405, 406, 409, 414, 415, 422, 428, 429, 431, "5xx"]}},
    # Sequences of valid calls: each operation's invalid inputs are the other phases' work, and a link's values
    # would overwrite the parts a negative step breaks, leaving a valid request counted as an invalid one.
    "phases": {"examples": {"fill-missing": True},
               "stateful": {"max-steps": MAX_STEPS, "generation": {"mode": "positive"}}},
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
})
# The document the runner serves at /openapi.json, read from the meta function itself at collection time.
schema = schemathesis.openapi.from_dict(load_function("meta").app.openapi(), config=CONFIG)
# A stand-in the signer below replaces with a real signature of the body as sent; the fuzzer never generates it.
UNSIGNED = "unsigned"
TIMESTAMP = re.compile(signing.TIMESTAMP_PATTERN)


class VendorSigner(requests.auth.AuthBase):
    """Signs a receipt as the vendor does, over the exact bytes sent, when it carries the stand-in signature (so a
    probe that drops or replaces the credential stays unsigned) and a well-formed timestamp or none (made current:
    one valid value for another, so a case meant to be invalid stays invalid)."""

    def __init__(self, secret: str):
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        stamp = request.headers.get("X-Vendor-Timestamp")
        if request.headers.get("X-Vendor-Signature") == UNSIGNED and (stamp is None or TIMESTAMP.fullmatch(stamp)):
            stamp = str(int(time.time()))
            body = request.body or b""
            request.headers["X-Vendor-Timestamp"] = stamp
            request.headers["X-Vendor-Signature"] = signing.sign(
                self.secret, stamp, body.encode() if isinstance(body, str) else body)
        return request


@dataclass(frozen=True)
class Stack:
    url: str
    credentials: dict[str, dict[str, str]]
    signer: VendorSigner

    def call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        """Where to send a case, with the credentials of its operation's security scheme and no other (a probe that
        removes them then shows whether the operation enforces them)."""
        names = [name for requirement in case.operation.definition.raw.get("security", []) for name in requirement]
        headers = {key: value for name in names for key, value in self.credentials.get(name, {}).items()}
        return {"base_url": self.url, "headers": headers, "auth": self.signer, "timeout": 60}


@pytest.fixture(scope="module")
def fuzzed_stack(mongo_server, sqs_server, _local_aws, tmp_path_factory, request) -> Stack:
    """One runner for every operation, over its own indexed database and queues; its log (with the stack trace of
    any 5xx) is runner.log in this module's temporary folder."""
    import boto3
    from pymongo import MongoClient

    from crm.db import ensure_indexes

    _say(request, f"schemathesis seed {SEED}: replay with FUZZ_SEED={SEED}")
    sqs = boto3.client("sqs", endpoint_url=sqs_server.url, region_name="us-east-1")
    queues = services.create_queues(sqs, template.load(TEMPLATE).queues, f"f{uuid.uuid4().hex[:10]}-")
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    # Campaigns the stateful phase creates are sent through the mock vendor, which reports to the receipt URL.
    env = {**local_function_env(mongo_server, sqs_server, queues), "VENDOR_URL": f"{url}/api/mock-send",
           "RECEIPT_URL": f"{url}/_url/ReceiptsFunction/api/delivery-receipt"}
    with MongoClient(mongo_server.uri) as client:
        ensure_indexes(client[env["MONGO_DB"]])
    log_path = tmp_path_factory.mktemp("fuzz") / "runner.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the runner
    # The routes' throttles far above what the fuzzer sends (their 429 is documented, and tested in
    # tests/offline/test_throttling.py): each case reaches its operation.
    unthrottled = {**services.LOCAL_PARAMETERS, **{name: "100000" for name in (
        "ApiRateLimit", "ApiBurstLimit", "PublicRateLimit", "PublicBurstLimit")}}
    runner = OfflineRunner(template.load(TEMPLATE, unthrottled, queues), queues, env, port=port,
                           retry_delay_seconds=0, reload=False, out=log).start()
    token = httpx.post(f"{url}/api/auth/dev-token", json={"email": "fuzz@example.com"}).json()["token"]
    yield Stack(url, {"bearerAuth": {"Authorization": f"Bearer {token}"},
                      VENDOR_KEY: {"X-Vendor-Key": env["VENDOR_API_KEY"]},
                      VENDOR_SIGNATURE: {"X-Vendor-Signature": UNSIGNED}},
                VendorSigner(env["WEBHOOK_SECRET"]))
    runner.stop()
    log.close()
    _say(request, f"schemathesis seed {SEED}; the runner's log: {log_path}")


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal whatever the capture mode, so every run shows its seed."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")


@pytest.mark.parametrize("path, name", [("/api/segments", {"name": "Long gone"}), ("/api/segments/preview", {})])
def test_inactive_days_past_a_century_is_422_not_a_500(api, db, path, name):
    """Found by the stateful phase: `now - inactive_days` past year 1 overflowed (a 500)."""
    status, reply, _ = api.post(path, {**name, "rules": {"field": "inactive_days", "op": ">", "value": 800_000}})
    assert status == 422 and reply["error"]["details"][0]["loc"] == ["body", "rules", "value"], reply


def test_an_email_starting_with_a_dollar_is_stored_and_listed(api, db, consumers):
    """Found by fuzzing: the ingest pipeline read "$ada@example.com" as a field path and stored no e-mail."""
    assert api.post("/api/customers", {"name": "Dollar", "email": "$ada@example.com"})[0] == 202
    consumers.drain("CustomerIngestQueue")
    status, reply, _ = api.get("/api/customers")
    assert status == 200 and [c["email"] for c in reply["items"]] == ["$ada@example.com"], reply


def _replayable(exc: BaseException) -> None:
    exc.add_note(f"Replay this run with FUZZ_SEED={SEED}")


@schema.parametrize()
def test_every_operation_answers_as_documented(case, fuzzed_stack):
    try:
        case.call_and_validate(**fuzzed_stack.call_kwargs(case))
    except BaseException as exc:
        _replayable(exc)
        raise


def test_linked_operations_answer_as_documented(fuzzed_stack):
    """Sequences of calls, each feeding the next through the links inferred from the document (a segment's id from
    its creation or a list to its reads and previews and to a campaign; a campaign's to its read and summary; a
    customer's to the orders filter).

    A link draws from what the stack holds now, and the stack only grows, so Hypothesis replaying a sequence (to
    shrink a failure, or on a prefix it has seen) can draw differently and stop with a Flaky replay. Whatever a step
    raises (a failed check, an error, a timeout) is kept as it happens, so a Flaky replay hides none: it is raised; one
    with nothing behind it ends that run, and the next run (a seed derived from this one) carries on until every
    scenario has run."""
    failures: list[BaseException] = []
    scenarios = [0]

    class LinkedCalls(schema.as_state_machine()):
        def setup(self):
            scenarios[0] += 1

        def get_call_kwargs(self, case):
            return fuzzed_stack.call_kwargs(case)

        def step(self, input):
            try:
                return super().step(input)
            except HypothesisException:
                raise  # Hypothesis's own control flow, not a finding
            except (Exception, BaseExceptionGroup) as exc:  # failed checks (a group), a call that raised or timed out
                failures.append(exc)
                raise

    links = [name for name in dir(LinkedCalls) if "__" in name and not name.startswith(("_", "RANDOM"))]
    assert len(links) >= 10, links
    for run in range(REPLAY_RUNS):
        settings = hypothesis.settings(CONFIG.projects.get_default().get_hypothesis_settings(phase="stateful"),
                                       max_examples=SCENARIOS - scenarios[0], stateful_step_count=MAX_STEPS,
                                       database=None, suppress_health_check=list(HealthCheck))
        try:
            hypothesis.seed(SEED + run)(LinkedCalls).run(settings=settings)
        except (FlakyStrategyDefinition, FlakyReplay) as exc:
            if failures:
                _replayable(failures[0])
                raise failures[0] from exc
            if scenarios[0] < SCENARIOS:
                continue
        except BaseException as exc:
            _replayable(exc)
            raise
        if failures:  # nothing a step raised may pass unseen
            _replayable(failures[0])
            raise failures[0]
        return
    pytest.fail(f"{REPLAY_RUNS} runs each stopped by a replay that drew differently; {scenarios[0]} of {SCENARIOS} "
                f"scenarios ran (FUZZ_SEED={SEED})")
