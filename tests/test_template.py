"""template.yaml is valid CloudFormation and wires what the offline runner serves."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from offline import template
from tests.conftest import TEMPLATE


def test_cfn_lint_is_clean():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_queue_has_a_dead_letter_queue_and_every_consumer_reports_partial_failures():
    stack = template.load(TEMPLATE)
    work_queues = [q for q in stack.queues.values() if not q.name.endswith("DLQ")]
    assert work_queues and all(q.dead_letter_queue in stack.queues for q in work_queues)
    sources = [s for f in stack.functions.values() for s in f.sqs_sources]
    assert {s.queue for s in sources} == {q.name for q in work_queues}
    assert all(s.report_failures and s.max_concurrency for s in sources)


def test_every_function_folder_is_in_the_template():
    stack = template.load(TEMPLATE)
    folders = {p.name for p in (TEMPLATE.parent / "functions").iterdir() if (p / "app.py").exists()}
    assert folders == {Path(f.code_uri).name for f in stack.functions.values()}
