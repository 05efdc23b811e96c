"""`python -m offline`: the whole system on one machine, no Docker, no internet.

Starts SecantusDB (unless MONGO_URI is set) and moto server (unless SQS_ENDPOINT_URL is set),
creates the template's queues, and serves every function on http://localhost:PORT.
CHANNEL=ses sends campaign e-mail to moto's SES (SES_ENDPOINT_URL, by default the same moto server),
from SES_FROM_ADDRESS, verified there at start; `python -m offline.ses_feedback` answers for SES.

OFFLINE_TIME_SCALE=N runs local time N times faster (visibility timeouts, delays, schedules; not function
timeouts). OFFLINE_FAULTS="sqs_dup=0.1,api_kill=0.05,..." turns on fault mode, OFFLINE_FAULTS_SEED repeats a run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import boto3

from offline import services, template
from offline.faults import Faults, FaultSpecError
from offline.runner import CustomResourceFailed, OfflineRunner

ROOT = Path(__file__).resolve().parent.parent
TIME_SCALE_ENV = "OFFLINE_TIME_SCALE"
# Where a running `python -m offline` says what it started, for the dev commands (offline.ses_feedback).
RUNNING_FILE = "running.json"


def time_scale_from(environ: dict[str, str]) -> float:
    text = environ.get(TIME_SCALE_ENV, "").strip() or "1"
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{TIME_SCALE_ENV}: {text!r} is not a number above 0 (1 is real time, 60 a minute a second)")
    return scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 4000)))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".local")
    parser.add_argument("--no-reload", action="store_true", help="do not restart workers when code changes")
    args = parser.parse_args(argv)
    try:
        faults = Faults.from_env(os.environ)
        time_scale = time_scale_from(dict(os.environ))
    except (FaultSpecError, ValueError) as exc:
        print(f"offline: {exc}", file=sys.stderr)
        return 2

    args.data_dir.mkdir(parents=True, exist_ok=True)
    config_file = args.data_dir / "config.json"
    if not config_file.exists():
        shutil.copy(ROOT / "samplecfg" / "config.json", config_file)
    env = {**services.LOCAL_AWS_ENV, **os.environ}
    env.setdefault("CRM_CONFIG_FILE", str(config_file))
    # The vendor is this stack's mock, and it reports to the receipt function's own URL.
    env.setdefault("VENDOR_URL", f"http://127.0.0.1:{args.port}/api/mock-send")
    env.setdefault("RECEIPT_URL", f"http://127.0.0.1:{args.port}/_url/ReceiptsFunction/api/delivery-receipt")
    # Unsubscribe and tracked links lead here, as they lead to the HTTP API in AWS.
    env["PUBLIC_URL"] = services.config_value(env, "PUBLIC_URL") or f"http://localhost:{args.port}"

    children: list[services.ChildProcess] = []
    runner = None
    try:
        if "MONGO_URI" not in env:
            mongo = services.MongoServer(str(args.data_dir / "mongo-data"), log_path=args.data_dir / "secantusdb.log")
            children.append(mongo)
            env["MONGO_URI"] = mongo.uri
        if "SQS_ENDPOINT_URL" not in env:
            sqs_server = services.SqsServer(log_path=args.data_dir / "moto.log")
            children.append(sqs_server)
            env["SQS_ENDPOINT_URL"] = sqs_server.url
        os.environ.update({k: v for k, v in services.LOCAL_AWS_ENV.items() if k not in os.environ})
        sender = services.prepare_local_ses(env)
        sqs = boto3.client("sqs", endpoint_url=env["SQS_ENDPOINT_URL"], region_name="us-east-1")
        template_path = ROOT / "template.yaml"
        queues = services.create_queues(sqs, template.load(template_path, services.LOCAL_PARAMETERS).queues,
                                        time_scale=time_scale)
        stack = template.load(template_path, services.LOCAL_PARAMETERS, queues)
        runner = OfflineRunner(stack, queues, env, host=args.host, port=args.port, reload=not args.no_reload,
                               time_scale=time_scale, faults=faults)
        try:
            runner.start()
        except CustomResourceFailed as exc:
            print(f"offline: stopped: {exc}", file=sys.stderr)
            return 1
        runner.log("offline", f"MongoDB {env['MONGO_URI'].split('@')[-1]}  SQS {env['SQS_ENDPOINT_URL']}")
        if sender:
            runner.log("offline", f"e-mail: SES {env['SES_ENDPOINT_URL']} from {sender} (verified there); "
                                  f"`python -m offline.ses_feedback` turns what it sent into SES's events")
        running = args.data_dir / RUNNING_FILE
        running.write_text(json.dumps({
            "url": f"http://localhost:{runner.port}", "env": env.get("ENV") or stack.parameters["Stage"],
            "mongo_uri": env["MONGO_URI"], "mongo_db": env.get("MONGO_DB") or stack.parameters["MongoDbName"],
            "sqs_endpoint_url": env["SQS_ENDPOINT_URL"], "ses_endpoint_url": env.get("SES_ENDPOINT_URL"),
            "ses_configuration_set": env.get("SES_CONFIGURATION_SET"), "queues": {n: q.url for n, q in queues.items()},
        }, indent=2))
        runner.log("offline", f"ready on http://localhost:{runner.port} (docs: /docs); Ctrl-C stops everything")
        stopped = threading.Event()
        # Set explicitly: a shell that starts us in the background leaves SIGINT ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopped.set())
        while not stopped.wait(0.5):
            pass
    finally:
        (args.data_dir / RUNNING_FILE).unlink(missing_ok=True)
        if runner:
            runner.stop()
        for child in reversed(children):
            child.stop()
    print("offline: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
