"""OFFLINE_FAULTS and OFFLINE_TIME_SCALE: what parses, and the clear refusal of what does not."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from offline.faults import KNOWN, Faults, FaultSpecError
from tests.conftest import ROOT


def test_a_good_spec_parses_with_its_seed():
    faults = Faults.parse(" sqs_dup=0.25, api_kill=1 ,receipt_drop=0,", "42")
    assert faults.probabilities == {"sqs_dup": 0.25, "api_kill": 1.0}
    assert faults.seed == 42 and faults.active
    assert faults.describe() == "sqs_dup=0.25, api_kill=1 (seed 42)"
    assert faults.injected() == dict.fromkeys(KNOWN, 0)
    assert not Faults.parse("").active and not Faults.parse(None).active


def test_the_seed_makes_decisions_repeatable():
    draws = [[f.should("sqs_dup") for _ in range(50)] for f in (Faults.parse("sqs_dup=0.5", "7"),
                                                                 Faults.parse("sqs_dup=0.5", "7"))]
    assert draws[0] == draws[1] and 0 < sum(draws[0]) < 50
    assert isinstance(Faults.parse("sqs_dup=0.5").seed, int), "without a seed one is drawn (and printed)"


@pytest.mark.parametrize("spec, named", [
    ("sqs_dupe=0.1", "'sqs_dupe'"),
    ("sqs_dup=0.1,lambda_crash=1", "'lambda_crash'"),
    ("sqs_kill=1.5", "'sqs_kill=1.5'"),
    ("sqs_kill=-0.1", "'sqs_kill=-0.1'"),
    ("api_kill=nan", "'api_kill=nan'"),
    ("api_kill=inf", "'api_kill=inf'"),
    ("api_kill=often", "'api_kill=often'"),
    ("api_kill", "'api_kill'"),
])
def test_a_bad_entry_is_named_with_the_known_faults(spec, named):
    with pytest.raises(FaultSpecError) as raised:
        Faults.parse(spec)
    message = str(raised.value)
    assert named in message and "OFFLINE_FAULTS" in message
    assert all(name in message for name in KNOWN), message


def test_a_bad_seed_is_refused():
    with pytest.raises(FaultSpecError, match="OFFLINE_FAULTS_SEED"):
        Faults.parse("sqs_dup=0.1", "abc")


def _run_offline(mongo_server, sqs_server, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MONGO_URI": mongo_server.uri, "SQS_ENDPOINT_URL": sqs_server.url, **env}
    return subprocess.run([sys.executable, "-m", "offline", "--port", "0", "--no-reload"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_python_m_offline_refuses_a_bad_fault_spec_with_exit_code_2(mongo_server, sqs_server):
    done = _run_offline(mongo_server, sqs_server, OFFLINE_FAULTS="sqs_dup=0.1,api_kil=0.5")
    assert done.returncode == 2, done.stderr
    assert "unknown fault 'api_kil'" in done.stderr and "api_kill" in done.stderr
    done = _run_offline(mongo_server, sqs_server, OFFLINE_FAULTS="receipt_late=NaN")
    assert done.returncode == 2 and "'receipt_late=NaN'" in done.stderr, done.stderr


def test_python_m_offline_refuses_a_bad_time_scale_with_exit_code_2(mongo_server, sqs_server):
    for bad in ("0", "-3", "fast", "nan"):
        done = _run_offline(mongo_server, sqs_server, OFFLINE_TIME_SCALE=bad)
        assert done.returncode == 2 and "OFFLINE_TIME_SCALE" in done.stderr, (bad, done.stderr)
