"""The benchmark suite still runs end to end (small scale; the figures themselves are bench/'s, not a test's)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess:
    """Every benchmark at a small scale, once for the tests of this module (the preview among them with 3,000
    customers and one repeat)."""
    return subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def test_every_benchmark_runs_and_the_load_test_sees_no_errors(quick_run):
    result = quick_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("== all benchmarks", 1)[1]
    assert {"ingest", "cold init", "preview", "fan-out", "load", "backfill"} <= {line[:10].strip() for line in
                                                                      table.splitlines()[2:]}
    errors = re.search(r"^load\s+errors in [\d,]+ requests\s+([\d.]+)", table, re.M)
    assert errors and float(errors.group(1)) == 0


def test_the_preview_benchmark_measures_every_tree_and_shows_the_local_plans(quick_run):
    from bench.preview import RULE_KINDS, TREES

    result = quick_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("local plan (explain)", 1)[1].splitlines()[1:len(TREES) + 1]
    assert [line[2:32].strip() for line in table] == list(TREES)
    # Every tree selected someone, has a figure without its indexes, and names the plan the server chose.
    assert all(int(line[33:42].replace(",", "")) > 0 and "nan" not in line and "SCAN" in line for line in table)
    for kind in RULE_KINDS:
        assert re.search(rf"^    {re.escape(kind)}\s+\S.*SCAN", result.stdout, re.M), kind
    # Behaviour rules (v3): each measured beside its raw aggregation (the benchmark checks that both counted the same).
    from bench._behaviour import Behaviour
    from crm.models.common import utcnow

    names = list(Behaviour(None, utcnow(), 2, ("SKU-0001",)).trees())
    behaviour = result.stdout.split("behaviour rules (v3)", 1)[1].split("local plan (explain)", 1)[1]
    lines = behaviour.splitlines()[1:len(names) + 1]
    assert [line[2:34].strip() for line in lines] == names
    assert all("SCAN" in line for line in lines)
