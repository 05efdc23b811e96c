"""One worker process: imports one function's handler and serves invocations, like a Lambda container.

Protocol: one JSON request per line on stdin, one JSON reply per line on the original stdout;
everything the function prints goes to stderr, which the runner turns into its log stream.

What the runner changes about the process comes as arguments, never as environment variables (the function
sees only its template's environment): --time-scale divides the DelaySeconds of the messages the function
sends to SQS, as the runner divides its queues' delays; --trust-ca adds the runner's local certificate to the
trusted ones, so the HTTPS response URL it gives a custom resource verifies as CloudFormation's would; --count
tallies the function's MongoDB commands and AWS calls (offline.counting) and adds them to each reply as "counts".
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback

ACCOUNT_ID = "123456789012"


class LambdaContext:
    def __init__(self, function_name: str, memory_mb: int, request_id: str, deadline: float):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "offline"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException) -> dict:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__)}


def _scaled_delay(seconds: int, time_scale: float) -> int:
    # As offline.services.scaled_seconds; repeated so that a worker imports nothing of the runner's but this file.
    # A delay asked for stays at least a second: what it is for (a job read after the write its request makes next)
    # holds at any scale; rounded to nothing, the job raced that write and, losing, waited out a stall instead.
    return 0 if seconds <= 0 else min(900, max(1, round(seconds / time_scale)))


def scale_sqs_delays(time_scale: float) -> None:
    """Every SQS client made in this process sends DelaySeconds divided by time_scale."""
    import botocore.session

    def scale_one(params: dict, **_) -> None:
        if params.get("DelaySeconds"):
            params["DelaySeconds"] = _scaled_delay(int(params["DelaySeconds"]), time_scale)

    def scale_batch(params: dict, **_) -> None:
        for entry in params.get("Entries") or []:
            scale_one(entry)

    create_client = botocore.session.Session.create_client

    def create_client_with_scaled_delays(self, *args, **kwargs):
        client = create_client(self, *args, **kwargs)
        if client.meta.service_model.service_name == "sqs":
            client.meta.events.register("provide-client-params.sqs.SendMessage", scale_one)
            client.meta.events.register("provide-client-params.sqs.SendMessageBatch", scale_batch)
        return client

    botocore.session.Session.create_client = create_client_with_scaled_delays


def trust_certificate(cafile: str) -> None:
    """TLS contexts made in this process trust cafile besides what they trust already (system store or bundle)."""
    import ssl

    load_default_certs = ssl.SSLContext.load_default_certs
    load_verify_locations = ssl.SSLContext.load_verify_locations

    def load_default_certs_and_local(self, *args, **kwargs):
        load_default_certs(self, *args, **kwargs)
        load_verify_locations(self, cafile=cafile)

    def load_verify_locations_and_local(self, *args, **kwargs):
        load_verify_locations(self, *args, **kwargs)
        load_verify_locations(self, cafile=cafile)

    ssl.SSLContext.load_default_certs = load_default_certs_and_local
    ssl.SSLContext.load_verify_locations = load_verify_locations_and_local


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m offline.lambda_worker")
    for name in ("function_name", "code_uri", "handler_path", "memory_mb"):
        parser.add_argument(name)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--trust-ca")
    parser.add_argument("--count", action="store_true")
    args = parser.parse_args()
    function_name, code_uri, handler_path, memory_mb = args.function_name, args.code_uri, args.handler_path, \
        args.memory_mb
    if args.time_scale != 1:
        scale_sqs_delays(args.time_scale)
    if args.trust_ca:
        trust_certificate(args.trust_ca)
    tally = None
    if args.count:
        # Before the handler's import, so that every client it makes is counted.
        from offline.counting import Tally, count_this_process

        tally = Tally()
        count_this_process(tally)
    # Ctrl-C reaches the whole process group; the runner stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.path.insert(0, code_uri)
    module_name, attribute = handler_path.rsplit(".", 1)
    handler, init_error = None, None
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller as Lambda reports an init error
        init_error = _error(exc)
    replies.write(json.dumps({"ready": True}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            reply = {"ok": False, "error": init_error}
        else:
            context = LambdaContext(function_name, int(memory_mb), request["request_id"], request["deadline"])
            try:
                reply = {"ok": True, "result": handler(request["event"], context)}
            except BaseException as exc:  # noqa: BLE001 - a handler's failure is the invocation's result
                reply = {"ok": False, "error": _error(exc)}
        if tally is not None:
            reply["counts"] = tally.take()
        replies.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
