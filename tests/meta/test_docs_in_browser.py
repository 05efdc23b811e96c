"""GET /docs as a person sees it: Swagger UI rendered by headless Chromium from the runner, every group listed."""
from __future__ import annotations

import html
import re
import shutil
import subprocess

from crm.api.routes.clicks import PAGES as LINKS
from crm.api.routes.unsubscribe import PAGES
from offline import template
from tests.conftest import TEMPLATE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's notes advise: no sandbox as root, and none of the background calls a closed network refuses.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def rendered_dom(url: str, profile) -> str:
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                             "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_docs_page_lists_every_groups_routes(stack, tmp_path):
    http, runner = stack
    dom = rendered_dom(f"http://127.0.0.1:{runner.port}/docs", tmp_path / "profile")
    tags = set(re.findall(r'data-tag="([^"]+)"', dom))
    assert tags >= {"meta", "auth", "customers", "orders", "segments", "campaigns", "ai", "vendor"}
    shown = {html.unescape(path) for path in re.findall(r'data-path="([^"]+)"', dom)}
    documented = set(http.get("/openapi.json").json()["paths"])
    assert shown == documented
    for spec in template.load(TEMPLATE).functions.values():
        for route in spec.routes:
            base = route.path.removesuffix("/{proxy+}")
            if base not in ("/docs", "/openapi.json", *PAGES, *LINKS):
                assert any(path == base or path.startswith(base + "/") for path in shown), route.path
    assert "Authorize" in dom, "the bearer and vendor schemes are offered"
