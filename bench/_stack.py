"""A throwaway local stack for benchmarks: SecantusDB (or a MongoDB of yours), moto server, the template's queues,
the runner."""
from __future__ import annotations

import argparse
import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import boto3
from pymongo import MongoClient

from offline import services, template
from offline.faults import Faults
from offline.runner import OfflineRunner

ROOT = Path(__file__).resolve().parent.parent
# Read once, before any benchmark runs: cold_init and preview set MONGO_URI in this process for the code they import.
MONGO_URI = os.environ.get("MONGO_URI") or None


def add_mongo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mongo-uri", default=MONGO_URI,
                        help="an existing MongoDB to run against instead of a fresh SecantusDB (default: $MONGO_URI); "
                             "the run's databases (bench_<random>*) are dropped at the end")


@contextlib.contextmanager
def local_stack(with_runner: bool = True, max_consumers: int = 2, log_path: Path | None = None,
                extra_env: dict[str, str] | None = None, parameters: dict[str, str] | None = None,
                time_scale: float = 1.0, faults: Faults | None = None, mongo_uri: str | None = None,
                count: bool = False) -> Iterator[dict]:
    """The runner's log stream goes to log_path (the benchmark's own output stays readable); parameters override
    the template's, as `sam deploy --parameter-overrides` would. mongo_uri: an existing server instead of SecantusDB
    (the stack's database, and any other named after it, is dropped at the end). count: the runner counts
    (runner.counts())."""
    mongo = None if mongo_uri else services.MongoServer(":memory:")
    mongo_uri = mongo_uri or mongo.uri
    db_name = f"bench_{uuid.uuid4().hex[:8]}"
    sqs_server = services.SqsServer()
    runner = None
    try:
        os.environ.update({k: v for k, v in services.LOCAL_AWS_ENV.items() if k not in os.environ})
        sqs = boto3.client("sqs", endpoint_url=sqs_server.url, region_name="us-east-1")
        queues = services.create_queues(sqs, template.load(ROOT / "template.yaml").queues, time_scale=time_scale)
        port = services.free_port()
        # The queue URLs come from the template, as each function's environment.
        stack = template.load(ROOT / "template.yaml", {**services.LOCAL_PARAMETERS, **(parameters or {})}, queues)
        env = {**services.queue_env(stack), **services.LOCAL_AWS_ENV, "ENV": "development", "MONGO_URI": mongo_uri,
               "MONGO_DB": db_name, "SQS_ENDPOINT_URL": sqs_server.url,
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
                                   out=log, time_scale=time_scale, faults=faults, count=count).start()
        yield {"env": env, "runner": runner, "mongo_uri": mongo_uri, "sqs": sqs, "queues": queues,
               "url": f"http://127.0.0.1:{runner.port}" if runner else None}
    finally:
        if runner:
            runner.stop()
            log.close()
        sqs_server.stop()
        if mongo:
            mongo.stop()
        else:
            drop_databases(mongo_uri, db_name)


def drop_databases(mongo_uri: str, prefix: str) -> None:
    """What a run left on a server that outlives it: its database and the baselines' (named after it)."""
    with MongoClient(mongo_uri) as client:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
