"""The template deploys as ops run it: `sam validate --lint`, `sam build` without a container, and every handler
imports from what the build produced (its function folder and the layer, nothing of this checkout)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from offline import template
from tests.conftest import ROOT, TEMPLATE

SAM = ROOT / ".venv" / "sam" / "bin" / "sam"
LAMBDA_ARCHITECTURE = "arm64"


def sam(*args: str) -> subprocess.CompletedProcess:
    assert SAM.exists(), f"{SAM} is missing: `make install` puts aws-sam-cli there"
    # sam builds with the python3.11 it finds on PATH: this venv's.
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(SAM), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def build(template_file: Path, out: Path) -> Path:
    result = sam("build", "--template-file", str(template_file), "--base-dir", str(ROOT), "--build-dir",
                 str(out / "build"), "--cache-dir", str(out / "cache"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "build"


@pytest.fixture(scope="module")
def host_build(tmp_path_factory) -> Path:
    """The template built for this machine's processor, so that its layer's compiled packages load here."""
    out = tmp_path_factory.mktemp("sam-host")
    host = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    copy = out / "template.yaml"
    copy.write_text(TEMPLATE.read_text().replace(LAMBDA_ARCHITECTURE, host))
    return build(copy, out)


def test_sam_validate_lint_is_clean():
    result = sam("validate", "--lint", "--template-file", str(TEMPLATE))
    assert result.returncode == 0 and "is a valid SAM Template" in result.stdout, result.stdout + result.stderr


def test_sam_build_for_lambda_puts_every_function_and_the_layer_in_the_artifact(tmp_path):
    built = build(TEMPLATE, tmp_path)
    layer = built / "SharedLayer" / "python"
    assert (layer / "crm" / "config.py").exists() and (layer / "pymongo").is_dir()
    # Compiled packages are Lambda's (arm64 Linux) ones, not this machine's.
    assert list(layer.glob("pydantic_core/*aarch64-linux-gnu.so"))
    for name, spec in template.load(TEMPLATE).functions.items():
        module = spec.handler.rsplit(".", 1)[0]
        assert (built / name / f"{module}.py").exists(), name
    assert "SharedLayer" in (built / "template.yaml").read_text()


IMPORT_EACH_HANDLER = """
import importlib.util, json, sys
layer, functions = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, layer)
for name, (folder, handler) in functions.items():
    module_name, attribute = handler.rsplit(".", 1)
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"{name}_{module_name}", f"{folder}/{module_name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, attribute)), name
    sys.path.remove(folder)
    if name == "MetaFunction":
        event = {"version": "2.0", "routeKey": "GET /openapi.json", "rawPath": "/openapi.json", "rawQueryString": "",
                 "headers": {"host": "api.example.com"}, "isBase64Encoded": False,
                 "requestContext": {"http": {"method": "GET", "path": "/openapi.json", "protocol": "HTTP/1.1",
                                             "sourceIp": "127.0.0.1", "userAgent": "test"},
                                    "requestId": "r", "routeKey": "GET /openapi.json", "stage": "$default"}}
        reply = module.handler(event, None)
        print(json.dumps({"status": reply["statusCode"], "paths": sorted(json.loads(reply["body"])["paths"])}))
print("imported", len(functions))
"""


def test_every_handler_imports_from_the_built_artifact_alone(host_build):
    functions = {name: (str(host_build / name), spec.handler)
                 for name, spec in template.load(TEMPLATE).functions.items()}
    # -I -S: no site-packages and no PYTHONPATH, so only the artifact (and the standard library) is importable.
    result = subprocess.run([sys.executable, "-I", "-S", "-c", IMPORT_EACH_HANDLER,
                             str(host_build / "SharedLayer" / "python"), json.dumps(functions)],
                            capture_output=True, text=True, timeout=300,
                            env={"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_LOG_LEVEL": "WARNING"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"imported {len(functions)}"
    openapi = json.loads(next(line for line in lines if line.startswith("{")))
    assert openapi["status"] == 200 and {"/api/customers", "/api/campaigns/{campaign_id}"} <= set(openapi["paths"])
