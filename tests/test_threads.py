"""The thread policy: as many compute threads as the cores this process may use, or
CRYPRINT_THREADS; idle threads sleep unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cryprint.errors import ConfigError
from cryprint.threads import SHORT_SPIN, available_cores, compute_threads, set_wait_policy


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


def test_importing_cryprint_sets_a_short_spin_unless_told() -> None:
    code = (
        "import os, cryprint; from cryprint.threads import spinning; "
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), spinning())"
    )
    cases = (
        ({}, "10000 None True"),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "None PASSIVE False"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "None ACTIVE True"),
        ({"GOMP_SPINCOUNT": "300000"}, "300000 None True"),
    )
    for given, expected in cases:
        environment = {
            k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
        }
        done = subprocess.run(
            [sys.executable, "-c", code], env={**environment, **given}, capture_output=True,
            text=True,
        )  # fmt: skip
        assert done.stdout.strip() == expected, (given, done.stderr)


def test_set_wait_policy_keeps_what_the_user_chose() -> None:
    environment = {"OMP_WAIT_POLICY": ""}
    set_wait_policy(environment)
    assert environment["GOMP_SPINCOUNT"] == SHORT_SPIN  # an empty value counts as unset
    chosen = {"GOMP_SPINCOUNT": "5"}
    set_wait_policy(chosen)
    assert chosen == {"GOMP_SPINCOUNT": "5"}


def test_onnx_sessions_follow_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from cryprint.inference.onnx_runtime import session_options

    monkeypatch.setenv("CRYPRINT_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    options = session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
