"""Nothing phoned home, nothing left behind: onnxruntime writes a device id and queued
telemetry under ~/.cache/Microsoft when it is imported, unless ORT_DISABLE_TELEMETRY is set
first — which importing cryprint does. Each ONNX path runs with a throw-away $HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

pytest.importorskip("onnxruntime")


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    environment.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    return subprocess.run(
        [sys.executable, *args], env=environment, capture_output=True, text=True, timeout=300
    )


def _left_behind(home: Path) -> list[str]:
    return sorted(
        str(path.relative_to(home)) for path in home.rglob("*") if "Microsoft" in str(path)
    )


@pytest.fixture
def cries(cry, tmp_path: Path) -> tuple[Path, Path]:
    paths = (tmp_path / "a.wav", tmp_path / "b.wav")
    for seed, path in enumerate(paths):
        soundfile.write(path, cry(2.0, seed), 16000)
    return paths


def test_the_onnx_paths_leave_no_identifiers(
    tiny_export: Path, model_folder: Path, cries: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = map(str, cries)
    paths = {
        "verify (CLI, ONNX backend)": [
            "-m", "cryprint", "verify", a, b, "--model", str(tiny_export), "--backend", "onnx",
            "--threshold", "0.5",
        ],
        "the API": [
            "-c",
            f"from cryprint import CryPrint; CryPrint({str(tiny_export)!r}, store=False)"
            f".score({a!r}, {b!r})",
        ],
        "export --format onnx": [
            "-m", "cryprint", "export", "--model", str(model_folder), "--out",
            str(tmp_path / "export"), "--format", "onnx",
        ],
    }  # fmt: skip
    for name, args in paths.items():
        home = tmp_path / f"home-{len(name)}"
        home.mkdir()
        done = _run(args, home)
        assert done.returncode == 0, (name, done.stderr[-2000:])
        assert _left_behind(home) == [], name


def test_the_check_would_see_what_onnxruntime_leaves(tmp_path: Path) -> None:
    """Without the setting, importing onnxruntime alone leaves them (1.32 does): so the check
    above can fail. Should a later onnxruntime write nothing, this says so instead."""
    done = _run(["-c", "import onnxruntime"], tmp_path)
    assert done.returncode == 0
    if not _left_behind(tmp_path):
        pytest.skip("this onnxruntime writes nothing under ~/.cache: nothing to check")
