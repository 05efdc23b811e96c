"""The benchmark suite still runs end to end (small scale; the figures themselves are bench/'s, not a test's)."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_every_benchmark_runs_and_the_load_test_sees_no_errors():
    result = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("== all benchmarks", 1)[1]
    assert {"ingest", "cold init", "preview", "fan-out", "load"} <= {line[:10].strip() for line in
                                                                      table.splitlines()[2:]}
    errors = re.search(r"^load\s+errors in [\d,]+ requests\s+([\d.]+)", table, re.M)
    assert errors and float(errors.group(1)) == 0
