"""A throwaway local stack for benchmarks: SecantusDB, moto server, the template's queues, the runner."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import boto3

from offline import services, template
from offline.faults import Faults
from offline.runner import OfflineRunner

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def local_stack(with_runner: bool = True, max_consumers: int = 2, log_path: Path | None = None,
                extra_env: dict[str, str] | None = None, parameters: dict[str, str] | None = None,
                time_scale: float = 1.0, faults: Faults | None = None) -> Iterator[dict]:
    """The runner's log stream goes to log_path (the benchmark's own output stays readable); parameters override
    the template's, as `sam deploy --parameter-overrides` would."""
    mongo = services.MongoServer(":memory:")
    sqs_server = services.SqsServer()
    runner = None
    try:
        os.environ.update({k: v for k, v in services.LOCAL_AWS_ENV.items() if k not in os.environ})
        sqs = boto3.client("sqs", endpoint_url=sqs_server.url, region_name="us-east-1")
        queues = services.create_queues(sqs, template.load(ROOT / "template.yaml").queues, time_scale=time_scale)
        port = services.free_port()
        # The queue URLs come from the template, as each function's environment.
        stack = template.load(ROOT / "template.yaml", {**services.LOCAL_PARAMETERS, **(parameters or {})}, queues)
        env = {**services.queue_env(stack), **services.LOCAL_AWS_ENV, "ENV": "development", "MONGO_URI": mongo.uri,
               "MONGO_DB": f"bench_{uuid.uuid4().hex[:8]}", "SQS_ENDPOINT_URL": sqs_server.url,
               "JWT_SECRET": uuid.uuid4().hex, "MONGO_URI_SECRET_NAME": "", "JWT_SECRET_NAME": "",
               "VENDOR_URL": f"http://127.0.0.1:{port}/api/mock-send",
               "RECEIPT_URL": f"http://127.0.0.1:{port}/_url/ReceiptsFunction/api/delivery-receipt",
               "POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING", **(extra_env or {})}
        # With CHANNEL=ses in extra_env: SES is this moto's, the sender verified there (as `python -m offline` does).
        services.prepare_local_ses(env)
        if with_runner:
            log_path = log_path or ROOT / ".local" / "bench-runner.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(log_path, "w")  # noqa: SIM115 - closed with the stack
            runner = OfflineRunner(stack, queues, env, port=port, reload=False, max_consumers=max_consumers,
                                   out=log, time_scale=time_scale, faults=faults).start()
        yield {"env": env, "runner": runner, "mongo_uri": mongo.uri, "sqs": sqs, "queues": queues,
               "url": f"http://127.0.0.1:{runner.port}" if runner else None}
    finally:
        if runner:
            runner.stop()
            log.close()
        sqs_server.stop()
        mongo.stop()
