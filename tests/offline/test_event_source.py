"""What the runner returns to the queue follows Lambda's rules for ReportBatchItemFailures."""
from __future__ import annotations

import pytest

from offline.event_source import failed_message_ids

BATCH = [{"MessageId": "a"}, {"MessageId": "b"}]


@pytest.mark.parametrize("result, expected", [
    (None, set()),
    ({}, set()),
    ({"batchItemFailures": []}, set()),
    ({"batchItemFailures": None}, set()),
    ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
    ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
    ({"batchItemFailures": [{"messageId": "a"}]}, {"a", "b"}),
    ({"batchItemFailures": "a"}, {"a", "b"}),
    ("not a dict", {"a", "b"}),
])
def test_partial_failure_rules(result, expected):
    assert failed_message_ids(result, BATCH, report_failures=True) == expected


def test_without_partial_failures_a_successful_invocation_deletes_everything():
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "a"}]}, BATCH, report_failures=False) == set()
