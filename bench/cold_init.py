"""Cold init of each API function (fresh process: import + first event handled), beside baselines.

Baselines, measured the same way in the same run: a hello-world FastAPI+Mangum handler, and the
bare imports of the third-party packages that function loads.

    python -m bench.cold_init [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from bench._stack import ROOT, add_mongo_option, local_stack
from bench._table import Row

PROBE = textwrap.dedent('''
    import json, sys, time
    started = time.perf_counter()
    mode, target, event_json = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "imports":
        for name in json.loads(target):
            __import__(name)
        status = None
    else:
        sys.path.insert(0, target)
        import app
        from offline.lambda_worker import LambdaContext
        status = app.handler(json.loads(event_json), LambdaContext("probe", 512, "r", time.time() + 30))["statusCode"]
    elapsed = time.perf_counter() - started
    third_party = sorted({m.split(".")[0] for m, mod in list(sys.modules.items())
                          if "site-packages" in (getattr(mod, "__file__", None) or "")})
    print(json.dumps({"ms": elapsed * 1000, "status": status, "packages": third_party}))
''')

HELLO = textwrap.dedent('''
    from fastapi import FastAPI
    from mangum import Mangum
    app = FastAPI()
    @app.get("/hello")
    def hello():
        return {"hello": "world"}
    handler = Mangum(app, lifespan="off")
''')

# Top-level names whose import is a module of the package named (python-jose installs "jose").
IMPORT_NAMES = {"jose", "pymongo", "bson", "boto3", "botocore", "fastapi", "mangum", "pydantic", "pydantic_settings",
                "aws_lambda_powertools", "email_validator", "starlette", "jmespath", "dns", "httpx"}


def event(method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    from offline.gateway import http_api_event
    from offline.template import HttpRoute

    headers = [("content-type", "application/json")] + ([("authorization", f"Bearer {token}")] if token else [])
    return http_api_event(method, path, headers, json.dumps(body).encode() if body else b"", "127.0.0.1",
                          HttpRoute(method, path), {})


def probe(mode: str, target: str, payload: dict, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, target, json.dumps(payload)], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_ms(mode: str, target: str, payload: dict, env: dict, runs: int) -> tuple[float, dict]:
    results = [probe(mode, target, payload, env) for _ in range(runs)]
    return statistics.median(r["ms"] for r in results), results[-1]


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_init")
    parser.add_argument("--runs", type=int, default=5)
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    rows = []
    hello_dir = Path(ROOT / ".local" / "bench-hello")
    hello_dir.mkdir(parents=True, exist_ok=True)
    (hello_dir / "app.py").write_text(HELLO)

    with local_stack(with_runner=False, mongo_uri=args.mongo_uri) as stack:
        pythonpath = os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])
        env = {**os.environ, **stack["env"], "PYTHONPATH": pythonpath,
               "PYTHONDONTWRITEBYTECODE": "1"}
        os.environ.update(stack["env"])
        from crm.auth import issue_token
        from crm.config import get_settings

        token, _ = issue_token(get_settings(), "bench@example.com")
        functions = {
            "auth": event("POST", "/api/auth/dev-token", body={"email": "bench@example.com"}),
            "customers": event("GET", "/api/customers", token),
            "orders": event("GET", "/api/orders", token),
            "meta": event("GET", "/health"),
        }
        hello_ms, _ = median_ms("handler", str(hello_dir), event("GET", "/hello"), env, args.runs)
        print(f"cold init, median of {args.runs} fresh processes (import + first event handled), ms")
        print(f"  {'function':<10} {'cold init':>10} {'hello world':>12} {'bare deps':>10} {'init/deps':>10}  deps")
        for name, payload in functions.items():
            ms, last = median_ms("handler", str(ROOT / "functions" / name), payload, env, args.runs)
            assert last["status"] == 200, (name, last)
            packages = [p for p in last["packages"] if p in IMPORT_NAMES]
            deps_ms, _ = median_ms("imports", json.dumps(packages), {}, env, args.runs)
            print(f"  {name:<10} {ms:>10.0f} {hello_ms:>12.0f} {deps_ms:>10.0f} {ms / deps_ms:>10.2f}  "
                  f"{' '.join(packages)}")
            rows.append(Row("cold init", f"{name}: import + first event", ms, "ms", deps_ms,
                            "bare imports of its packages"))
    return rows


if __name__ == "__main__":
    run()
