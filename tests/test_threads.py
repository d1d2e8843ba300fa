"""The thread policy: as many compute threads as the cores this process may use, or
CRYPRINT_THREADS; idle threads sleep unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cryprint.errors import ConfigError
from cryprint.threads import available_cores, compute_threads, spinning


def test_threads_follow_the_cpu_set_or_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRYPRINT_THREADS", raising=False)
    assert compute_threads() == available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("CRYPRINT_THREADS", "3")
    assert compute_threads() == 3
    for bad in ("0", "-1", "two", "1e3", "100000"):
        monkeypatch.setenv("CRYPRINT_THREADS", bad)
        with pytest.raises(ConfigError, match="CRYPRINT_THREADS"):
            compute_threads()


def test_a_smaller_cpu_set_means_fewer_threads() -> None:
    code = (
        "import os; os.sched_setaffinity(0, {0}); "
        "from cryprint.threads import compute_threads; print(compute_threads())"
    )
    environment = {k: v for k, v in os.environ.items() if k != "CRYPRINT_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True
    )
    assert done.stdout.strip() == "1", done.stderr


def test_importing_cryprint_makes_idle_threads_sleep_unless_told() -> None:
    code = (
        "import os, cryprint; from cryprint.threads import spinning; "
        "print(os.environ['OMP_WAIT_POLICY'], spinning())"
    )
    for given, expected in ((None, "PASSIVE False"), ("ACTIVE", "ACTIVE True")):
        environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if given:
            environment["OMP_WAIT_POLICY"] = given
        done = subprocess.run(
            [sys.executable, "-c", code], env=environment, capture_output=True, text=True
        )
        assert done.stdout.strip() == expected, done.stderr
    assert spinning() is (os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE")


def test_onnx_sessions_follow_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from cryprint.inference.onnx_runtime import session_options

    monkeypatch.setenv("CRYPRINT_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    options = session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
